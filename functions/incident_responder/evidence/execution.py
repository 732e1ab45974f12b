"""GetExecutionHistory: the failed state, its error and cause, and the training job it ran."""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import ExecutionEvidence
from .base import GatherState, aws_error

_FAILURE_EVENTS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "ActivityFailed": "activityFailedEventDetails",
    "MapRunFailed": "mapRunFailedEventDetails",
}
_JOB_IN_TEXT = re.compile(
    r"training-job/([A-Za-z0-9][A-Za-z0-9-]{0,62})|\"TrainingJobName\"\s*:\s*\"([^\"]{1,63})\""
    r"|[Tt]raining job ([A-Za-z0-9][A-Za-z0-9-]{0,62}) (?:failed|has failed|was stopped)"
)


def gather_execution(state: GatherState, clients: Any) -> None:
    arn = state.event.execution_arn
    if not arn:
        return
    events: list[dict[str, Any]] = []
    token = None
    try:
        for _ in range(state.settings.max_history_pages):
            kwargs: dict[str, Any] = {"executionArn": arn, "reverseOrder": True, "maxResults": 200}
            if token:
                kwargs["nextToken"] = token
            page = clients.stepfunctions.get_execution_history(**kwargs)
            events.extend(page.get("events", []))
            token = page.get("nextToken")
            if not token or _job_name(events):
                break
    except (ClientError, BotoCoreError) as exc:
        state.note_aws_failure("execution", f"GetExecutionHistory failed: {aws_error(exc)}")
        # The event's own error/cause often names the job (the .sync integration's cause does).
        job = _job_from_text(state.event.failure_reason)
        if job:
            state.training_job_name = state.training_job_name or job
        elif not state.training_job_name:
            state.unresolved = ("the execution history could not be read and the event names no training job, "
                                "so this failure could not be joined to its training job's incident")
        return
    # Newest first, whether or not the service honoured reverseOrder.
    events.sort(key=lambda e: e.get("id", 0), reverse=True)
    error, cause, failed_state = _failure(events)
    job = _job_name(events) or _job_from_text(cause) or _job_from_text(state.event.failure_reason)
    state.execution = ExecutionEvidence(
        execution_arn=arn,
        status=state.event.status,
        failed_state=failed_state,
        error=error,
        cause=cause,
        training_job_name=job,
        events_read=len(events),
    )
    state.training_job_name = state.training_job_name or job
    if not job:
        state.note_missing("training_job", "the execution history names no SageMaker training job")


def _failure(events: list[dict[str, Any]]) -> tuple[str | None, str | None, str | None]:
    """The newest task-level failure if any (it carries the real cause), else the execution's.

    History is read newest first, so the state a failure happened in is the first
    StateEntered found after it in the list.
    """
    failures = [(i, e) for i, e in enumerate(events) if e.get("type") in _FAILURE_EVENTS]
    if not failures:
        return None, None, _enclosing_state(events)
    task_level = [(i, e) for i, e in failures if not e["type"].startswith("Execution")]
    index, event = (task_level or failures)[0]
    details = event.get(_FAILURE_EVENTS[event["type"]], {})
    return details.get("error"), details.get("cause"), _enclosing_state(events[index:])


def _enclosing_state(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event.get("type", "").endswith("StateEntered"):
            return event.get("stateEnteredEventDetails", {}).get("name")
    return None


def _job_name(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event.get("type") == "TaskScheduled":
            details = event.get("taskScheduledEventDetails", {})
            if details.get("resourceType") == "sagemaker" and "TrainingJob" in details.get("resource", ""):
                try:
                    return json.loads(details.get("parameters", "{}")).get("TrainingJobName")
                except ValueError:
                    pass
        for key in ("taskSubmittedEventDetails", "taskFailedEventDetails", "taskSucceededEventDetails"):
            details = event.get(key)
            if details:
                found = _job_from_text(details.get("output") or details.get("cause"))
                if found:
                    return found
    return None


def _job_from_text(text: str | None) -> str | None:
    if not text:
        return None
    match = _JOB_IN_TEXT.search(text)
    return next((group for group in match.groups() if group), None) if match else None
