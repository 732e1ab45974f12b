"""The contracts between intake, evidence gathering, classification and reporting.

Everything that crosses a module boundary is one of these models, so a sink never
needs to know how a diagnosis was reached and a classifier never needs to know
where its text came from.
"""

from __future__ import annotations

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


class FailureEvent(_Frozen):
    """"A pipeline run failed", built from either AWS event (see intake.py)."""

    source: Literal["sagemaker", "stepfunctions"]
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

    @property
    def subject_name(self) -> str:
        """What failed, as a person would name it."""
        if self.training_job_name:
            return self.training_job_name
        if self.execution_arn:
            return self.execution_arn.rsplit(":", 1)[-1]
        return self.event_id


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


class Evidence(_Frozen):
    training_job: TrainingJobEvidence | None = None
    logs: LogEvidence | None = None
    execution: ExecutionEvidence | None = None
    image: ImageEvidence | None = None
    missing: list[Missing] = []
    api_calls: int = 0


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


class Incident(_Frozen):
    """The unit of dedup and of the audit trail."""

    key: str
    event: FailureEvent
    evidence: Evidence
    diagnosis: Diagnosis
    links: dict[str, str] = {}
    names: dict[str, str] = Field({}, description="values the command templates were filled with")
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    linked_event_ids: list[str] = []
    notifications: list[Notification] = []

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
