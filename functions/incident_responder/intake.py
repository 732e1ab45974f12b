"""From a raw EventBridge event to a FailureEvent, a known-good record, an ignorable event, or a
clear IntakeError. Never raises on bad input: a malformed event is data to record and alert on.

The detail models follow AWS's documented samples (events/aws-sample-*.json): SageMaker sends
timestamps as epoch-millisecond strings, Step Functions as epoch-millisecond numbers; both add
fields over time, so unknown fields are allowed and ignored.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .models import FailureEvent, IntakeError
from .redact import redact

SAGEMAKER_DETAIL_TYPE = "SageMaker Training Job State Change"
STEPFUNCTIONS_DETAIL_TYPE = "Step Functions Execution Status Change"
CODEBUILD_DETAIL_TYPE = "CodeBuild Build State Change"
CLOUDFORMATION_DETAIL_TYPE = "CloudFormation Stack Status Change"
# A GitHub delivery, verified by the webhook endpoint and handed to triage on the event bus.
GITHUB_DETAIL_TYPE = "GitHub Workflow Run Failed"
GITHUB_EVENT_SOURCE = "threedgs.incident-responder.github"
HANDLED = {SAGEMAKER_DETAIL_TYPE: "aws.sagemaker", STEPFUNCTIONS_DETAIL_TYPE: "aws.states",
           CODEBUILD_DETAIL_TYPE: "aws.codebuild", CLOUDFORMATION_DETAIL_TYPE: "aws.cloudformation",
           GITHUB_DETAIL_TYPE: GITHUB_EVENT_SOURCE}
FAILED_EXECUTION_STATUSES = {"FAILED", "TIMED_OUT", "ABORTED"}
# STOPPED is a person's decision, not a failure.
FAILED_BUILD_STATUSES = {"FAILED", "FAULT", "TIMED_OUT"}
RAW_EXCERPT_BYTES = 2048
ERROR_LINE_CHARS = 600
# AWS caps FailureReason at 1,024 characters and a Step Functions cause at 32,768; a larger value is
# not AWS's and is cut here, so no record or report can be made to overflow.
REASON_MAX_CHARS = 32_768


def _epoch_ms(value: Any) -> Any:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
    return value


# Schemas are built on first use, not at import (cold start).
_LAZY = ConfigDict(defer_build=True)


class _AwsDetail(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class SageMakerAlgorithmSpecification(_AwsDetail):
    TrainingImage: str | None = None
    TrainingInputMode: str | None = None


class SageMakerResourceConfig(_AwsDetail):
    InstanceType: str | None = None
    InstanceCount: int | None = None
    VolumeSizeInGB: int | None = None


class SageMakerTrainingJobDetail(_AwsDetail):
    TrainingJobName: str = Field(min_length=1, max_length=63)
    TrainingJobArn: str = Field(pattern=r"^arn:aws[a-z-]*:sagemaker:")
    TrainingJobStatus: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
    SecondaryStatus: str | None = None
    FailureReason: str | None = None
    HyperParameters: dict[str, str] = {}
    AlgorithmSpecification: SageMakerAlgorithmSpecification | None = None
    ResourceConfig: SageMakerResourceConfig | None = None
    CreationTime: datetime | None = None
    TrainingStartTime: datetime | None = None
    TrainingEndTime: datetime | None = None
    LastModifiedTime: datetime | None = None

    _times = field_validator(
        "CreationTime", "TrainingStartTime", "TrainingEndTime", "LastModifiedTime", mode="before"
    )(_epoch_ms)


class SageMakerTrainingJobStateChange(EventBridgeModel):
    model_config = _LAZY
    detail_type: Literal["SageMaker Training Job State Change"] = Field(alias="detail-type")
    source: Literal["aws.sagemaker"]
    detail: SageMakerTrainingJobDetail


class StepFunctionsExecutionDetail(_AwsDetail):
    executionArn: str = Field(pattern=r"^arn:aws[a-z-]*:states:[^:]+:[^:]*:execution:")
    stateMachineArn: str = Field(pattern=r"^arn:aws[a-z-]*:states:[^:]+:[^:]*:stateMachine:")
    name: str
    status: Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
    startDate: datetime | None = None
    stopDate: datetime | None = None
    input: str | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None

    _times = field_validator("startDate", "stopDate", mode="before")(_epoch_ms)


class StepFunctionsExecutionStatusChange(EventBridgeModel):
    model_config = _LAZY
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    source: Literal["aws.states"]
    detail: StepFunctionsExecutionDetail


class CodeBuildLogs(_AwsDetail):
    group_name: str | None = Field(None, alias="group-name")
    stream_name: str | None = Field(None, alias="stream-name")
    deep_link: str | None = Field(None, alias="deep-link")


class CodeBuildPhase(_AwsDetail):
    phase_type: str | None = Field(None, alias="phase-type")
    phase_status: str | None = Field(None, alias="phase-status")
    phase_context: list[str] = Field([], alias="phase-context")


class CodeBuildAdditionalInformation(_AwsDetail):
    logs: CodeBuildLogs | None = None
    phases: list[CodeBuildPhase] = []
    source_version: str | None = Field(None, alias="source-version")
    initiator: str | None = None


class CodeBuildBuildDetail(_AwsDetail):
    build_status: Literal["IN_PROGRESS", "SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"] = Field(
        alias="build-status")
    project_name: str = Field(alias="project-name", min_length=2, max_length=255)
    build_id: str = Field(alias="build-id", pattern=r"^arn:aws[a-z-]*:codebuild:[^:]+:\d{12}:build/[^:]+:.+$")
    additional_information: CodeBuildAdditionalInformation | None = Field(None, alias="additional-information")


class CodeBuildBuildStateChange(EventBridgeModel):
    model_config = _LAZY
    detail_type: Literal["CodeBuild Build State Change"] = Field(alias="detail-type")
    source: Literal["aws.codebuild"]
    detail: CodeBuildBuildDetail


class CloudFormationStatusDetails(_AwsDetail):
    status: str = Field(pattern=r"^[A-Z_]+$")
    status_reason: str | None = Field(None, alias="status-reason")


class CloudFormationStackDetail(_AwsDetail):
    stack_id: str = Field(alias="stack-id", pattern=r"^arn:aws[a-z-]*:cloudformation:[^:]+:\d{12}:stack/[^/]+/.+$")
    status_details: CloudFormationStatusDetails = Field(alias="status-details")
    client_request_token: str | None = Field(None, alias="client-request-token")


class CloudFormationStackStatusChange(EventBridgeModel):
    model_config = _LAZY
    detail_type: Literal["CloudFormation Stack Status Change"] = Field(alias="detail-type")
    source: Literal["aws.cloudformation"]
    detail: CloudFormationStackDetail


class GitHubRunHandedOff(EventBridgeModel):
    """The endpoint's FailureEvent for a verified `workflow_run` delivery, as its detail."""

    model_config = _LAZY
    detail_type: Literal["GitHub Workflow Run Failed"] = Field(alias="detail-type")
    source: Literal["threedgs.incident-responder.github"]
    detail: FailureEvent

    @field_validator("detail")
    @classmethod
    def _is_a_github_failure(cls, detail: FailureEvent) -> FailureEvent:
        if detail.source != "github" or not (detail.repository and detail.run_id):
            raise ValueError("a handed-off GitHub failure names source 'github', its repository and run_id")
        return detail


def is_failed_stack_status(status: str) -> bool:
    """A deployment that failed: *_FAILED, or a rollback under way or done (the template's rule matches
    the same statuses). UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS is the rollback tidying up."""
    return status.endswith("_FAILED") or status.endswith("ROLLBACK_IN_PROGRESS") or status.endswith("ROLLBACK_COMPLETE")


class KnownGoodImage(BaseModel):
    """A training job completed: its image is a rollback candidate."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    event_id: str | None = None
    training_job_name: str
    image_uri: str
    region: str
    completed_at: datetime
    training_started_at: datetime | None = None


class Ignored(BaseModel):
    """A well-formed event that needs no action (e.g. an execution that SUCCEEDED)."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    event_id: str
    reason: str


Intake = FailureEvent | KnownGoodImage | Ignored | IntakeError

_MODELS = {
    SAGEMAKER_DETAIL_TYPE: SageMakerTrainingJobStateChange,
    STEPFUNCTIONS_DETAIL_TYPE: StepFunctionsExecutionStatusChange,
    CODEBUILD_DETAIL_TYPE: CodeBuildBuildStateChange,
    CLOUDFORMATION_DETAIL_TYPE: CloudFormationStackStatusChange,
    GITHUB_DETAIL_TYPE: GitHubRunHandedOff,
}


def parse_event(raw: Any, *, ignore_state_machines: frozenset[str] = frozenset()) -> Intake:
    """Classify a raw event into what the responder should do with it."""
    if not isinstance(raw, dict):
        return _intake_error(raw, [f"the event is a JSON {type(raw).__name__}, not an object: "
                                   "the responder expects an EventBridge event (see events/)"])
    detail_type = raw.get("detail-type")
    model = _MODELS.get(detail_type) if isinstance(detail_type, str) else None
    if model is None:
        expected = " or ".join(f"'{name}' from {source}" for name, source in HANDLED.items())
        got = "missing" if detail_type is None else f"'{detail_type}' is not handled"
        return _intake_error(raw, [
            f"detail-type: {got} (source '{raw.get('source')}'); the responder handles {expected}. "
            "Check the EventBridge rule's event pattern that routed this event here."
        ])
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        return _intake_error(raw, _describe(exc, detail_type))
    except RecursionError:
        return _intake_error(raw, ["(event): nested too deeply to parse; an EventBridge event from AWS never is. "
                                   "Check what produced this event."])
    if isinstance(parsed, SageMakerTrainingJobStateChange):
        return _from_sagemaker(parsed)
    if isinstance(parsed, CodeBuildBuildStateChange):
        return _from_codebuild(parsed)
    if isinstance(parsed, CloudFormationStackStatusChange):
        return _from_cloudformation(parsed)
    if isinstance(parsed, GitHubRunHandedOff):
        # Verified (signature, age, allow-lists, replay) and bounded by the endpoint before it was sent.
        return parsed.detail
    return _from_stepfunctions(parsed, ignore_state_machines)


def _from_sagemaker(event: SageMakerTrainingJobStateChange) -> Intake:
    detail = event.detail
    image = detail.AlgorithmSpecification.TrainingImage if detail.AlgorithmSpecification else None
    if detail.TrainingJobStatus == "Completed":
        if not image:
            return Ignored(event_id=event.id, reason="completed job has no TrainingImage")
        return KnownGoodImage(
            event_id=event.id,
            # The ledger keeps it: redacted here, the known-good path's boundary (a failure's is triage's).
            training_job_name=redact(detail.TrainingJobName),
            image_uri=image,
            region=event.region,
            completed_at=detail.TrainingEndTime or event.time,
            training_started_at=detail.TrainingStartTime,
        )
    if detail.TrainingJobStatus != "Failed":
        return Ignored(event_id=event.id, reason=f"training job status is {detail.TrainingJobStatus}")
    return FailureEvent(
        source="sagemaker",
        event_id=event.id,
        region=event.region,
        account=event.account or None,
        time=event.time,
        status=detail.TrainingJobStatus,
        training_job_name=detail.TrainingJobName,
        training_job_arn=detail.TrainingJobArn,
        failure_reason=_bounded(detail.FailureReason),
        image_uri=image,
        secondary_status=detail.SecondaryStatus,
    )


def _from_stepfunctions(event: StepFunctionsExecutionStatusChange, ignore: frozenset[str]) -> Intake:
    detail = event.detail
    if detail.stateMachineArn in ignore:
        # The responder must never react to its own workflows failing (it would loop).
        return Ignored(event_id=event.id, reason="execution of the responder's own state machine")
    if detail.status not in FAILED_EXECUTION_STATUSES:
        return Ignored(event_id=event.id, reason=f"execution status is {detail.status}")
    reason = _bounded(": ".join(part for part in (detail.error, detail.cause) if part))
    return FailureEvent(
        source="stepfunctions",
        event_id=event.id,
        region=event.region,
        account=event.account or None,
        time=event.time,
        status=detail.status,
        execution_arn=detail.executionArn,
        state_machine_arn=detail.stateMachineArn,
        failure_reason=reason,
    )


def _from_codebuild(event: CodeBuildBuildStateChange) -> Intake:
    detail = event.detail
    if detail.build_status not in FAILED_BUILD_STATUSES:
        return Ignored(event_id=event.id, reason=f"build status is {detail.build_status}")
    info = detail.additional_information or CodeBuildAdditionalInformation()
    failed = [p for p in info.phases if p.phase_status in FAILED_BUILD_STATUSES]
    reason = "\n".join(f"{p.phase_type or 'phase'} {p.phase_status}: {context}"
                       for p in failed for context in p.phase_context if context.strip(": "))
    return FailureEvent(
        source="codebuild",
        event_id=event.id,
        region=event.region,
        account=event.account or None,
        time=event.time,
        status=detail.build_status,
        build_arn=detail.build_id,
        project_name=detail.project_name,
        failure_reason=_bounded(reason),
        log_group=info.logs.group_name if info.logs else None,
        log_stream=info.logs.stream_name if info.logs else None,
    )


def _from_cloudformation(event: CloudFormationStackStatusChange) -> Intake:
    detail = event.detail
    status = detail.status_details.status
    if not is_failed_stack_status(status):
        return Ignored(event_id=event.id, reason=f"stack status is {status}")
    return FailureEvent(
        source="cloudformation",
        event_id=event.id,
        region=event.region,
        account=event.account or None,
        time=event.time,
        status=status,
        stack_id=detail.stack_id,
        failure_reason=_bounded(detail.status_details.status_reason),
    )


def _bounded(text: str | None) -> str | None:
    if not text:
        return None
    if len(text) <= REASON_MAX_CHARS:
        return text
    return text[:REASON_MAX_CHARS] + f" … [cut: {len(text)} chars]"


def _describe(exc: ValidationError, detail_type: str) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(event)"
        got = error.get("input")
        # Redacted whole, then cut: a cut first could leave half a secret that no pattern knows.
        shown = redact(_dumps(got))[:80] if error["type"] != "missing" else "nothing"
        problems.append(
            f"{field}: {error['msg']} (got {shown}). A '{detail_type}' event from EventBridge always "
            f"has this field; compare with events/ and check that nothing rewrites the event on its way."
        )
    return problems


def _intake_error(raw: Any, errors: list[str]) -> IntakeError:
    """The intake path's redaction boundary: everything an IntakeError holds is redacted here."""
    as_dict = raw if isinstance(raw, dict) else {}
    error = IntakeError(
        event_id=_field(as_dict.get("id")),
        source=_field(as_dict.get("source")),
        detail_type=_field(as_dict.get("detail-type")),
        errors=[redact(problem)[:ERROR_LINE_CHARS] for problem in errors],
        raw_excerpt=redact(_dumps(raw)[: RAW_EXCERPT_BYTES * 4])[:RAW_EXCERPT_BYTES],
    )
    return error


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)[: RAW_EXCERPT_BYTES * 4] if not isinstance(value, (dict, list)) else (
            f"<{type(value).__name__} too deeply nested to show>")


def _field(value: Any) -> str | None:
    return redact(value)[:ERROR_LINE_CHARS] if isinstance(value, str) else None
