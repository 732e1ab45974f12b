"""The triage core: a failure event in, a finished, redacted Incident out. It only reads AWS (through
injected clients) and imports no sink, renderer or store: delivery is its own step (delivery.py).

    event -> gather (resolves the Subject once) -> redact (the one boundary) -> classify -> Incident
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable

from .classify import classify
from .evidence import GatherSettings, gather
from .links import console_links
from .models import Diagnosis, Evidence, EvidenceLine, FailureEvent, Incident, Subject
from .redact import redact, redact_model

MAX_REASON_LINES = 20


def triage(
    event: FailureEvent,
    clients: Any,
    settings: GatherSettings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Incident:
    """Gather, redact, classify: the incident as it will be reported (no side effects but reads)."""
    return finish(event, gather(event, clients, settings, sleep=sleep))


def finish(event: FailureEvent, gathered: Evidence) -> Incident:
    """Redact (the one boundary: everything after it, the classifier, the record, every sink and the
    responder's own logs, sees redacted data only), classify, and assemble the Incident."""
    key = incident_key(gathered.subject, event.event_id)
    event, evidence = redact_model(event), redact_model(gathered)
    text, sources, trusted = compose_document(event, evidence)
    names = evidence.subject.template_names()
    diagnosis = attach_sources(classify(text, names=names, trusted_lines=trusted), sources)
    diagnosis = with_source_commands(diagnosis, event.source, names, status=event.status)
    return Incident(
        key=key,
        subject=evidence.subject,
        event=event,
        evidence=evidence,
        diagnosis=diagnosis,
        links=console_links(evidence.subject) | _job_link(evidence),
        names=names,
        linked_event_ids=[event.event_id],
    )


# The first commands for a failure from each source, before the rule's own (filled like them).
SOURCE_COMMANDS: dict[str, list[str]] = {
    "codebuild": [
        "aws codebuild batch-get-builds --ids {build_id} --region {region} "
        "--query 'builds[0].phases[?phaseStatus!=`SUCCEEDED`].[phaseType,phaseStatus,contexts[0].message]'",
        "aws logs tail {log_group} --log-stream-names {log_stream} --since 1d --region {region}",
    ],
    "cloudformation": [
        "aws cloudformation describe-stack-events --stack-name {stack_name} --region {region} "
        "--query 'StackEvents[?ends_with(ResourceStatus, `_FAILED`)].[Timestamp,LogicalResourceId,ResourceStatusReason]'",
    ],
    "github": ["gh run view {run_id} --repo {github_repository} --log-failed"],
    # A run that never started has no logs: the workflow file is what to check.
    "github:startup_failure": ["actionlint {workflow_path}"],
}
# Names a source's failure never has: a rule's command that needs one is about another source.
_SOURCE_NAMES = {
    "sagemaker": {"job_name", "execution_arn", "state_machine_arn"},
    "stepfunctions": {"job_name", "execution_arn", "state_machine_arn"},
    "codebuild": {"build_id", "project_name"},
    "cloudformation": {"stack_name", "failed_resource"},
    "github": {"github_repository", "run_id", "workflow_path"},
}
_FOREIGN_NAMES = {source: set().union(*_SOURCE_NAMES.values()) - own for source, own in _SOURCE_NAMES.items()}


def with_source_commands(diagnosis: Diagnosis, source: str, names: dict[str, str], *, status: str = "") -> Diagnosis:
    """The source's own commands first; a rule's command that names what this source never has
    (a training job, for a failed CodeBuild build) is left out rather than shown with a hole."""
    from .classify.engine import fill_command

    # A filled command shows a name it was not given as <name>.
    holes = [f"<{name}>" for name in _FOREIGN_NAMES.get(source, ())]
    kept = [command for command in diagnosis.commands if not any(hole in command for hole in holes)]
    templates = SOURCE_COMMANDS.get(f"{source}:{status.lower()}") or SOURCE_COMMANDS.get(source, [])
    own = [fill_command(template, names) for template in templates]
    return diagnosis.model_copy(update={"commands": list(dict.fromkeys(own + kept))})


def _job_link(evidence: Evidence) -> dict[str, str]:
    """The first failed job's page, opened at its failed step (GitHub's own #step:<n>:1 anchor)."""
    run = evidence.workflow_run
    jobs = [job for job in run.failed_jobs if job.html_url] if run else []
    if not jobs:
        return {}
    job = jobs[0]
    return {"failed_job": job.html_url + (f"#step:{job.failed_step_number}:1" if job.failed_step_number else "")}


def incident_key(subject: Subject, event_id: str) -> str:
    """The subject's most specific identity. A name that holds a secret (an access key pasted into a
    job name) is replaced by its hash, so the key never carries the secret and stays unique."""
    identities = subject.identities()
    if not identities:
        return f"event:{_safe(event_id)}"
    kind, _, name = identities[0].partition(":")
    return f"{kind}:{_safe(name)}"


def _safe(name: str) -> str:
    if redact(name) == name:
        return name
    return "sha256-" + hashlib.sha256(name.encode()).hexdigest()[:32]


def compose_document(event: FailureEvent, evidence: Evidence) -> tuple[str, list[str], int]:
    """The text the classifier reads, in causal order: AWS's own verdict first, then the logs.

    Returns the text, where each of its lines came from, and how many leading lines are the
    job's FailureReason (the only place our training image's structured line is trusted).
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
    if job is not None and job.failure_reason:
        add("failure_reason", job.failure_reason)
    elif event.source == "sagemaker":
        add("failure_reason", event.failure_reason)
    trusted = len(lines)
    execution = evidence.execution
    if event.source == "stepfunctions" and not (execution and (execution.error or execution.cause)):
        add("execution", event.failure_reason)
    if execution:
        add("execution", execution.error)
        add("execution", execution.cause)
    build = evidence.build
    if build is not None and build.phase_context:
        add("build", "\n".join(f"{build.failed_phase or 'phase'} FAILED: {context}" for context in build.phase_context))
    elif event.source == "codebuild":
        add("build", event.failure_reason)
    stack = evidence.stack
    if stack is not None and stack.first_failure is not None:
        # The first failed resource only: the cascade after it ("Resource creation cancelled") is noise.
        first = stack.first_failure
        add("stack_event", f"{first.logical_id} ({first.resource_type or 'resource'}) {first.status}: "
                           f"{first.reason or 'no reason given'}")
    if event.source == "cloudformation":
        add("stack", (stack.status_reason if stack else None) or event.failure_reason)
    run = evidence.workflow_run
    if run is not None:
        add("workflow_file", "\n".join(run.startup_error))
    for tail in evidence.logs.streams if evidence.logs else []:
        for line in tail.lines:
            lines.append(line)
            sources.append(f"log:{tail.stream}")
    return "\n".join(lines), sources, trusted


def attach_sources(diagnosis: Diagnosis, sources: list[str]) -> Diagnosis:
    evidence = [
        EvidenceLine(line=item.line, text=item.text,
                     source=sources[item.line - 1] if 0 < item.line <= len(sources) else "input")
        for item in diagnosis.evidence
    ]
    return diagnosis.model_copy(update={"evidence": evidence})
