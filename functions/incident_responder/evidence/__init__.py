"""Evidence gathering: analyzers behind one small interface, registered in one plain dict.

Order matters: the execution history can name the training job, whose description names the
image and whose name locates the logs.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..models import Evidence, FailureEvent, ImageRef, Subject
from .base import TRAINING_LOG_GROUP, Analyzer, GatherSettings, GatherState
from .build import gather_build
from .execution import gather_execution
from .image import gather_image
from .logs import gather_logs
from .stack import gather_stack
from .training_job import gather_training_job
from .workflow_run import gather_workflow_run

# Each analyzer reads only what its source has (a CodeBuild event names no training job, so the
# SageMaker ones return at once); the build's description names its log stream, so it comes first.
ANALYZERS: dict[str, Analyzer] = {
    "execution": gather_execution,
    "training_job": gather_training_job,
    "build": gather_build,
    "stack": gather_stack,
    "logs": gather_logs,
    "image": gather_image,
    "workflow_run": gather_workflow_run,
}

__all__ = ["ANALYZERS", "GatherSettings", "gather", "resolve_subject"]


def gather(
    event: FailureEvent,
    clients: Any,
    settings: GatherSettings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Evidence:
    state = GatherState(
        event=event,
        settings=settings or GatherSettings(),
        sleep=sleep,
        training_job_name=event.training_job_name,
        image_uri=event.image_uri,
    )
    with clients.counter.scope() as calls:
        _run_analyzers(state, clients)
    return Evidence(
        subject=resolve_subject(state),
        training_job=state.training_job,
        logs=state.logs,
        execution=state.execution,
        image=state.image,
        build=state.build,
        stack=state.stack,
        workflow_run=state.workflow_run,
        missing=state.missing,
        api_calls=len(calls),
        aws_failures=state.aws_failures,
        unresolved=state.unresolved,
    )


def _run_analyzers(state: GatherState, clients: Any) -> None:
    event = state.event
    clients_region = getattr(clients, "region", None)
    if clients_region and clients_region != event.region:
        # A same-named job or execution in the clients' region is another one: read nothing.
        state.note_aws_failure(
            "aws",
            f"the event is from {event.region} but the responder reads AWS in {clients_region}: no evidence was "
            f"gathered (deploy the responder in {event.region}, or run `incident-responder triage --region "
            f"{event.region}`)",
        )
    else:
        for analyzer in ANALYZERS.values():
            analyzer(state, clients)


def resolve_subject(state: GatherState) -> Subject:
    """What the incident is about, from the event and everything the analyzers found."""
    event = state.event
    job = state.training_job
    stack = state.stack
    image = None
    if state.image_uri:
        image = ImageRef.parse(state.image_uri, digest=state.image.digest if state.image else None)
    arn = event.training_job_arn or (job.arn if job else None) or event.execution_arn
    account = event.account or (arn.split(":")[4] if arn and arn.count(":") >= 5 else None)
    return Subject(
        region=event.region,
        account=account or None,
        training_job_name=state.training_job_name,
        training_job_arn=event.training_job_arn or (job.arn if job else None),
        execution_arn=event.execution_arn or (state.execution.execution_arn if state.execution else None),
        state_machine_arn=event.state_machine_arn,
        failed_state=state.execution.failed_state if state.execution else None,
        log_group=state.logs.group if state.logs else (TRAINING_LOG_GROUP if state.training_job_name else None),
        log_streams=[tail.stream for tail in state.logs.streams] if state.logs else [],
        image=image,
        build_arn=event.build_arn,
        project_name=event.project_name,
        stack_id=event.stack_id,
        operation=stack.operation if stack else None,
        failed_resource=stack.first_failure.logical_id if stack and stack.first_failure else None,
        repository=event.repository,
        workflow_path=event.workflow_path,
        run_id=event.run_id,
        run_attempt=event.run_attempt,
        run_url=event.run_url,
        head_sha=event.head_sha,
    )
