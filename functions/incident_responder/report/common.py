"""What every rendering says about an incident, computed once so Slack, SNS and the
terminal never disagree."""

from __future__ import annotations

from ..models import Incident, IntakeError

LINK_LABELS: dict[str, str] = {
    "training_job": "Training job",
    "log_stream": "Log stream",
    "log_group": "Log group",
    "execution": "Execution",
    "state_machine": "State machine",
    "ecr_repository": "ECR repository",
    "build": "CodeBuild build",
    "stack_events": "Stack events",
    "workflow_run": "Workflow run",
    "failed_job": "Failed step",
}


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


def subject_name(incident: Incident) -> str:
    """What failed, as a person would name it."""
    subject = incident.subject
    return (subject.training_job_name or subject.execution_name or subject.build_id or subject.stack_name
            or (f"{subject.repository} run {subject.run_id}" if subject.repository and subject.run_id else None)
            or incident.event.event_id)


def what_failed(incident: Incident) -> str:
    subject = incident.subject
    source = incident.event.source
    if source == "codebuild":
        return f"CodeBuild build {subject.build_id}"
    if source == "cloudformation":
        return f"CloudFormation stack {subject.stack_name}" + (
            f" (first failed resource {subject.failed_resource})" if subject.failed_resource else "")
    if source == "github":
        workflow = incident.event.workflow_name or subject.workflow_path or "workflow"
        return f"GitHub Actions run {subject.run_id} of {workflow} in {subject.repository}"
    if source == "sagemaker" or not subject.execution_arn:
        return f"SageMaker training job {subject_name(incident)}"
    if subject.training_job_name:
        return f"Step Functions execution {subject.execution_name} (training job {subject.training_job_name})"
    return f"Step Functions execution {subject.execution_name}"


def verdict(incident: Incident) -> str:
    return f"{incident.diagnosis.category.value}/{incident.diagnosis.cause}"


def confidence_pct(incident: Incident) -> str:
    return f"{round(incident.diagnosis.confidence * 100)}%"


def severity(incident: Incident) -> str:
    return "low" if incident.event.status.upper() in _LOW_SEVERITY_STATUSES else "high"


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
    event, evidence, subject = incident.event, incident.evidence, incident.subject
    execution = subject.execution_arn
    found: list[tuple[str, str | None]] = [
        ("Status", event.status + (f" ({event.secondary_status})" if event.secondary_status
                                   and event.secondary_status != event.status else "")),
        ("Region", subject.region + (f" / {subject.account}" if subject.account else "")),
        ("Training job", subject.training_job_name),
        ("Execution", execution.rsplit(":", 2)[-2] + ":" + execution.rsplit(":", 1)[-1]
         if execution and execution.count(":") >= 7 else execution),
        ("Failed state", subject.failed_state),
        ("Instance", evidence.training_job.instance_type if evidence.training_job else None),
        ("Project", subject.project_name),
        ("Failed phase", evidence.build.failed_phase if evidence.build else None),
        ("Source version", evidence.build.source_version if evidence.build else None),
        ("Stack", subject.stack_name),
        ("Failed resource", _failed_resource(incident)),
        ("Resources failed", str(evidence.stack.failed_resources) if evidence.stack and
         evidence.stack.failed_resources > 1 else None),
        ("Repository", subject.repository),
        ("Workflow", subject.workflow_path),
        ("Commit", (subject.head_sha or "")[:12] + (f" ({incident.event.head_branch})" if incident.event.head_branch
                                                     else "") if subject.head_sha else None),
        ("Failed jobs", _failed_jobs(incident)),
        ("Image", _image_text(incident)),
        ("Rule", incident.diagnosis.rule_id),
        ("Time", event.time.strftime("%Y-%m-%d %H:%M:%S %Z").strip()),
    ]
    return [(label, value) for label, value in found if value]


def _failed_resource(incident: Incident) -> str | None:
    stack = incident.evidence.stack
    if stack is None or stack.first_failure is None:
        return None
    first = stack.first_failure
    return f"{first.logical_id} ({first.resource_type or 'resource'}) {first.status}"


def _failed_jobs(incident: Incident) -> str | None:
    run = incident.evidence.workflow_run
    if run is None or not run.failed_jobs:
        return None
    return "; ".join(job.name + (f" at step {job.failed_step_number} '{job.failed_step}'" if job.failed_step else "")
                     for job in run.failed_jobs[:5])


def _image_text(incident: Incident) -> str | None:
    image = incident.subject.image
    if image is None:
        return None
    return image.uri + (f" ({image.digest})" if image.digest and image.digest not in image.uri else "")


def follow_up_title(incident: Incident) -> str:
    return f"Update to incident {incident.key}: {subject_name(incident)}"


def evidence_location(source: str | None) -> str:
    return f" [{source}]" if source else ""


def intake_error_title(err: IntakeError) -> str:
    what = err.detail_type or err.source or "an event"
    return f"Responder could not use {what}"


def rollback_lines(incident: Incident) -> list[str]:
    """The rollback part of a report: the proposal (from which digest to which, when and by which job
    the target last succeeded, how to decide), or why none is proposed. Empty: not assessed."""
    advice = incident.rollback
    if advice is None:
        return []
    proposal = advice.proposal
    if proposal is None:
        return [f"No rollback proposed: {advice.reason}."]
    where = f"{proposal.repository}:{proposal.tag}" if proposal.tag else proposal.repository
    how = "move the tag to it" if proposal.mode == "ecr-retag" else "set the pipeline's image parameter to it"
    lines = [
        f"Proposed: roll {where} back from {proposal.from_digest} to {proposal.to_digest} ({how}).",
        f"The target last succeeded in {proposal.to_training_job} at "
        f"{proposal.to_completed_at.strftime('%Y-%m-%d %H:%M UTC')}.",
        f"Approval {proposal.approval_id}: incident-responder approve|reject '{incident.key}'",
    ]
    if proposal.approve_url:
        lines.append(f"Approve (confirmation page): {proposal.approve_url}")
    if proposal.reject_url:
        lines.append(f"Reject (confirmation page): {proposal.reject_url}")
    return lines
