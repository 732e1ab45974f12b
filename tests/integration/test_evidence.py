"""Evidence gathering against the AWS emulator over HTTP: what is found, and what is said missing."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

from incident_responder.demo.provision import (
    TRAINING_LOG_GROUP,
    create_training_job,
    push_images,
    write_training_log,
)
from incident_responder.evidence import GatherSettings, gather
from incident_responder.models import FailureEvent, ImageRef
from tests.support.moto_server import REGION

NO_WAIT = GatherSettings(log_wait_seconds=0)


def _job_event(name: str, **overrides) -> FailureEvent:
    values = dict(source="sagemaker", event_id=str(uuid.uuid4()), region=REGION, account="123456789012",
                  time=datetime.now(timezone.utc), status="Failed", training_job_name=name)
    return FailureEvent(**{**values, **overrides})


@pytest.fixture
def failed_job(aws_clients, emulator):
    name = f"3dgs-ev-{uuid.uuid4().hex[:10]}"
    image = push_images(aws_clients, "spaceport/3dgs", ["latest"])[0]
    create_training_job(aws_clients, name, image_uri=image, hyperparameters={"max_steps": "30000"})
    emulator.fail_training_job(name, "AlgorithmError: boom", region=REGION)
    return name


def test_training_job_log_and_image_are_gathered(aws_clients, failed_job):
    stream = write_training_log(aws_clients, failed_job, ["starting", "ModuleNotFoundError: No module named 'gsplat'"])
    evidence = gather(_job_event(failed_job), aws_clients, NO_WAIT)
    job = evidence.training_job
    assert job.failure_reason == "AlgorithmError: boom"
    assert job.instance_type == "ml.g4dn.xlarge" and job.hyperparameters == {"max_steps": "30000"}
    assert job.input_channels == ["training"]
    assert evidence.logs.group == TRAINING_LOG_GROUP
    assert evidence.logs.streams[0].stream == stream
    assert evidence.logs.streams[0].lines[-1] == "ModuleNotFoundError: No module named 'gsplat'"
    assert evidence.image.repository == "spaceport/3dgs" and evidence.image.digest.startswith("sha256:")
    assert evidence.image.pushed_at is not None
    assert evidence.missing == []
    assert evidence.api_calls == 4  # DescribeTrainingJob, DescribeLogStreams, GetLogEvents, DescribeImages


def test_log_tail_is_bounded_and_keeps_the_newest_lines(aws_clients, failed_job):
    lines = [f"step={i:05d} loss=0.0{i % 97:02d} padding={'x' * 60}" for i in range(3000)]
    write_training_log(aws_clients, failed_job, lines + ["RuntimeError: the end"])
    budget = 8 * 1024
    evidence = gather(_job_event(failed_job), aws_clients, GatherSettings(log_wait_seconds=0, log_tail_bytes=budget))
    tail = evidence.logs.streams[0]
    assert tail.truncated
    assert tail.lines[-1] == "RuntimeError: the end"
    assert sum(len(line) + 1 for line in tail.lines) <= budget
    assert tail.lines[0].startswith("step=")


def test_a_missing_log_stream_is_polled_then_reported_missing(aws_clients, failed_job):
    waits = []
    settings = GatherSettings(log_wait_seconds=60, log_poll_seconds=2)
    evidence = gather(_job_event(failed_job), aws_clients, settings, sleep=waits.append)
    assert waits == [2, 4, 8, 16, 30]  # doubling, capped at the wait: 6 DescribeLogStreams calls
    assert aws_clients.counter.calls.count("logs:DescribeLogStreams") == 6
    assert evidence.logs is None
    (missing,) = [m for m in evidence.missing if m.source == "logs"]
    assert "log stream not found" in missing.reason and failed_job in missing.reason


def test_unknown_job_is_recorded_missing_not_fatal(aws_clients):
    evidence = gather(_job_event("3dgs-never-existed"), aws_clients, NO_WAIT)
    sources = {m.source for m in evidence.missing}
    assert "training_job" in sources and "logs" in sources
    assert evidence.training_job is None


def test_image_outside_ecr_is_said_so(aws_clients):
    name = f"3dgs-ev-{uuid.uuid4().hex[:10]}"
    create_training_job(aws_clients, name, image_uri="ghcr.io/example/3dgs:latest")
    evidence = gather(_job_event(name), aws_clients, NO_WAIT)
    assert evidence.image.uri == "ghcr.io/example/3dgs:latest" and evidence.image.digest is None
    assert any(m.source == "image" and "not an ECR image" in m.reason for m in evidence.missing)


def test_image_tag_not_in_repository_is_reported(aws_clients):
    name = f"3dgs-ev-{uuid.uuid4().hex[:10]}"
    push_images(aws_clients, "spaceport/3dgs", ["latest"])
    create_training_job(aws_clients, name,
                        image_uri="123456789012.dkr.ecr.us-west-2.amazonaws.com/spaceport/3dgs:deleted-tag")
    evidence = gather(_job_event(name), aws_clients, NO_WAIT)
    assert any(m.source == "image" and "ImageNotFound" in m.reason for m in evidence.missing)


@pytest.mark.parametrize(
    "uri, repository, tag, digest",
    [
        ("123456789012.dkr.ecr.us-west-2.amazonaws.com/spaceport/3dgs:latest", "spaceport/3dgs", "latest", None),
        ("123456789012.dkr.ecr.us-west-2.amazonaws.com/3dgs@sha256:" + "a" * 64, "3dgs", None, "sha256:" + "a" * 64),
        ("123456789012.dkr.ecr.eu-central-1.amazonaws.com/team/a/b", "team/a/b", None, None),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/3dgs:v2", "3dgs", "v2", None),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/3dgs:v2", "3dgs", "v2", None),
        ("nvidia/cuda:11.8.0-devel-ubuntu22.04", None, None, None),
    ],
)
def test_ecr_uri_parsing(uri, repository, tag, digest):
    image = ImageRef.parse(uri)
    assert (image.repository, image.tag, image.digest) == (repository, tag, digest)


def _pipeline_definition(job: str) -> str:
    cause = json.dumps({"TrainingJobName": job, "FailureReason": "AlgorithmError: exec format error"})
    return json.dumps({
        "Comment": "SfM, then 3DGS training; the training task's failure as SageMaker reports it",
        "StartAt": "Run SfM",
        "States": {
            "Run SfM": {"Type": "Pass", "Next": "Train 3DGS model"},
            "Train 3DGS model": {"Type": "Fail", "Error": "SageMaker.TrainingJobFailed", "Cause": cause},
        },
    })


def test_execution_history_names_the_failed_state_and_its_training_job(aws_clients, step_functions, failed_job):
    sfn = step_functions
    machine = sfn.create_state_machine(
        name=f"pipeline-{uuid.uuid4().hex[:8]}", definition=_pipeline_definition(failed_job),
        roleArn="arn:aws:iam::123456789012:role/StatesRole",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:8]}")["executionArn"]
    _wait_for_end(sfn, execution)
    event = FailureEvent(source="stepfunctions", event_id="e1", region=REGION, time=datetime.now(timezone.utc),
                         status="FAILED", execution_arn=execution, state_machine_arn=machine)
    evidence = gather(event, aws_clients, NO_WAIT)
    assert evidence.execution.error == "SageMaker.TrainingJobFailed"
    assert evidence.execution.failed_state == "Train 3DGS model"
    assert evidence.execution.training_job_name == failed_job
    assert evidence.training_job.name == failed_job  # followed from the execution to the job


def _wait_for_end(sfn, execution_arn: str) -> None:
    import time

    for _ in range(100):
        if sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING":
            return
        time.sleep(0.05)
    raise AssertionError(f"{execution_arn} still RUNNING")


def test_a_log_stream_that_appears_while_waiting_is_read(aws_clients, failed_job):
    waits = []

    def sleep_while_the_job_flushes_its_logs(seconds):
        waits.append(seconds)
        if len(waits) == 2:
            write_training_log(aws_clients, failed_job, ["RuntimeError: CUDA error: no kernel image"])

    settings = GatherSettings(log_wait_seconds=60, log_poll_seconds=2)
    evidence = gather(_job_event(failed_job), aws_clients, settings, sleep=sleep_while_the_job_flushes_its_logs)
    assert waits == [2, 4]
    assert evidence.logs.streams[0].lines == ["RuntimeError: CUDA error: no kernel image"]
    assert not any(m.source == "logs" for m in evidence.missing)
