"""The retry policy: which failures get another attempt and how long to wait before it."""

from __future__ import annotations

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from harvester.errors import TransientFetchError
from harvester.spec import Retry


class _RetryAfterWait:
    """Exponential backoff with full jitter, but never shorter than the server's Retry-After
    (capped, so a hostile header cannot park a worker for a day)."""

    def __init__(self, policy: Retry, max_retry_after: float) -> None:
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff_initial_s, max=policy.backoff_max_s
        )
        self._cap = max_retry_after

    def __call__(self, state: RetryCallState) -> float:
        delay: float = self._backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientFetchError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self._cap))
        return delay


def retrying(policy: Retry, max_retry_after: float) -> AsyncRetrying:
    """A tenacity controller: transient errors retried up to `max_attempts`, then re-raised."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        retry=retry_if_exception_type(TransientFetchError),
        wait=_RetryAfterWait(policy, max_retry_after),
        reraise=True,
    )
