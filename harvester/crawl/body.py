"""Reading a response body under a hard size limit, before and after decompression.

httpx decodes a whole network chunk at once, so one 64 KiB chunk of a gzip bomb could expand to
tens of megabytes before a limit is checked. We read raw bytes and inflate with `max_length`,
so memory never exceeds the limit plus one chunk, whatever the compression ratio.
"""

from __future__ import annotations

import zlib

import httpx

from harvester.errors import FetchSkipped, PermanentFetchError

ACCEPT_ENCODING = "gzip, deflate"


class _Inflater:
    """Incremental gzip/deflate decoder that never produces more than it is asked for."""

    def __init__(self, encoding: str) -> None:
        # 47 = auto-detect zlib or gzip header; raw deflate (-15) is tried if that fails.
        self._wbits = 47 if encoding in ("gzip", "x-gzip") else 15
        self._decoder = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes, room: int) -> tuple[bytes, bool]:
        """Inflate `data`; return up to `room` bytes and whether more output was pending."""
        try:
            out = self._decoder.decompress(data, room)
        except zlib.error:
            if self._started or self._wbits != 15:
                raise
            # Some servers send raw deflate streams labelled "deflate".
            self._decoder = zlib.decompressobj(-15)
            out = self._decoder.decompress(data, room)
        self._started = True
        return out, bool(self._decoder.unconsumed_tail)


async def read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body, or `FetchSkipped('too-large')` once it would exceed `max_bytes`."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchSkipped("too-large", f"Content-Length {declared} exceeds {max_bytes}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise PermanentFetchError("content-encoding", f"unsupported Content-Encoding {encoding}")
    inflater = _Inflater(encoding) if encoding not in ("identity", "") else None
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            if inflater is None:
                body += chunk
                overflow = False
            else:
                out, overflow = inflater.feed(chunk, max_bytes + 1 - len(body))
                body += out
            if overflow or len(body) > max_bytes:
                raise FetchSkipped("too-large", f"body exceeds {max_bytes} bytes")
    except zlib.error as exc:
        raise PermanentFetchError("bad-compression", f"corrupt {encoding} body: {exc}") from exc
    return bytes(body)
