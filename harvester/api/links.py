"""OpenAPI links: which operations take the id a response returns (shown by Swagger UI, and
followed by the contract test's stateful runs: submit → get → cancel, schedule → trigger)."""

from __future__ import annotations

from typing import Any


def _link(path: str, method: str, parameter: str, description: str) -> dict[str, Any]:
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {
        "operationRef": f"#/paths/{pointer}/{method}",
        "parameters": {parameter: "$response.body#/id"},
        "description": description,
    }


_JOB = "/v1/jobs/{job_id}"
_SCHEDULE = "/v1/schedules/{schedule_id}"

JOB_LINKS: dict[int | str, dict[str, Any]] = {
    201: {
        "links": {
            "GetJob": _link(_JOB, "get", "job_id", "The job, with live progress."),
            "CancelJob": _link(_JOB + "/cancel", "post", "job_id", "Cancel the job."),
            "JobPages": _link(_JOB + "/pages", "get", "job_id", "The job's per-URL outcomes."),
        }
    }
}
SCHEDULE_LINKS: dict[int | str, dict[str, Any]] = {
    201: {
        "links": {
            "GetSchedule": _link(_SCHEDULE, "get", "schedule_id", "The schedule."),
            "PatchSchedule": _link(_SCHEDULE, "patch", "schedule_id", "Pause, resume, change."),
            "TriggerSchedule": _link(
                _SCHEDULE + "/trigger", "post", "schedule_id", "Queue a run now."
            ),
            "DeleteSchedule": _link(_SCHEDULE, "delete", "schedule_id", "Remove it."),
        }
    }
}
