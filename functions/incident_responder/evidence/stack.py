"""DescribeStackEvents: the failed operation's first failed resource and its reason.

When one resource fails, CloudFormation cancels the others and rolls back: the events after the
first failure are its cascade ("Resource creation cancelled", "The following resource(s) failed
to ..."). The cause is the earliest failure of the latest operation, so events are read newest
first back to that operation's start ("User Initiated"), then searched oldest first.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import StackEvidence, StackResourceFailure, stack_name
from .base import GatherState, aws_error

STACK_TYPE = "AWS::CloudFormation::Stack"
_OPERATION_STARTS = {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS",
                     "REVIEW_IN_PROGRESS"}
# Failures that only follow another one: never the cause.
_CASCADE_REASONS = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled",
                    "The following resource(s) failed to", "Resource handler returned message: \"null\"")
NESTED_DEPTH = 2


def gather_stack(state: GatherState, clients: Any) -> None:
    stack_id = state.event.stack_id
    if not stack_id:
        return
    state.stack = _stack_evidence(state, clients, stack_id, depth=0)


def _stack_evidence(state: GatherState, clients: Any, stack_id: str, *, depth: int) -> StackEvidence | None:
    try:
        operation, read = _latest_operation(state, clients, stack_id)
    except (ClientError, BotoCoreError) as exc:
        state.note_aws_failure("stack", f"DescribeStackEvents({stack_name(stack_id)}) failed: {aws_error(exc)}")
        return None
    if not operation:
        state.note_missing("stack", f"DescribeStackEvents({stack_name(stack_id)}) returned no events")
        return None
    start = operation[0] if _is_operation_start(operation[0], stack_id) else None
    stack_events = [e for e in operation if _is_stack_itself(e, stack_id)]
    failures = [e for e in operation if e.get("ResourceStatus", "").endswith("_FAILED")
                and not _is_stack_itself(e, stack_id)]
    causes = [e for e in failures if not str(e.get("ResourceStatusReason", "")).startswith(_CASCADE_REASONS)]
    first = (causes or failures or [None])[0]
    if start is None and len(operation) >= read:
        state.note_missing("stack", f"the start of the failed operation on {stack_name(stack_id)} was not among "
                                    f"the {read} newest events read; the first failure shown is the earliest read")
    evidence = StackEvidence(
        stack_id=stack_id,
        stack_name=stack_name(stack_id),
        status=stack_events[-1].get("ResourceStatus") if stack_events else None,
        status_reason=_first_reason(stack_events),
        operation=start.get("EventId") if start else None,
        operation_started_at=start.get("Timestamp") if start else None,
        first_failure=_failure(first) if first else None,
        failed_resources=len(failures),
        events_read=read,
    )
    nested = first.get("PhysicalResourceId") if first and first.get("ResourceType") == STACK_TYPE else None
    if nested and nested.startswith("arn:") and depth + 1 < NESTED_DEPTH:
        inner = _stack_evidence(state, clients, nested, depth=depth + 1)
        if inner is not None and inner.first_failure is not None:
            # The nested stack's own first failure is the cause; the outer one only says it happened inside.
            inner_failure = inner.first_failure
            evidence = evidence.model_copy(update={"first_failure": inner_failure.model_copy(
                update={"logical_id": f"{first.get('LogicalResourceId')}/{inner_failure.logical_id}"})})
    return evidence


def _latest_operation(state: GatherState, clients: Any, stack_id: str) -> tuple[list[dict[str, Any]], int]:
    """The latest operation's events, oldest first, and how many events were read."""
    newest_first: list[dict[str, Any]] = []
    token = None
    for _ in range(state.settings.max_history_pages):
        kwargs = {"StackName": stack_id} | ({"NextToken": token} if token else {})
        page = clients.cloudformation.describe_stack_events(**kwargs)
        for event in page.get("StackEvents", []):
            newest_first.append(event)
            if _is_operation_start(event, stack_id):
                return list(reversed(newest_first)), len(newest_first)
        token = page.get("NextToken")
        if not token:
            break
    return list(reversed(newest_first)), len(newest_first)


def _is_stack_itself(event: dict[str, Any], stack_id: str) -> bool:
    return event.get("ResourceType") == STACK_TYPE and event.get("PhysicalResourceId") == stack_id


def _is_operation_start(event: dict[str, Any], stack_id: str) -> bool:
    return _is_stack_itself(event, stack_id) and event.get("ResourceStatus") in _OPERATION_STARTS


def _first_reason(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        reason = event.get("ResourceStatusReason")
        if reason and reason != "User Initiated":
            return reason
    return None


def _failure(event: dict[str, Any]) -> StackResourceFailure:
    return StackResourceFailure(
        logical_id=event.get("LogicalResourceId", "?"),
        resource_type=event.get("ResourceType"),
        physical_id=event.get("PhysicalResourceId") or None,
        status=event.get("ResourceStatus", "?"),
        reason=event.get("ResourceStatusReason"),
        timestamp=event.get("Timestamp"),
    )
