"""A failed training job also fails its pipeline execution: two events, one incident, one report."""

from __future__ import annotations

import json
import time
import uuid

from incident_responder.demo.provision import (
    create_incident_table,
    create_training_job,
    push_images,
    write_training_log,
)
from incident_responder.demo.run import training_job_event
from incident_responder.runtime import ResponderSettings, build_runtime
from incident_responder.respond import handle_event
from tests.support.moto_server import REGION


def _pipeline_failing_with(sfn, job: str) -> tuple[str, str]:
    """A pipeline whose training step fails the way the .sync integration reports it."""
    cause = json.dumps({"TrainingJobName": job, "TrainingJobStatus": "Failed",
                        "FailureReason": "AlgorithmError: , exit code: 1"})
    definition = {
        "StartAt": "Run SfM",
        "States": {
            "Run SfM": {"Type": "Pass", "Next": "Train 3DGS model"},
            "Train 3DGS model": {"Type": "Fail", "Error": "SageMaker.TrainingJobFailed", "Cause": cause},
        },
    }
    machine = sfn.create_state_machine(name=f"pipeline-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/StatesRole")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:8]}")["executionArn"]
    for _ in range(100):
        if sfn.describe_execution(executionArn=execution)["status"] != "RUNNING":
            break
        time.sleep(0.05)
    return machine, execution


def _execution_event(machine: str, execution: str) -> dict:
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": "123456789012", "time": "2026-11-29T01:32:40Z", "region": REGION,
        "resources": [execution],
        "detail": {"executionArn": execution, "stateMachineArn": machine, "name": execution.rsplit(":", 1)[-1],
                   "status": "FAILED", "startDate": 1764378010000, "stopDate": 1764378760000,
                   "input": "{}", "output": None},
    }


def test_job_event_then_pipeline_event_make_one_incident_and_one_report(aws_clients, step_functions, emulator,
                                                                       slack_receiver):
    job = f"3dgs-dedup-{uuid.uuid4().hex[:8]}"
    image = push_images(aws_clients, "spaceport/3dgs", ["latest"])[0]
    create_training_job(aws_clients, job, image_uri=image)
    emulator.fail_training_job(job, "AlgorithmError: , exit code: 1", region=REGION)
    write_training_log(aws_clients, job, ["ModuleNotFoundError: No module named 'gsplat'"])
    machine, execution = _pipeline_failing_with(step_functions, job)
    table = f"incidents-{uuid.uuid4().hex[:8]}"
    create_incident_table(aws_clients, table)
    secret = aws_clients.secretsmanager.create_secret(
        Name=f"slack-{uuid.uuid4().hex[:8]}", SecretString=slack_receiver.url)["ARN"]
    runtime = build_runtime(ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table=table,
                                              slack_webhook_secret_arn=secret, log_wait_seconds=0),
                            clients=aws_clients)

    first = handle_event(training_job_event(aws_clients.sagemaker.describe_training_job(TrainingJobName=job),
                                            REGION), runtime)
    second = handle_event(_execution_event(machine, execution), runtime)

    assert first.outcome == "reported" and first.cause == "module_not_found"
    # The pipeline's failure joins the job's incident and enriches it: one follow-up, not a second alert.
    assert second.outcome == "enriched" and second.incident_key == first.incident_key
    assert len(slack_receiver.requests) == 2
    follow_up = json.dumps(slack_receiver.requests[1].body)
    assert "This event added" in follow_up and execution.rsplit(":", 1)[-1] in follow_up
    assert "Train 3DGS model" in follow_up  # the failed state
    record = json.loads(aws_clients.dynamodb.get_item(
        TableName=table, Key={"id": {"S": "incident#" + first.incident_key}})["Item"]["incident"]["S"])
    assert record["subject"]["execution_arn"] == execution
    assert record["subject"]["failed_state"] == "Train 3DGS model"
    assert "execution" in record["links"]

    third = handle_event(_execution_event(machine, execution), runtime)  # EventBridge delivers it again
    assert third.outcome == "duplicate" and len(slack_receiver.requests) == 2


def test_an_incident_with_the_largest_log_tail_is_recorded_and_reported(aws_clients, emulator, slack_receiver):
    # LogTailBytes may be up to 1 MiB; a DynamoDB item at most 400 KB. The record must not hold the tail.
    job = f"3dgs-big-tail-{uuid.uuid4().hex[:8]}"
    create_training_job(aws_clients, job, image_uri=push_images(aws_clients, "spaceport/3dgs", ["latest"])[0])
    emulator.fail_training_job(job, "AlgorithmError: , exit code: 1", region=REGION)
    progress = [f"step={i}/30000 loss=0.0421 psnr=27.31 gaussians={1_000_000 + i} steps_per_s=41.2 eta=9m"
                for i in range(12_000)]
    write_training_log(aws_clients, job, [*progress, "ModuleNotFoundError: No module named 'gsplat'"])
    table = f"incidents-{uuid.uuid4().hex[:8]}"
    create_incident_table(aws_clients, table)
    secret = aws_clients.secretsmanager.create_secret(
        Name=f"slack-{uuid.uuid4().hex[:8]}", SecretString=slack_receiver.url)["ARN"]
    runtime = build_runtime(ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table=table,
                                              slack_webhook_secret_arn=secret, log_wait_seconds=0,
                                              log_tail_bytes=1_048_576), clients=aws_clients)

    outcome = handle_event(training_job_event(aws_clients.sagemaker.describe_training_job(TrainingJobName=job),
                                              REGION), runtime)

    assert outcome.outcome == "reported" and outcome.cause == "module_not_found"
    assert sum(len(line) + 1 for s in outcome.incident.evidence.logs.streams for line in s.lines) > 800_000
    item = aws_clients.dynamodb.get_item(TableName=table, Key={"id": {"S": "incident#" + outcome.incident_key}})
    record = json.loads(item["Item"]["incident"]["S"])
    assert record["diagnosis"]["cause"] == "module_not_found"
    assert [s["stream"] for s in record["evidence"]["logs"]["streams"]] == [
        s.stream for s in outcome.incident.evidence.logs.streams]
    assert len(slack_receiver.requests) == 1
