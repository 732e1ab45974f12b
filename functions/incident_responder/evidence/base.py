"""What every evidence analyzer shares: settings, the state it fills in, and the interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..models import (
    BuildEvidence,
    ExecutionEvidence,
    FailureEvent,
    ImageEvidence,
    LogEvidence,
    Missing,
    StackEvidence,
    TrainingJobEvidence,
    WorkflowRunEvidence,
)

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


class GatherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    log_group: str = TRAINING_LOG_GROUP
    log_tail_bytes: int = Field(65_536, ge=1_024, le=1_048_576)
    max_log_streams: int = Field(2, ge=1, le=20)
    # Logs can become readable a minute or more after a job fails.
    log_wait_seconds: float = Field(60.0, ge=0, le=600)
    log_poll_seconds: float = Field(2.0, gt=0, le=60, description="first wait; each next one doubles")
    max_history_pages: int = Field(3, ge=1, le=20)


@dataclass
class GatherState:
    """Evidence being assembled; analyzers read what earlier ones found."""

    event: FailureEvent
    settings: GatherSettings
    sleep: Callable[[float], None]
    training_job_name: str | None = None
    image_uri: str | None = None
    training_job: TrainingJobEvidence | None = None
    logs: LogEvidence | None = None
    execution: ExecutionEvidence | None = None
    image: ImageEvidence | None = None
    build: BuildEvidence | None = None
    stack: StackEvidence | None = None
    workflow_run: WorkflowRunEvidence | None = None
    missing: list[Missing] = field(default_factory=list)
    aws_failures: int = 0
    unresolved: str | None = None

    def note_missing(self, source: str, reason: str) -> None:
        self.missing.append(Missing(source=source, reason=reason))

    def note_aws_failure(self, source: str, reason: str) -> None:
        """Evidence missing because an AWS call failed (not because it does not exist)."""
        self.aws_failures += 1
        self.note_missing(source, reason)


class Analyzer(Protocol):
    """Gathers one kind of evidence. Never raises for AWS errors: records them as missing."""

    def __call__(self, state: GatherState, clients: Any) -> None: ...


def aws_error(exc: Exception) -> str:
    """A short, person-readable form of a botocore error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"
