"""Log records name the job and URL they were logged for, in JSON and in text."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from harvester import logs


@pytest.fixture
def captured() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("json")
    handler = root.handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    yield handler, stream
    root.handlers[:], level = saved
    root.setLevel(level)


async def _crawl(job_id: str, url: str) -> None:
    logs.JOB_ID.set(job_id)
    logs.URL.set(url)
    await asyncio.sleep(0)
    logging.getLogger("trafilatura.core").warning("discarding data")


def test_a_library_warning_while_crawling_names_the_job_and_url(
    captured: tuple[logging.Handler, io.StringIO],
) -> None:
    handler, stream = captured

    async def main() -> None:
        await asyncio.gather(_crawl("job-1", "http://a/1"), _crawl("job-2", "http://b/2"))
        logging.getLogger("harvester").info("idle")  # outside any URL's task

    asyncio.run(main())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e.get("job_id"), e.get("url")) for e in lines] == [
        ("job-1", "http://a/1"),
        ("job-2", "http://b/2"),
        (None, None),
    ]
    handler.setFormatter(logs.TextFormatter())
    logging.getLogger("harvester").warning("build failed", extra={"job_id": "job-3"})
    assert stream.getvalue().splitlines()[-1].endswith("build failed job_id=job-3")
