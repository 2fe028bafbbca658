"""A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`: drives a
headless Chromium by real mouse clicks and key input, with no websocket library."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any


class Browser:
    """A headless Chromium with one page; `call` sends a CDP command to that page."""

    def __init__(self, chromium: str, profile: Path, extra_args: list[str]) -> None:
        ours_read, theirs_write = os.pipe()
        theirs_read, ours_write = os.pipe()

        def pipes() -> None:  # Chromium reads commands on fd 3 and answers on fd 4
            os.dup2(theirs_read, 3)
            os.dup2(theirs_write, 4)

        self._proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "--window-size=1280,4000", *extra_args, "about:blank"],
            pass_fds=(3, 4), preexec_fn=pipes,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(theirs_read)
        os.close(theirs_write)
        self._out = os.fdopen(ours_write, "wb", buffering=0)
        self._in = os.fdopen(ours_read, "rb", buffering=0)
        self._buffer = b""
        self._next = 0
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(10)
        self._out.close()
        self._in.close()

    def _send(self, method: str, params: dict[str, Any], session: str | None = None) -> Any:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = self._in.read(65536)
                assert chunk, "chromium closed the pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def call(self, method: str, **params: Any) -> Any:
        """A command to the page."""
        return self._send(method, params, self._session)

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, selector: str, timeout: float = 30) -> None:
        """Until an element matches `selector` and is visible."""
        deadline = time.monotonic() + timeout
        probe = f"(e => !!e && e.offsetParent !== null)(document.querySelector({selector!r}))"
        while not self.js(probe):
            assert time.monotonic() < deadline, f"no {selector} on the page"
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """A real left click in the middle of the element (scrolled into view first)."""
        self.wait_for(selector)
        box = self.js(
            f"(e => {{ e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
            f" return [r.x + r.width / 2, r.y + r.height / 2]; }})"
            f"(document.querySelector({selector!r}))"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind, x=box[0], y=box[1], button="left", clickCount=1,
            )  # fmt: skip

    def type(self, text: str) -> None:
        """Text typed into the focused element."""
        self.call("Input.insertText", text=text)
