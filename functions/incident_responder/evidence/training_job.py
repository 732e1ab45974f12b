"""DescribeTrainingJob: FailureReason, image, hyperparameters, instance, timings, transitions."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import TrainingJobEvidence
from .base import GatherState, aws_error


def gather_training_job(state: GatherState, clients: Any) -> None:
    name = state.training_job_name
    if not name:
        if state.event.source in ("sagemaker", "stepfunctions"):
            state.note_missing("training_job", "no training job is linked to this failure")
        return
    try:
        job = clients.sagemaker.describe_training_job(TrainingJobName=name)
    except (ClientError, BotoCoreError) as exc:
        state.note_aws_failure("training_job", f"DescribeTrainingJob({name}) failed: {aws_error(exc)}")
        return
    expected = state.event.training_job_arn
    if expected and job.get("TrainingJobArn") and job["TrainingJobArn"] != expected:
        state.note_missing("training_job", f"DescribeTrainingJob({name}) answered for {job['TrainingJobArn']}, "
                                           f"not the event's {expected}: that job's evidence was not used")
        return
    spec = job.get("AlgorithmSpecification", {})
    resources = job.get("ResourceConfig", {})
    state.training_job = TrainingJobEvidence(
        name=name,
        arn=job.get("TrainingJobArn"),
        status=job.get("TrainingJobStatus"),
        failure_reason=job.get("FailureReason"),
        image_uri=spec.get("TrainingImage"),
        instance_type=resources.get("InstanceType"),
        instance_count=resources.get("InstanceCount"),
        hyperparameters=job.get("HyperParameters", {}),
        created=job.get("CreationTime"),
        started=job.get("TrainingStartTime"),
        ended=job.get("TrainingEndTime"),
        billable_seconds=job.get("BillableTimeInSeconds"),
        secondary_transitions=[
            {k: str(v) for k, v in t.items()} for t in job.get("SecondaryStatusTransitions", [])
        ],
        input_channels=[c.get("ChannelName", "") for c in job.get("InputDataConfig", [])],
        output_path=job.get("OutputDataConfig", {}).get("S3OutputPath"),
        role_arn=job.get("RoleArn"),
    )
    state.image_uri = state.image_uri or state.training_job.image_uri
