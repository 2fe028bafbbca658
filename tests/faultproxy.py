"""A TCP proxy on loopback that forwards to a real server until a test tells it to fail.

Put it between a process and its catalog (or object store) to cause real network faults:
`stall()` keeps every connection open but moves no byte either way (a partition, a hung
server), `cut()` resets every open connection and `refuse()` resets new ones (a restart),
`heal()` goes back to forwarding. `lose_reply(after, at)` lets one statement through and
drops its answer (a COMMIT that took effect while the client saw its connection die);
`cut_reply(request, keep)` forwards only the first bytes of one answer (a download that
breaks off mid-file).
For HTTP servers (an object store), `answer(reply)` answers every request itself (an S3
503 SlowDown) and `slow(seconds)` delays every chunk.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

_CHUNK = 65536


class FaultProxy:
    """Forwards `listen` (an address on loopback, port chosen) to `target`."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self._server = socket.create_server((host, 0))
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = False
        self._open: set[socket.socket] = set()
        self._trap: tuple[bytes, bytes] | None = None
        self._cut: tuple[bytes, int] | None = None
        self._reply: bytes | None = None
        self._delay = 0.0
        self.trapped = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="faultproxy").start()

    @property
    def port(self) -> int:
        return self.address[1]

    def stall(self) -> None:
        """Hold every byte, in both directions, on open and new connections."""
        self._flowing.clear()

    def cut(self) -> None:
        """Reset every open connection."""
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def refuse(self) -> None:
        """Reset open connections and every new one until `heal()`."""
        self._refusing = True
        self.cut()

    def lose_reply(self, after: bytes, at: bytes) -> None:
        """Once: on the connection whose client sends `after` and later `at`, forward `at`,
        drop whatever the server answers, and reset the connection (`trapped` is set)."""
        self.trapped.clear()
        self._trap = (after, at)

    def cut_reply(self, request: bytes, keep: int) -> None:
        """Once: on the connection whose client sends `request`, forward `keep` bytes of what
        the server sends next, then reset the connection (`trapped` is set)."""
        self.trapped.clear()
        self._cut = (request, keep)

    def answer(self, reply: bytes) -> None:
        """Reset open connections; answer each request on new ones with `reply` (a whole HTTP
        response) and close the connection, until `heal()`."""
        self._reply = reply
        self.cut()

    def slow(self, seconds: float) -> None:
        """Forward every chunk, either way, `seconds` late."""
        self._delay = seconds

    def heal(self) -> None:
        """Forward again."""
        self._refusing = False
        self._reply = None
        self._delay = 0.0
        self._flowing.set()

    def _springs(self, link: _Link, data: bytes) -> bool:
        assert self._trap is not None
        after, at = self._trap
        link.armed = link.armed or after in data
        if link.armed and at in data and data.find(at) > data.find(after):
            self._trap = None
            link.muted = True
            return True
        return False

    def close(self) -> None:
        self._server.close()
        self.heal()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            if self._refusing:
                _reset(client)
                continue
            if self._reply is not None:
                threading.Thread(target=_answer, args=(client, self._reply), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            link = _Link()
            for a, b, out in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, out, link), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, out: bool, link: _Link) -> None:
        try:
            while data := source.recv(_CHUNK):
                self._flowing.wait()  # a stall holds the bytes already read, too
                if out and self._trap is not None and self._springs(link, data):
                    sink.sendall(data)
                    time.sleep(0.3)  # the server acts on it; its answer is dropped
                    self.cut()
                    self.trapped.set()
                    return
                if out and self._cut is not None and self._cut[0] in data:
                    link.budget, self._cut = self._cut[1], None
                if not out and link.budget is not None:
                    sink.sendall(data[: link.budget])
                    link.budget -= len(data)
                    if link.budget <= 0:
                        time.sleep(0.2)  # let the kept bytes reach the client first
                        self.trapped.set()
                        for sock in (sink, source):  # wakes the other direction's recv too
                            with contextlib.suppress(OSError):
                                sock.shutdown(socket.SHUT_RDWR)
                        return
                    continue
                if self._delay:
                    time.sleep(self._delay)
                if not link.muted:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._open -= {source, sink}


class _Link:
    """One proxied connection's trap state."""

    def __init__(self) -> None:
        self.armed = False
        self.muted = False
        self.budget: int | None = None


def _reset(sock: socket.socket) -> None:
    """Close with RST (linger 0), as a crashed peer or a firewall would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _answer(client: socket.socket, reply: bytes) -> None:
    """Read one HTTP request (its body too, unless it waits for 100-continue), send `reply`,
    close."""
    with client:
        client.settimeout(10)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data and (chunk := client.recv(_CHUNK)):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next(
                (int(h.split(b":")[1]) for h in lines if h.startswith(b"content-length:")), 0
            )
            if b"expect: 100-continue" not in lines:
                while len(body) < length and (chunk := client.recv(_CHUNK)):
                    body += chunk
            client.sendall(reply)
