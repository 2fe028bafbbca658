"""One rate controller per host: a hard ceiling plus an adaptive (AIMD) rate below it.

The ceiling is an aiolimiter leaky bucket of size one at the ceiling rate, acquired right
before a request is sent; the next turn is measured from when the previous request actually
left, at the rate in force now, so no two requests to a host are ever closer than 1/rate,
however late the event loop runs and however the ceiling changes (jobs joining the host,
an operator's policy, Crawl-delay).
Below it, the adaptive rate reacts to what the site says: Crawl-delay caps it, 429/503 halve
it and pause the domain for Retry-After, error streaks and slow responses halve it, and each
success adds a tenth of the ceiling back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

_MIN_RATE = 1 / 600  # at worst one request every ten minutes
_ERROR_STREAK = 3


class DomainRateController:
    """Politeness for one domain: the ceiling, the adaptive rate and pauses."""

    def __init__(
        self,
        rate: float,
        *,
        max_retry_after: float = 300.0,
        slow_response: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = rate
        self.rate = rate
        self._limiter = AsyncLimiter(1, 1 / rate)
        self._max_retry_after = max_retry_after
        self._slow = slow_response
        self._clock = clock
        self._last_sent = -1e9
        self._send_lock = asyncio.Lock()
        self._paused_until = 0.0
        self._pause_reason = ""
        self._error_streak = 0

    def set_ceiling(self, rate: float) -> None:
        """A new hard ceiling (the lowest limit of the jobs on the host, a policy, a
        Crawl-delay); the adaptive rate stays below it and the next gap obeys it at once."""
        rate = max(rate, _MIN_RATE)
        if rate == self.ceiling:
            return
        unthrottled = self.rate >= self.ceiling
        self.ceiling = rate
        self.rate = rate if unthrottled else min(self.rate, rate)
        self._limiter = AsyncLimiter(1, 1 / rate)

    def gap_left(self) -> float:
        """Seconds until the next request may leave (for a hand-over to another holder)."""
        return max(
            0.0, self._last_sent + 1 / self.rate - self._clock(), self._paused_until - self._clock()
        )

    def hold_off(self, seconds: float) -> None:
        """Send nothing for `seconds` (the previous holder's gap carries over)."""
        self._pause(seconds, "the previous holder's politeness gap")

    def _pause(self, seconds: float, reason: str) -> None:
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until, self._pause_reason = until, reason

    def paused(self) -> tuple[float, str]:
        """Seconds left of a pause (Retry-After, a hand-over's gap) and what asked for it."""
        return max(0.0, self._paused_until - self._clock()), self._pause_reason

    async def wait_turn(self) -> None:
        """Sleep until the adaptive rate and any Retry-After pause would let a request go."""
        while True:
            now = self._clock()
            start = max(self._last_sent + 1 / self.rate, self._paused_until)
            if start <= now:
                return
            await asyncio.sleep(start - now)

    async def before_request(self) -> Callable[[], None]:
        """Wait for this domain's turn and pass the hard ceiling; returns `sent`, to be called
        once the request headers are on the wire.

        Turns are serialised until `sent()`: the next turn is measured from the moment the
        previous request actually left (after any connection setup), so the gap the server
        sees is never shorter than 1/rate, even when a new connection delays a send.
        """
        await self._send_lock.acquire()
        try:
            await self.wait_turn()
            await self._limiter.acquire()
        except BaseException:
            self._send_lock.release()
            raise
        released = False

        def sent() -> None:
            nonlocal released
            if not released:
                released = True
                self._last_sent = self._clock()
                self._send_lock.release()

        return sent

    def _decrease(self, factor: float = 0.5) -> None:
        self.rate = max(_MIN_RATE, self.rate * factor)

    def on_response(self, status: int, latency: float, retry_after: float | None) -> None:
        """Learn from one response."""
        if status in (429, 503):
            self._decrease()
            if retry_after is not None:
                pause = min(max(retry_after, 0.0), self._max_retry_after)
                self._pause(pause, f"Retry-After after a {status}")
            return
        if status >= 500:
            self.on_error()
            return
        self._error_streak = 0
        if latency > self._slow:
            self._decrease(0.75)
        else:
            self.rate = min(self.ceiling, self.rate + self.ceiling / 10)

    def on_error(self) -> None:
        """A timeout, connection error or 5xx: a streak of them slows the domain down."""
        self._error_streak += 1
        if self._error_streak >= _ERROR_STREAK:
            self._decrease()
            self._error_streak = 0
