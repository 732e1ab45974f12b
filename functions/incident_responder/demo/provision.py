"""Creates the pipeline's resources in the emulator: shared by the demo and the tests."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from ..evidence.base import TRAINING_LOG_GROUP
from ..models import ImageRef
from .emulator import EMULATOR_ACCOUNT, EMULATOR_CREDENTIALS



def create_incident_table(clients: Any, name: str) -> None:
    clients.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@dataclass(frozen=True)
class DemoSinks:
    table: str
    topic_arn: str
    queue_url: str
    slack_secret: str


def create_demo_sinks(clients: Any, slack_url: str, run: str) -> DemoSinks:
    """What a demo run reports into: the incident table, the SNS topic with an SQS inbox, and the
    Slack webhook secret (pointing at the local receiver). Names carry ``run``: moto's state is per
    process, so runs never collide."""
    table, secret = f"incident-responder-demo-{run}", f"incident-responder/slack-webhook-{run}"
    create_incident_table(clients, table)
    topic_arn, queue_url = create_topic_with_inbox(clients, f"incident-responder-demo-{run}")
    clients.secretsmanager.create_secret(Name=secret, SecretString=json.dumps({"webhook_url": slack_url}))
    return DemoSinks(table, topic_arn, queue_url, secret)


def _sqs(clients: Any) -> Any:
    import boto3

    return boto3.client("sqs", region_name=clients.sns.meta.region_name,
                        endpoint_url=clients.sns.meta.endpoint_url, **EMULATOR_CREDENTIALS)


def create_topic_with_inbox(clients: Any, name: str) -> tuple[str, str]:
    """An SNS topic with an SQS subscription, so what was published can be read back."""
    topic_arn = clients.sns.create_topic(Name=name)["TopicArn"]
    sqs = _sqs(clients)
    queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, queue_url


def read_inbox(clients: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = _sqs(clients).receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def push_images(clients: Any, repository: str, tags: list[str]) -> list[str]:
    """Pushes one image per tag (a distinct manifest each); returns their URIs."""
    try:
        clients.ecr.create_repository(repositoryName=repository)
    except clients.ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    region = clients.ecr.meta.region_name
    uris = []
    for tag in tags:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7023,
                "digest": "sha256:" + hashlib.sha256(tag.encode()).hexdigest(),
            },
            # moto derives an image's digest from its layers: one layer per tag gives each a digest of its own.
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1024,
                        "digest": "sha256:" + hashlib.sha256(b"layer:" + tag.encode()).hexdigest()}],
        }
        try:
            clients.ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
        except clients.ecr.exceptions.ImageAlreadyExistsException:
            pass  # already pushed with this tag: the state we want
        uris.append(ImageRef.in_ecr(EMULATOR_ACCOUNT, region, repository, tag=tag).uri)
    return uris


def create_training_job(
    clients: Any, name: str, *, image_uri: str, hyperparameters: dict[str, str] | None = None
) -> str:
    bucket = f"s3://spaceport-ml-{EMULATOR_ACCOUNT}"
    response = clients.sagemaker.create_training_job(
        TrainingJobName=name,
        HyperParameters=hyperparameters or {},
        AlgorithmSpecification={"TrainingImage": image_uri, "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/SpaceportSageMakerRole",
        InputDataConfig=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"{bucket}/colmap/{name}/",
            "S3DataDistributionType": "FullyReplicated"}}}],
        OutputDataConfig={"S3OutputPath": f"{bucket}/3dgs/"},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100},
        StoppingCondition={"MaxRuntimeInSeconds": 14400},
    )
    return response["TrainingJobArn"]


def write_training_log(clients: Any, job_name: str, lines: list[str], *, instance: int = 1) -> str:
    """Writes lines to `<job>/algo-<n>-<epoch>` as SageMaker names its streams; returns the stream."""
    try:
        clients.logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)
    except clients.logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job_name}/algo-{instance}-{int(time.time())}"
    clients.logs.create_log_stream(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream)
    start = int(time.time() * 1000)
    # PutLogEvents takes at most 10,000 events per call.
    for offset in range(0, len(lines), 10_000):
        batch = lines[offset : offset + 10_000]
        clients.logs.put_log_events(
            logGroupName=TRAINING_LOG_GROUP,
            logStreamName=stream,
            logEvents=[{"timestamp": start + offset + i, "message": line} for i, line in enumerate(batch)],
        )
    return stream


def create_failed_build(clients: Any, emulator: Any, project: str, *, phase: str, contexts: list[str], log: str,
                        region: str) -> str:
    """A CodeBuild project, one build of it that failed in ``phase`` with ``contexts`` ("CODE: message"),
    and its log in /aws/codebuild/<project>, as CodeBuild writes it. Returns the build id."""
    clients.codebuild.create_project(
        name=project,
        source={"type": "GITHUB", "location": "https://github.com/example-org/3dgs-pipeline.git"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/amazonlinux2-x86_64-standard:5.0",
                     "computeType": "BUILD_GENERAL1_LARGE", "privilegedMode": True},
        serviceRole=f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/codebuild-{project}"[:100],
    )
    build_id = clients.codebuild.start_build(projectName=project)["build"]["id"]
    group, stream = f"/aws/codebuild/{project}", build_id.split(":", 1)[1]
    if log:
        try:
            clients.logs.create_log_group(logGroupName=group)
        except clients.logs.exceptions.ResourceAlreadyExistsException:
            pass
        clients.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        start = int(time.time() * 1000)
        clients.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            # CloudWatch takes no empty message: CodeBuild writes a blank line as a newline.
            {"timestamp": start + i, "message": line or "\n"} for i, line in enumerate(log.splitlines())])
    emulator.fail_build(build_id, phase=phase, contexts=[tuple(c.split(": ", 1)) if ": " in c else (c, "")
                                                          for c in contexts],
                        log_group=group, log_stream=stream, region=region)
    return build_id


def create_triage_bus(clients: Any, run: str, pattern: dict[str, Any] | None = None) -> tuple[str, str]:
    """An event bus whose rule (``pattern``, by default the GitHub hand-off's source and detail-type) sends
    the GitHub endpoint's hand-offs to a queue, standing for the TriageFunction's asynchronous invocation.
    Returns the bus name and the queue URL."""
    from ..intake import GITHUB_DETAIL_TYPE, GITHUB_EVENT_SOURCE

    bus = f"incident-responder-demo-{run}"
    clients.events.create_event_bus(Name=bus)
    clients.events.put_rule(Name=f"github-{run}", EventBusName=bus, EventPattern=json.dumps(
        pattern or {"source": [GITHUB_EVENT_SOURCE], "detail-type": [GITHUB_DETAIL_TYPE]}))
    queue_url = _sqs(clients).create_queue(QueueName=f"triage-{run}")["QueueUrl"]
    queue_arn = _sqs(clients).get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.events.put_targets(Rule=f"github-{run}", EventBusName=bus, Targets=[{"Id": "triage", "Arn": queue_arn}])
    return bus, queue_url


def receive_handed_off(clients: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = _sqs(clients).receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    # moto 5.2 leaves the envelope's "account" out of events routed from a custom bus; EventBridge always sends it.
    return [{"account": EMULATOR_ACCOUNT, **json.loads(m["Body"])} for m in messages.get("Messages", [])]
