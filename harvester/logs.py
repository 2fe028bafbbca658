"""Structured logs: one JSON object a line, with the job id and URL when a record has them.

A record gets them from its `extra`, or else from the task it was logged in: a host runner
sets `JOB_ID` and `URL` for each URL it crawls, so a library's warning (an extractor, the
HTTP client) logged while crawling names the job and the URL as well.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

_CONTEXT = ("job_id", "url", "dataset", "schedule_id", "worker")
JOB_ID: ContextVar[str | None] = ContextVar("job_id", default=None)
URL: ContextVar[str | None] = ContextVar("url", default=None)


class _FromTask(logging.Filter):
    """Fills `job_id` and `url` from the logging task's context when `extra` did not."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, var in (("job_id", JOB_ID), ("url", URL)):
            if getattr(record, key, None) is None and (value := var.get()) is not None:
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """`time level logger message key=value…` with the record's context keys."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = [f"{key}={value}" for key in _CONTEXT if (value := getattr(record, key, None))]
        return " ".join([super().format(record), *context])


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "job_id", "url", …, "exc"}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(fmt: str) -> None:
    """Send every record (uvicorn's too) to stderr as JSON or as plain text."""
    handler = logging.StreamHandler()
    handler.addFilter(_FromTask())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request at INFO: a line per URL duplicates the frontier's outcome
    # rows and costs the crawl CPU at hundreds of pages a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
