"""The contracts between intake, evidence gathering, classification and reporting.

Everything that crosses a module boundary is one of these models, so a sink never
needs to know how a diagnosis was reached and a classifier never needs to know
where its text came from.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Category(str, Enum):
    """The troubleshooting guide's root-cause categories (ids from docs/architecture.md)."""

    entry_point = "entry_point"
    cuda_gpu = "cuda_gpu"
    python_dependencies = "python_dependencies"
    sagemaker_environment = "sagemaker_environment"
    file_permissions_paths = "file_permissions_paths"
    workflow_parsing = "workflow_parsing"
    aws_credentials = "aws_credentials"
    cdk_bootstrap_trust = "cdk_bootstrap_trust"
    unknown = "unknown"


GUIDE_CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category if c is not Category.unknown)


class _Frozen(BaseModel):
    # Schemas are built on first use, not at import: a cold start pays only for what it uses.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# ---------------------------------------------------------------- intake


Source = Literal["sagemaker", "stepfunctions", "codebuild", "cloudformation", "github"]


class FailureEvent(_Frozen):
    """"Something in the pipeline failed", built from any source's event (intake.py, github/)."""

    source: Source
    event_id: str
    region: str
    account: str | None = None
    time: datetime
    status: str = Field(description="TrainingJobStatus or execution status as AWS sent it")
    training_job_name: str | None = None
    training_job_arn: str | None = None
    execution_arn: str | None = None
    state_machine_arn: str | None = None
    failure_reason: str | None = Field(None, description="FailureReason or the execution's error/cause")
    image_uri: str | None = None
    secondary_status: str | None = None
    # CodeBuild: the build (its ARN is the build id) and where its log is.
    build_arn: str | None = None
    project_name: str | None = None
    log_group: str | None = None
    log_stream: str | None = None
    # CloudFormation (and CDK, which deploys through it): the stack.
    stack_id: str | None = None
    # GitHub Actions: the workflow run.
    repository: str | None = Field(None, description="owner/name")
    workflow_path: str | None = None
    workflow_name: str | None = None
    run_id: int | None = None
    run_attempt: int | None = None
    run_url: str | None = None
    head_sha: str | None = None
    head_branch: str | None = None

    @property
    def subject_name(self) -> str:
        """What failed, as a person would name it."""
        if self.training_job_name:
            return self.training_job_name
        if self.execution_arn:
            return self.execution_arn.rsplit(":", 1)[-1]
        if self.build_arn:
            return self.build_arn.rsplit("/", 1)[-1]
        if self.stack_id:
            return stack_name(self.stack_id)
        if self.repository and self.run_id:
            return f"{self.repository} run {self.run_id}"
        return self.event_id


def stack_name(stack_id: str) -> str:
    """arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid> -> <name> (a bare name stays)."""
    parts = stack_id.split(":", 5)[-1].split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "stack" else stack_id


# ---------------------------------------------------------------- subject

# The one ECR image URI parser (<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag][@digest]):
# registry account, region (FIPS and China hosts too), repository, tag and/or digest.
_ECR_URI = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class ImageRef(_Frozen):
    """A container image as the job named it, with its ECR parts when it is an ECR image."""

    uri: str
    registry: str | None = Field(None, description="the registry's account id (ECR only)")
    region: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = Field(None, description="sha256:..., from the URI or from ECR")

    @classmethod
    def parse(cls, uri: str, *, digest: str | None = None) -> "ImageRef":
        match = _ECR_URI.match(uri or "")
        if match is None:
            return cls(uri=uri, digest=digest)
        parts = match.groupdict()
        return cls(uri=uri, registry=parts["registry"], region=parts["region"], repository=parts["repository"],
                   tag=parts["tag"], digest=parts["digest"] or digest)

    @classmethod
    def in_ecr(cls, registry: str, region: str, repository: str, *, tag: str | None = None,
               digest: str | None = None) -> "ImageRef":
        host = f"{registry}.dkr.ecr.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")
        uri = f"{host}/{repository}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
        return cls.parse(uri)

    @property
    def is_ecr(self) -> bool:
        return self.repository is not None


class Subject(_Frozen):
    """Everything an incident is about, resolved once by evidence gathering; nothing re-derives it."""

    region: str
    account: str | None = None
    training_job_name: str | None = None
    training_job_arn: str | None = None
    execution_arn: str | None = None
    state_machine_arn: str | None = None
    failed_state: str | None = None
    log_group: str | None = None
    log_streams: list[str] = []
    image: ImageRef | None = None
    build_arn: str | None = None
    project_name: str | None = None
    stack_id: str | None = None
    operation: str | None = Field(None, description="the stack operation (deployment) that failed: the id of "
                                                    "its 'User Initiated' stack event")
    failed_resource: str | None = Field(None, description="logical id of the stack's first failed resource")
    repository: str | None = None
    workflow_path: str | None = None
    run_id: int | None = None
    run_attempt: int | None = None
    run_url: str | None = None
    head_sha: str | None = None

    @property
    def execution_name(self) -> str | None:
        return self.execution_arn.rsplit(":", 1)[-1] if self.execution_arn else None

    @property
    def build_id(self) -> str | None:
        """<project>:<uuid>, as CodeBuild's console and CLI name a build."""
        return self.build_arn.split(":build/", 1)[-1] if self.build_arn else None

    @property
    def stack_name(self) -> str | None:
        return stack_name(self.stack_id) if self.stack_id else None

    def identities(self) -> list[str]:
        """The names this failure is known by, most specific first; the incident key is the first."""
        found = []
        if self.training_job_name:
            found.append(f"training-job:{self.region}:{self.training_job_name}")
        if self.execution_arn:
            found.append(f"execution:{self.execution_arn}")
        if self.build_arn:
            found.append(f"codebuild-build:{self.build_arn}")
        if self.stack_id:
            # A failed deployment sends several status changes (UPDATE_ROLLBACK_IN_PROGRESS, then
            # _COMPLETE): one incident per operation, not per status.
            found.append(f"stack:{self.stack_id}" + (f"#{self.operation}" if self.operation else ""))
        if self.repository and self.run_id:
            found.append(f"github-run:{self.repository}:{self.run_id}:{self.run_attempt or 1}")
        return found

    def template_names(self) -> dict[str, str]:
        """Values for the investigation command templates; only what is known."""
        names = {
            "region": self.region,
            "account": self.account or (self.image.registry if self.image else None),
            "job_name": self.training_job_name,
            "execution_arn": self.execution_arn,
            "state_machine_arn": self.state_machine_arn,
            "log_group": self.log_group,
            "log_stream": self.log_streams[0] if self.log_streams else None,
            "image_uri": self.image.uri if self.image else None,
            "repository": self.image.repository if self.image else None,
            "image_tag": self.image.tag if self.image else None,
            "build_id": self.build_id,
            "project_name": self.project_name,
            "stack_name": self.stack_name,
            "failed_resource": self.failed_resource,
            "github_repository": self.repository,
            "run_id": str(self.run_id) if self.run_id else None,
            "workflow_path": self.workflow_path,
        }
        return {key: value for key, value in names.items() if value}

    def merged_with(self, other: "Subject") -> "Subject":
        """This subject with what ``other`` knows and this one does not."""
        update: dict[str, Any] = {}
        for name in type(self).model_fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs and not mine:
                update[name] = theirs
        if self.image and other.image and not self.image.digest and other.image.digest:
            update["image"] = self.image.model_copy(update={"digest": other.image.digest})
        return self.model_copy(update=update) if update else self

    def additions(self, other: "Subject") -> list[str]:
        """What ``other`` adds to this subject, as labelled facts (empty: nothing new)."""
        labels = {"training_job_name": "training job", "execution_arn": "pipeline execution",
                  "state_machine_arn": "state machine", "failed_state": "failed state",
                  "log_streams": "log streams", "image": "image", "failed_resource": "failed resource"}
        added = []
        for name, label in labels.items():
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs and not mine:
                shown = theirs.uri if isinstance(theirs, ImageRef) else (
                    ", ".join(theirs) if isinstance(theirs, list) else str(theirs))
                added.append(f"{label}: {shown}")
        return added


# ---------------------------------------------------------------- evidence


class Missing(_Frozen):
    """A piece of evidence that could not be gathered, and why (never fatal)."""

    source: str
    reason: str


class TrainingJobEvidence(_Frozen):
    name: str
    arn: str | None = None
    status: str | None = None
    failure_reason: str | None = None
    image_uri: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    hyperparameters: dict[str, str] = {}
    created: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    billable_seconds: int | None = None
    secondary_transitions: list[dict[str, Any]] = []
    input_channels: list[str] = []
    output_path: str | None = None
    role_arn: str | None = None


class LogStreamTail(_Frozen):
    stream: str
    lines: list[str]
    truncated: bool = Field(False, description="older lines were left out to stay within the byte budget")
    cut_events: int = Field(0, description="log events longer than the per-event cap, kept cut to their head")


class LogEvidence(_Frozen):
    group: str
    streams: list[LogStreamTail] = []

    @property
    def primary_stream(self) -> str | None:
        return self.streams[0].stream if self.streams else None


class ExecutionEvidence(_Frozen):
    execution_arn: str
    status: str | None = None
    failed_state: str | None = None
    error: str | None = None
    cause: str | None = None
    training_job_name: str | None = None
    events_read: int = 0


class ImageEvidence(_Frozen):
    uri: str
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    pushed_at: datetime | None = None
    size_bytes: int | None = None


class BuildEvidence(_Frozen):
    """BatchGetBuilds: the failed phase and CodeBuild's own words for it."""

    arn: str
    project: str | None = None
    number: int | None = None
    status: str | None = None
    failed_phase: str | None = None
    phase_context: list[str] = Field([], description="the failed phase's contexts (CodeBuild's error messages)")
    source_version: str | None = None
    initiator: str | None = None
    log_group: str | None = None
    log_stream: str | None = None


class StackResourceFailure(_Frozen):
    logical_id: str
    resource_type: str | None = None
    physical_id: str | None = None
    status: str
    reason: str | None = None
    timestamp: datetime | None = None


class StackEvidence(_Frozen):
    """DescribeStackEvents: the failed operation's first failed resource, not the cascade after it."""

    stack_id: str
    stack_name: str
    status: str | None = None
    status_reason: str | None = None
    operation: str | None = Field(None, description="the event id of the operation's 'User Initiated' event")
    operation_started_at: datetime | None = None
    first_failure: StackResourceFailure | None = None
    failed_resources: int = Field(0, description="resources that failed in this operation (the cascade included)")
    events_read: int = 0


class FailedJob(_Frozen):
    id: int
    name: str
    html_url: str | None = None
    failed_step: str | None = None
    failed_step_number: int | None = None


class WorkflowRunEvidence(_Frozen):
    """GitHub's REST API: the run's failed jobs and steps, or why the workflow could not start."""

    repository: str
    run_id: int
    run_attempt: int = 1
    workflow_path: str | None = None
    workflow_name: str | None = None
    conclusion: str | None = None
    html_url: str | None = None
    failed_jobs: list[FailedJob] = []
    startup_error: list[str] = Field([], description="why the workflow file could not be used, in GitHub's words, "
                                                     "with the file and line")


class Evidence(_Frozen):
    subject: Subject
    training_job: TrainingJobEvidence | None = None
    logs: LogEvidence | None = None
    execution: ExecutionEvidence | None = None
    image: ImageEvidence | None = None
    build: BuildEvidence | None = None
    stack: StackEvidence | None = None
    workflow_run: WorkflowRunEvidence | None = None
    missing: list[Missing] = []
    api_calls: int = 0
    aws_failures: int = Field(0, description="AWS calls that failed (each is also a Missing item)")
    unresolved: str | None = Field(None, description="why the subject may be incomplete (a retry may join it)")


# ---------------------------------------------------------------- diagnosis


class EvidenceLine(_Frozen):
    """A line that decided the diagnosis: its 1-based number in the classified text."""

    line: int
    text: str
    source: str | None = Field(None, description="failure_reason, log:<stream>, execution, or input")


class Diagnosis(_Frozen):
    category: Category
    cause: str = Field(description="specific, stable id, e.g. train_argument_replaces_cmd")
    confidence: float = Field(ge=0.0, le=1.0)
    title: str = Field(description="one-line human summary of the cause")
    rule_id: str | None = None
    evidence: list[EvidenceLine] = []
    remediation: list[str] = []
    commands: list[str] = Field([], description="investigation commands, filled with the incident's names")

    def as_record(self, source: str) -> dict[str, Any]:
        """The `classify --format json` line and the ClassifyFunction's response."""
        return {
            "source": source,
            "category": self.category.value,
            "cause": self.cause,
            "confidence": round(self.confidence, 3),
            "evidence": [{"line": e.line, "text": e.text} for e in self.evidence],
            "remediation": list(self.remediation),
        }


# ---------------------------------------------------------------- incident


class Notification(_Frozen):
    sink: str
    ok: bool
    message_id: str | None = None
    detail: str | None = None
    kind: Literal["alert", "follow_up", "intake_error"] = "alert"
    recorded: bool = Field(True, description="False when the incident store could not record this delivery")


class RollbackProposal(_Frozen):
    """Point the pipeline back at the repository's last known-good digest (operator-approved)."""

    approval_id: str = Field(description="short id the messages carry; the task token stays server-side")
    mode: Literal["ecr-retag", "parameter"]
    region: str
    registry: str | None = None
    repository: str
    tag: str | None = Field(None, description="the tag the failing job named")
    from_digest: str = Field(description="the failing digest")
    to_digest: str = Field(description="the known-good digest")
    to_training_job: str = Field(description="the job that last succeeded with the target")
    to_completed_at: datetime
    approve_url: str | None = Field(None, description="signed, expiring confirmation link (GET shows, POST decides)")
    reject_url: str | None = None


class RollbackAdvice(_Frozen):
    """What the report says about a rollback: a proposal, or why none is proposed."""

    proposal: RollbackProposal | None = None
    reason: str


class Incident(_Frozen):
    """The unit of dedup and of the audit trail."""

    key: str
    subject: Subject
    event: FailureEvent
    evidence: Evidence
    diagnosis: Diagnosis
    links: dict[str, str] = {}
    names: dict[str, str] = Field({}, description="values the command templates were filled with")
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    linked_event_ids: list[str] = []
    notifications: list[Notification] = []
    added: list[str] = Field([], description="what the latest linked event added (a follow-up says this)")
    rollback: RollbackAdvice | None = Field(None, description="the rollback proposal, or why none (None: not assessed)")

    def without_log_lines(self) -> "Incident":
        """The incident without its log tails' lines (stream names kept): what reports show and the
        record keeps. The tails are up to LogTailBytes (1 MiB), more than a DynamoDB item holds, and
        stay in CloudWatch; the diagnosis keeps the lines that decided it."""
        logs = self.evidence.logs
        if logs is None or not any(s.lines for s in logs.streams):
            return self
        logs = logs.model_copy(update={"streams": [s.model_copy(update={"lines": []}) for s in logs.streams]})
        return self.model_copy(update={"evidence": self.evidence.model_copy(update={"logs": logs})})


class IntakeError(_Frozen):
    """An event the responder could not use. Recorded and alerted, never retried."""

    event_id: str | None = None
    source: str | None = None
    detail_type: str | None = None
    errors: list[str] = Field(description="one line per problem, naming the field and what to do")
    received_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    raw_excerpt: str = Field("", description="the first bytes of the event, redacted")
