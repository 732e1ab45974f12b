"""`incident-responder demo`: a failed 3DGS training job in an embedded AWS emulator, triaged by
the same code the Lambda runs, reported through the real Slack and SNS sinks to local receivers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from ..clients import AwsClients, make_clients
from ..runtime import ResponderSettings, build_runtime
from ..triage import Outcome, handle_event
from .emulator import EMULATOR_ACCOUNT, EMULATOR_CREDENTIALS, Emulator, start_emulator
from .scenarios import Scenario
from .slack_receiver import SlackReceiver

REGION = "us-west-2"
REPOSITORY = "spaceport/3dgs"
TABLE = "incident-responder-demo"
TOPIC = "incident-responder-demo"
SLACK_SECRET = "incident-responder/slack-webhook"
# Secret-shaped values for the secrets-in-logs scenario, built here so the repo holds no scanner-bait.
_DEMO_SECRETS = {
    "__DEMO_KEY_ID__": "DEMO" + "Q" * 12,
    "__DEMO_SECRET_KEY__": "demo" + "S" * 36,
    "__DEMO_WEBHOOK__": "demo" + "W" * 20,
}


@dataclass
class DemoResult:
    scenario: Scenario
    outcome: Outcome
    event: dict[str, Any]
    slack_payloads: list[dict[str, Any]]
    sns_messages: list[dict[str, Any]]
    seconds: float


def run_demo(scenario: Scenario, *, log_wait_seconds: float = 2.0) -> DemoResult:
    started = time.perf_counter()
    with start_emulator() as emulator, SlackReceiver() as slack:
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        topic_arn, queue_url = _provision_notifications(clients, slack.url)
        job_name = f"3dgs-demo-{scenario.name}-{int(time.time())}"[:63]
        _provision_failed_job(clients, emulator, scenario, job_name)
        event = training_job_event(clients.sagemaker.describe_training_job(TrainingJobName=job_name), REGION)
        settings = ResponderSettings(
            region=REGION,
            endpoint_url=emulator.url,
            incident_table=TABLE,
            sns_topic_arn=topic_arn,
            slack_webhook_secret_arn=SLACK_SECRET,
            log_wait_seconds=log_wait_seconds if scenario.log is None else 0,
        )
        clients.counter.reset()
        outcome = handle_event(event, build_runtime(settings, clients=clients))
        sns_messages = _drain(clients, queue_url)
        return DemoResult(
            scenario=scenario,
            outcome=outcome,
            event=event,
            slack_payloads=[request.body for request in slack.requests],
            sns_messages=sns_messages,
            seconds=time.perf_counter() - started,
        )


def write_outputs(result: DemoResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "event": out_dir / "event.json",
        "incident": out_dir / "incident.json",
        "slack": out_dir / "slack-payload.json",
        "sns": out_dir / "sns-message.json",
    }
    files["event"].write_text(json.dumps(result.event, indent=2) + "\n")
    files["incident"].write_text(result.outcome.model_dump_json(indent=2) + "\n")
    files["slack"].write_text(json.dumps(result.slack_payloads[-1] if result.slack_payloads else None, indent=2) + "\n")
    files["sns"].write_text(json.dumps(result.sns_messages[-1] if result.sns_messages else None, indent=2) + "\n")
    return files


def print_result(result: DemoResult, files: dict[str, Path], stream: TextIO, *, color: bool) -> None:
    from ..report import render_text

    outcome = result.outcome
    print(f"Scenario: {result.scenario.name} - {result.scenario.summary}", file=stream)
    print("", file=stream)
    if outcome.incident is not None:
        print(render_text(outcome.incident, color=color), file=stream)
    sent = ", ".join(f"{n.sink}: {'sent' if n.ok else 'FAILED ' + (n.detail or '')}" for n in outcome.notifications)
    print("", file=stream)
    print(f"Notifications: {sent or 'none'}", file=stream)
    print(f"AWS API calls for this incident: {outcome.api_calls}; demo took {result.seconds:.1f}s", file=stream)
    print(f"Written to {files['slack'].parent}/:", file=stream)
    for kind, path in files.items():
        print(f"  {path.name:<20} {'the ' + kind + ' payload' if kind in ('slack', 'sns') else kind}", file=stream)


def training_job_event(job: dict[str, Any], region: str, *, event_id: str | None = None) -> dict[str, Any]:
    """The "SageMaker Training Job State Change" event EventBridge sends for this job."""
    import uuid

    detail = {k: v for k, v in job.items() if k != "ResponseMetadata"}
    for key, value in list(detail.items()):
        if isinstance(value, datetime):
            detail[key] = str(int(value.timestamp() * 1000))
    detail["SecondaryStatusTransitions"] = [
        {k: str(int(v.timestamp() * 1000)) if isinstance(v, datetime) else v for k, v in t.items()}
        for t in detail.get("SecondaryStatusTransitions", [])
    ]
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "SageMaker Training Job State Change",
        "source": "aws.sagemaker",
        "account": EMULATOR_ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [job["TrainingJobArn"]],
        "detail": detail,
    }


def _provision_notifications(clients: AwsClients, slack_url: str) -> tuple[str, str]:
    clients.dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic_arn = clients.sns.create_topic(Name=TOPIC)["TopicArn"]
    import boto3

    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=clients.sns.meta.endpoint_url,
                       **EMULATOR_CREDENTIALS)
    queue_url = sqs.create_queue(QueueName="sns-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    clients.secretsmanager.create_secret(Name=SLACK_SECRET, SecretString=json.dumps({"webhook_url": slack_url}))
    return topic_arn, queue_url


def _provision_failed_job(clients: AwsClients, emulator: Emulator, scenario: Scenario, job_name: str) -> None:
    registry = f"{EMULATOR_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    clients.ecr.create_repository(repositoryName=REPOSITORY)
    for tag, layer in (("v41-known-good", "a" * 64), (scenario.image_tag, "b" * 64)):
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                       "digest": f"sha256:{layer}"},
            "layers": [],
        }
        clients.ecr.put_image(repositoryName=REPOSITORY, imageManifest=json.dumps(manifest), imageTag=tag)
    clients.sagemaker.create_training_job(
        TrainingJobName=job_name,
        HyperParameters=scenario.hyperparameters,
        AlgorithmSpecification={"TrainingImage": f"{registry}/{REPOSITORY}:{scenario.image_tag}",
                                "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/SpaceportSageMakerRole",
        InputDataConfig=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://spaceport-ml-{EMULATOR_ACCOUNT}/colmap/{job_name}/",
            "S3DataDistributionType": "FullyReplicated"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://spaceport-ml-{EMULATOR_ACCOUNT}/3dgs/"},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100},
        StoppingCondition={"MaxRuntimeInSeconds": 14400},
    )
    if scenario.failure_reason:
        emulator.fail_training_job(job_name, scenario.failure_reason, region=REGION)
    if scenario.log is not None:
        _write_log(clients, job_name, _with_demo_secrets(scenario.log))


def _write_log(clients: AwsClients, job_name: str, log: str) -> None:
    group = "/aws/sagemaker/TrainingJobs"
    try:
        clients.logs.create_log_group(logGroupName=group)
    except clients.logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job_name}/algo-1-{int(time.time())}"
    clients.logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    clients.logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(log.splitlines())],
    )


def _with_demo_secrets(text: str) -> str:
    for placeholder, value in _DEMO_SECRETS.items():
        text = text.replace(placeholder, value)
    return text


def _drain(clients: AwsClients, queue_url: str) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=clients.sns.meta.endpoint_url,
                       **EMULATOR_CREDENTIALS)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]
