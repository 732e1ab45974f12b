"""The triage core: one raw event in, one outcome out. The Lambda handler and the CLI both call
handle_event(); everything with side effects (AWS clients, store, sinks, sleep) is injected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

from .classify import classify
from .evidence import GatherSettings, gather, parse_ecr_uri
from .evidence.base import TRAINING_LOG_GROUP
from .intake import Ignored, KnownGoodImage, parse_event
from .models import (
    Diagnosis,
    Evidence,
    EvidenceLine,
    FailureEvent,
    Incident,
    IntakeError,
    Notification,
)
from .redact import redact_model
from .report import console_links
from .sinks.base import notify, notify_intake_error

MAX_REASON_LINES = 20


@dataclass
class Runtime:
    """What the core needs from the outside world."""

    clients: Any
    gather_settings: GatherSettings = field(default_factory=GatherSettings)
    store: Any = None
    sinks: list[Any] = field(default_factory=list)
    ignore_state_machines: frozenset[str] = frozenset()
    sleep: Callable[[float], None] = time.sleep


class Outcome(BaseModel):
    """What happened to one event; returned by the handler and printed by the CLI."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    outcome: Literal["reported", "duplicate", "known_good_recorded", "ignored", "intake_error"]
    event_id: str | None = None
    incident_key: str | None = None
    category: str | None = None
    cause: str | None = None
    confidence: float | None = None
    detail: str | None = None
    api_calls: int = 0
    notifications: list[Notification] = []
    incident: Incident | None = None
    intake_error: IntakeError | None = None


def handle_event(raw: Any, runtime: Runtime) -> Outcome:
    start_calls = runtime.clients.counter.count
    parsed = parse_event(raw, ignore_state_machines=runtime.ignore_state_machines)
    if isinstance(parsed, IntakeError):
        outcome = _reject(parsed, runtime)
    elif isinstance(parsed, Ignored):
        outcome = Outcome(outcome="ignored", event_id=parsed.event_id, detail=parsed.reason)
    elif isinstance(parsed, KnownGoodImage):
        outcome = _record_known_good(parsed, raw, runtime)
    else:
        outcome = _triage(parsed, runtime)
    return outcome.model_copy(update={"api_calls": runtime.clients.counter.count - start_calls})


def triage_failure(event: FailureEvent, runtime: Runtime) -> Incident:
    """Gather, redact, classify: the incident as it would be reported (no side effects but reads)."""
    evidence = redact_evidence(gather(event, runtime.clients, runtime.gather_settings, sleep=runtime.sleep))
    names = incident_names(event, evidence)
    text, sources = compose_document(event, evidence)
    diagnosis = attach_sources(classify(text, names=names), sources)
    return Incident(
        key=incident_key(event, evidence),
        event=event,
        evidence=evidence,
        diagnosis=diagnosis,
        links=console_links(event, evidence),
        names=names,
        linked_event_ids=[event.event_id],
    )


def _triage(event: FailureEvent, runtime: Runtime) -> Outcome:
    incident = triage_failure(event, runtime)
    verdict = {
        "event_id": event.event_id,
        "incident_key": incident.key,
        "category": incident.diagnosis.category.value,
        "cause": incident.diagnosis.cause,
        "confidence": incident.diagnosis.confidence,
    }
    if runtime.store is not None and not runtime.store.open_incident(incident):
        # SageMaker can send several events for one failure, and the pipeline's execution fails
        # with the job: one incident, one report.
        return Outcome(outcome="duplicate", detail="incident already reported; event linked", **verdict)
    notifications = notify(runtime.sinks, incident)
    incident = incident.model_copy(update={"notifications": notifications})
    if runtime.store is not None:
        runtime.store.record_notifications(incident.key, notifications)
    return Outcome(outcome="reported", notifications=notifications, incident=incident, **verdict)


def _reject(error: IntakeError, runtime: Runtime) -> Outcome:
    if runtime.store is not None:
        runtime.store.record_intake_error(error)
    notifications = notify_intake_error(runtime.sinks, error)
    return Outcome(
        outcome="intake_error",
        event_id=error.event_id,
        detail="; ".join(error.errors),
        notifications=notifications,
        intake_error=error,
    )


def _record_known_good(image: KnownGoodImage, raw: Any, runtime: Runtime) -> Outcome:
    event_id = raw.get("id") if isinstance(raw, dict) else None
    if runtime.store is not None:
        runtime.store.record_known_good(image)
    return Outcome(
        outcome="known_good_recorded",
        event_id=event_id,
        detail=f"{image.image_uri} from {image.training_job_name}",
    )


def incident_key(event: FailureEvent, evidence: Evidence) -> str:
    job = event.training_job_name or (evidence.execution.training_job_name if evidence.execution else None)
    if job:
        return f"training-job:{event.region}:{job}"
    return f"execution:{event.execution_arn or event.event_id}"


def incident_names(event: FailureEvent, evidence: Evidence) -> dict[str, str]:
    """Values for the investigation command templates; only what is known."""
    names: dict[str, str | None] = {
        "region": event.region,
        "account": event.account,
        "job_name": event.training_job_name
        or (evidence.execution.training_job_name if evidence.execution else None),
        "execution_arn": event.execution_arn,
        "state_machine_arn": event.state_machine_arn,
    }
    if evidence.logs:
        names["log_group"] = evidence.logs.group
        names["log_stream"] = evidence.logs.primary_stream
    elif names["job_name"]:
        names["log_group"] = TRAINING_LOG_GROUP
    image_uri = evidence.image.uri if evidence.image else event.image_uri
    if image_uri:
        names["image_uri"] = image_uri
        parts = parse_ecr_uri(image_uri) or {}
        names["repository"] = parts.get("repository")
        names["image_tag"] = parts.get("tag")
        names["account"] = names["account"] or parts.get("registry")
    return {key: value for key, value in names.items() if value}


def compose_document(event: FailureEvent, evidence: Evidence) -> tuple[str, list[str]]:
    """The text the classifier reads, in causal order: AWS's own verdict first, then the logs.

    Returns the text and, for each of its lines, where the line came from.
    """
    lines: list[str] = []
    sources: list[str] = []

    def add(source: str, text: str | None) -> None:
        if not text:
            return
        for line in text.splitlines()[:MAX_REASON_LINES]:
            lines.append(line)
            sources.append(source)

    job = evidence.training_job
    add("failure_reason", (job.failure_reason if job else None) or event.failure_reason)
    if evidence.execution:
        add("execution", evidence.execution.error)
        add("execution", evidence.execution.cause)
    for tail in evidence.logs.streams if evidence.logs else []:
        for line in tail.lines:
            lines.append(line)
            sources.append(f"log:{tail.stream}")
    return "\n".join(lines), sources


def attach_sources(diagnosis: Diagnosis, sources: list[str]) -> Diagnosis:
    evidence = [
        EvidenceLine(line=item.line, text=item.text,
                     source=sources[item.line - 1] if 0 < item.line <= len(sources) else "input")
        for item in diagnosis.evidence
    ]
    return diagnosis.model_copy(update={"evidence": evidence})


def redact_evidence(evidence: Evidence) -> Evidence:
    """Secrets in logs never reach the classifier, the store, the sinks or our own logs."""
    return redact_model(evidence)
