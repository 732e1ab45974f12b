"""What every rendering says about an incident, computed once so Slack, SNS and the
terminal never disagree."""

from __future__ import annotations

from ..models import Incident, IntakeError
from ..redact import redact_model
from .links import console_links

LINK_LABELS: dict[str, str] = {
    "training_job": "Training job",
    "log_stream": "Log stream",
    "log_group": "Log group",
    "execution": "Execution",
    "state_machine": "State machine",
    "ecr_repository": "ECR repository",
}


def redacted(incident: Incident) -> Incident:
    """The incident with every string a report can show redacted, for the renderers. No report
    shows the log tails (up to LogTailBytes each), so they are dropped before, not redacted again."""
    return redact_model(incident.without_log_lines())


# Aborted runs were usually stopped by a person; timeouts and failures were not.
_LOW_SEVERITY_STATUSES = {"ABORTED", "STOPPED"}


def truncate(text: str, limit: int, *, marker: str = "… [truncated {n} chars]") -> str:
    """Cut ``text`` to at most ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    for _ in range(3):  # the marker's own length depends on n; settle it
        cut = limit - len(marker.format(n=len(text)))
        if cut < 0:
            return text[:limit]
        note = marker.format(n=len(text) - cut)
        if cut + len(note) <= limit:
            return text[:cut] + note
    return text[:limit]


def outcome(incident: Incident) -> str:
    """The event's status as one word for a headline: FAILED, TIMED OUT, ABORTED, STOPPED."""
    status = incident.event.status.upper().replace("_", " ")
    return status if status in ("TIMED OUT", "ABORTED", "STOPPED") else "FAILED"


def what_failed(incident: Incident) -> str:
    event = incident.event
    if event.source == "sagemaker":
        return f"SageMaker training job {event.subject_name}"
    execution = event.execution_arn.rsplit(":", 1)[-1] if event.execution_arn else event.subject_name
    if event.training_job_name:
        return f"Step Functions execution {execution} (training job {event.training_job_name})"
    return f"Step Functions execution {execution}"


def verdict(incident: Incident) -> str:
    return f"{incident.diagnosis.category.value}/{incident.diagnosis.cause}"


def confidence_pct(incident: Incident) -> str:
    return f"{round(incident.diagnosis.confidence * 100)}%"


def severity(incident: Incident) -> str:
    return "low" if incident.event.status.upper() in _LOW_SEVERITY_STATUSES else "high"


def links_of(incident: Incident) -> dict[str, str]:
    return incident.links or console_links(incident.event, incident.evidence)


def link_label(key: str) -> str:
    return LINK_LABELS.get(key, key.replace("_", " ").capitalize())


def failure_reason(incident: Incident) -> str | None:
    """AWS's own words for the failure: FailureReason, else the execution's error and cause."""
    evidence = incident.evidence
    if evidence.training_job is not None and evidence.training_job.failure_reason:
        return evidence.training_job.failure_reason
    if incident.event.failure_reason:
        return incident.event.failure_reason
    if evidence.execution is not None and (evidence.execution.error or evidence.execution.cause):
        return ": ".join(part for part in (evidence.execution.error, evidence.execution.cause) if part)
    return None


def facts(incident: Incident) -> list[tuple[str, str]]:
    """Short labelled facts (label, value), most useful first; only what is known."""
    event, evidence = incident.event, incident.evidence
    found: list[tuple[str, str | None]] = [
        ("Status", event.status + (f" ({event.secondary_status})" if event.secondary_status
                                   and event.secondary_status != event.status else "")),
        ("Region", event.region + (f" / {event.account}" if event.account else "")),
        ("Training job", event.training_job_name
         or (evidence.training_job.name if evidence.training_job else None)
         or (evidence.execution.training_job_name if evidence.execution else None)),
        ("Execution", event.execution_arn.rsplit(":", 2)[-2] + ":" + event.execution_arn.rsplit(":", 1)[-1]
         if event.execution_arn and event.execution_arn.count(":") >= 7 else event.execution_arn),
        ("Failed state", evidence.execution.failed_state if evidence.execution else None),
        ("Instance", evidence.training_job.instance_type if evidence.training_job else None),
        ("Image", _image_text(incident)),
        ("Rule", incident.diagnosis.rule_id),
        ("Time", event.time.strftime("%Y-%m-%d %H:%M:%S %Z").strip()),
    ]
    return [(label, value) for label, value in found if value]


def _image_text(incident: Incident) -> str | None:
    image = incident.evidence.image
    if image is not None:
        return image.uri + (f" ({image.digest})" if image.digest and image.digest not in image.uri else "")
    return incident.event.image_uri


def evidence_location(source: str | None) -> str:
    return f" [{source}]" if source else ""


def intake_error_title(err: IntakeError) -> str:
    what = err.detail_type or err.source or "an event"
    return f"Responder could not use {what}"
