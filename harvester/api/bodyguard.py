"""Before any request body is read: the caller's key is checked, its write rate limited, and
the body is capped.

FastAPI parses a JSON body before it runs the auth dependency, so a stranger's large body
would be read and parsed (several times its size in memory) before the 401 (security review
H5). This pure ASGI layer answers 401 for a request with a body and no valid key, and 413 for
a body over `MAX_BODY_BYTES` (declared or streamed), before the application sees either;
a key that writes faster than its per-minute allowance gets 429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiolimiter import AsyncLimiter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from harvester.api.errors import error_body
from harvester.service.keys import cached_scope, scope_of

MAX_BODY_BYTES = 1 << 20
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Awaitable[None]]


class BodyGuard:
    """ASGI middleware: key first, then at most `MAX_BODY_BYTES` of body."""

    def __init__(self, app: App, sessions: sessionmaker[Session], writes_per_minute: int) -> None:
        self.app = app
        self._sessions = sessions
        self._per_minute = writes_per_minute
        self._buckets: dict[str, AsyncLimiter] = {}  # per valid key: bounded by the keys

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        token = await self._known(headers.get("authorization", ""))
        if token is None:
            await _refuse(scope, receive, send, 401, "unauthorized", "missing or invalid API key")
            return
        bucket = self._buckets.setdefault(token, AsyncLimiter(self._per_minute, 60))
        if not bucket.has_capacity():
            retry = max(1, math.ceil(60 / self._per_minute))
            limit = f"at most {self._per_minute} writes a minute per key"
            await _refuse(scope, receive, send, 429, "too_many_requests", limit, retry)
            return
        await bucket.acquire()
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await _too_large(scope, receive, send)
            return
        body = bytearray()
        while True:  # at most MAX_BODY_BYTES are held, whatever the client streams
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await _too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _known(self, header: str) -> str | None:
        """The key's digest if it is valid, else None."""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        known, found = cached_scope(token)
        if not known:
            found = await run_in_threadpool(scope_of, self._sessions, token)
        return hashlib.sha256(token.encode()).hexdigest() if found is not None else None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: the client's disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _too_large(scope: Message, receive: Receive, send: Send) -> None:
    limit = f"request bodies are limited to {MAX_BODY_BYTES} bytes"
    await _refuse(scope, receive, send, 413, "too_large", limit)


async def _refuse(
    scope: Message,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    retry_after: int | None = None,
) -> None:
    # Connection: close, so the unread rest of the body never reaches another request.
    headers = {"Connection": "close"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    response = JSONResponse(error_body(code, message), status_code=status, headers=headers)
    await response(scope, receive, send)
