"""Structured logs: one JSON object a line, with the job id and URL when a record has them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_CONTEXT = ("job_id", "url", "dataset", "schedule_id", "worker")


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
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request at INFO: a line per URL duplicates the frontier's outcome
    # rows and costs the crawl CPU at hundreds of pages a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
