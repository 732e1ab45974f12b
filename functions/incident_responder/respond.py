"""One raw event in, one outcome out: parse, then triage (the pure core), then delivery. The
Lambda handler and the CLI both call handle_event(); everything with side effects (AWS clients,
store, sinks, sleep) is injected through Runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

from .delivery import Delivery, deliver, deliver_intake_error
from .evidence import GatherSettings
from .intake import Ignored, KnownGoodImage, parse_event
from .models import FailureEvent, Incident, IntakeError, Notification
from .store import StoreUnavailable
from .triage import triage


@dataclass
class Runtime:
    """What handling an event needs from the outside world."""

    clients: Any
    delivery: Delivery
    gather_settings: GatherSettings = field(default_factory=GatherSettings)
    ignore_state_machines: frozenset[str] = frozenset()
    sleep: Callable[[float], None] = time.sleep
    rollback: Any = None  # rollback.service.RollbackService: known-good ledger, proposal, workflow


class Outcome(BaseModel):
    """What happened to one event; returned by the handler and printed by the CLI."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    outcome: Literal["reported", "duplicate", "enriched", "known_good_recorded", "known_good_not_recorded", "ignored",
                     "intake_error"]
    event_id: str | None = None
    incident_key: str | None = None
    category: str | None = None
    cause: str | None = None
    confidence: float | None = None
    detail: str | None = None
    api_calls: int = 0
    aws_failures: int = 0
    notifications: list[Notification] = []
    incident: Incident | None = None
    intake_error: IntakeError | None = None


def handle_event(raw: Any, runtime: Runtime) -> Outcome:
    with runtime.clients.counter.scope() as calls:
        outcome = _handle(raw, runtime)
    return outcome.model_copy(update={"api_calls": len(calls)})


def _handle(raw: Any, runtime: Runtime) -> Outcome:
    parsed = parse_event(raw, ignore_state_machines=runtime.ignore_state_machines)
    if isinstance(parsed, IntakeError):
        notifications = deliver_intake_error(parsed, runtime.delivery)
        return Outcome(outcome="intake_error", event_id=parsed.event_id, detail="; ".join(parsed.errors),
                       notifications=notifications, intake_error=parsed)
    if isinstance(parsed, Ignored):
        return Outcome(outcome="ignored", event_id=parsed.event_id, detail=parsed.reason)
    if isinstance(parsed, KnownGoodImage):
        if runtime.rollback is None:
            return Outcome(outcome="known_good_not_recorded", event_id=parsed.event_id,
                           detail="no incident table: the known-good ledger is off")
        from .rollback.ledger import NotRecorded

        entry = runtime.rollback.record_completed(parsed)
        if isinstance(entry, NotRecorded):
            return Outcome(outcome="known_good_not_recorded", event_id=parsed.event_id, detail=entry.reason)
        return Outcome(outcome="known_good_recorded", event_id=parsed.event_id,
                       detail=f"{entry.repository}@{entry.digest} from {parsed.training_job_name} "
                              f"(protected as {entry.protect_tag})")
    return handle_failure(parsed, runtime)


def handle_failure(event: FailureEvent, runtime: Runtime) -> Outcome:
    """Triage and deliver a failure that has passed intake (an AWS event's, or a verified webhook's)."""
    with runtime.clients.counter.scope() as calls:
        outcome = _triage_and_deliver(event, runtime)
    return outcome.model_copy(update={"api_calls": len(calls)})


def _triage_and_deliver(event: FailureEvent, runtime: Runtime) -> Outcome:
    incident = triage(event, runtime.clients, runtime.gather_settings, sleep=runtime.sleep)
    if runtime.rollback is not None:
        incident = runtime.rollback.advise(incident)
    delivered = deliver(incident, runtime.delivery)
    if runtime.rollback is not None:
        # After the alert: the report carries the approval id the workflow will wait on. A retry of this
        # event starts nothing new (the execution is named after the approval id).
        runtime.rollback.start_for(delivered.incident)
    details = {"duplicate": "incident already reported; event linked",
               "enriched": "incident already reported; follow-up sent: " + "; ".join(delivered.added)}
    return Outcome(
        outcome=delivered.outcome,
        event_id=incident.event.event_id,
        incident_key=incident.key,
        category=delivered.incident.diagnosis.category.value,
        cause=delivered.incident.diagnosis.cause,
        confidence=delivered.incident.diagnosis.confidence,
        detail=details.get(delivered.outcome),
        aws_failures=incident.evidence.aws_failures,
        notifications=delivered.notifications,
        incident=delivered.incident,
    )


__all__ = ["Outcome", "Runtime", "StoreUnavailable", "handle_event", "handle_failure"]
