"""CodeBuild builds and CloudFormation/CDK deployments, through moto over HTTP: the evidence each
source's analyzer reads, one report per failed operation, and what a missing piece says."""

from __future__ import annotations

import json
import uuid

import pytest

from incident_responder.demo.provision import create_failed_build, create_incident_table
from incident_responder.demo.run import DEMO_STACK_TEMPLATE, codebuild_event, stack_status_event
from incident_responder.respond import handle_event
from incident_responder.runtime import ResponderSettings, build_runtime
from tests.support.moto_server import REGION

ROLE = "AWS::IAM::Role"
BUCKET_POLICY = "AWS::S3::BucketPolicy"
UNTRUSTED = ('Resource handler returned message: "Invalid principal in policy: "AWS":"arn:aws:iam::210987654321:role/'
             'cdk-hnb659fds-deploy-role-210987654321-us-west-2"" (RequestToken: 5f0c1a2b, HandlerErrorCode: '
             'InvalidRequest)')
BUCKET_TAKEN = "threedgs-artifacts already exists"


@pytest.fixture
def runtime(aws_clients, emulator, slack_receiver):
    table = f"incidents-{uuid.uuid4().hex[:8]}"
    create_incident_table(aws_clients, table)
    secret = aws_clients.secretsmanager.create_secret(
        Name=f"slack-{uuid.uuid4().hex[:8]}", SecretString=slack_receiver.url)["ARN"]
    return build_runtime(ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table=table,
                                           slack_webhook_secret_arn=secret, log_wait_seconds=0),
                         clients=aws_clients)


def _stack(aws_clients) -> str:
    name = f"threedgs-src-{uuid.uuid4().hex[:8]}"
    aws_clients.cloudformation.create_stack(StackName=name, TemplateBody=DEMO_STACK_TEMPLATE)
    return name


def _status_event(aws_clients, stack: str, status: str | None = None) -> dict:
    described = aws_clients.cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return stack_status_event(described, REGION, status=status)


def test_one_failed_deployment_is_one_report_whatever_its_status_events(aws_clients, emulator, runtime,
                                                                       slack_receiver):
    stack = _stack(aws_clients)
    emulator.fail_stack_operation(stack, [
        ("SageMakerExecutionRole", ROLE, "UPDATE_IN_PROGRESS", None),
        ("SageMakerExecutionRole", ROLE, "UPDATE_FAILED", UNTRUSTED),
        ("ArtifactBucketPolicy", BUCKET_POLICY, "UPDATE_FAILED", "Resource update cancelled"),
    ], region=REGION)

    rolling_back = handle_event(_status_event(aws_clients, stack, "UPDATE_ROLLBACK_IN_PROGRESS"), runtime)
    rolled_back = handle_event(_status_event(aws_clients, stack), runtime)

    assert rolling_back.outcome == "reported"
    assert (rolling_back.category, rolling_back.cause) == ("cdk_bootstrap_trust", "invalid_principal_in_policy")
    assert rolled_back.outcome == "duplicate" and rolled_back.incident_key == rolling_back.incident_key
    assert len(slack_receiver.requests) == 1
    stack_evidence = rolling_back.incident.evidence.stack
    # The cause, not the cascade after it; both failures counted.
    assert stack_evidence.first_failure.logical_id == "SageMakerExecutionRole"
    assert stack_evidence.first_failure.reason == UNTRUSTED
    assert stack_evidence.failed_resources == 2
    evidence = rolling_back.incident.diagnosis.evidence
    assert evidence[0].source == "stack_event" and "SageMakerExecutionRole (AWS::IAM::Role)" in evidence[0].text
    report = json.dumps(slack_receiver.requests[0].body)
    assert "SageMakerExecutionRole" in report and "Invalid principal in policy" in report

    # The next deployment fails for another reason: a new operation, a new incident, its own cause.
    emulator.fail_stack_operation(stack, [
        ("ArtifactBucket", "AWS::S3::Bucket", "UPDATE_FAILED", BUCKET_TAKEN),
        ("SageMakerExecutionRole", ROLE, "UPDATE_FAILED", "Resource update cancelled"),
    ], region=REGION)
    next_failure = handle_event(_status_event(aws_clients, stack), runtime)
    assert next_failure.outcome == "reported" and next_failure.incident_key != rolling_back.incident_key
    assert next_failure.incident.evidence.stack.first_failure.logical_id == "ArtifactBucket"
    assert next_failure.category == "unknown"
    assert len(slack_receiver.requests) == 2


def test_a_failure_inside_a_nested_stack_is_reported_from_the_nested_stacks_first_failure(aws_clients, emulator,
                                                                                          runtime):
    parent, child = _stack(aws_clients), _stack(aws_clients)
    child_id = aws_clients.cloudformation.describe_stacks(StackName=child)["Stacks"][0]["StackId"]
    emulator.fail_stack_operation(child, [("SageMakerExecutionRole", ROLE, "UPDATE_FAILED", UNTRUSTED)],
                                  region=REGION)
    emulator.fail_stack_operation(parent, [
        ("TrainingStack", "AWS::CloudFormation::Stack", "UPDATE_FAILED",
         "Embedded stack was not successfully updated. The following resource(s) failed to update: "
         "[SageMakerExecutionRole].", child_id),
    ], region=REGION)

    outcome = handle_event(_status_event(aws_clients, parent), runtime)

    assert outcome.cause == "invalid_principal_in_policy"
    assert outcome.incident.evidence.stack.first_failure.logical_id == "TrainingStack/SageMakerExecutionRole"
    assert outcome.incident.subject.failed_resource == "TrainingStack/SageMakerExecutionRole"


def test_a_stack_that_cannot_be_read_is_still_reported_and_says_why(aws_clients, runtime, slack_receiver):
    event = json.loads(open("events/cloudformation-stack-status-change-failed.json").read())
    event["id"] = str(uuid.uuid4())
    event["detail"]["stack-id"] = event["detail"]["stack-id"].replace("threedgs-pipeline-staging",
                                                                      f"threedgs-gone-{uuid.uuid4().hex[:6]}")

    outcome = handle_event(event, runtime)

    assert outcome.outcome == "reported" and outcome.aws_failures == 1
    (missing,) = [m for m in outcome.incident.evidence.missing if m.source == "stack"]
    assert missing.reason.startswith("DescribeStackEvents(threedgs-gone-") and "does not exist" in missing.reason
    assert "TrainingRole" in json.dumps(slack_receiver.requests[0].body)  # the event's own reason


def test_a_failed_build_is_diagnosed_from_its_log_and_its_failed_phase(aws_clients, emulator, runtime):
    log = "\n".join([*(f"Step {i}/40 : RUN pip install -r requirements.txt" for i in range(2_000)),
                     "ERROR: Could not find a version that satisfies the requirement gsplat==9.9.9 "
                     "(from versions: 1.4.0, 1.5.0, 1.5.3)",
                     "ERROR: No matching distribution found for gsplat==9.9.9"])
    build = create_failed_build(aws_clients, emulator, f"threedgs-image-{uuid.uuid4().hex[:6]}", phase="BUILD",
                                contexts=["COMMAND_EXECUTION_ERROR: Error while executing command: docker build -t "
                                          "3dgs . Reason: exit status 1"], log=log, region=REGION)
    event = codebuild_event(aws_clients.codebuild.batch_get_builds(ids=[build])["builds"][0], REGION)

    outcome = handle_event(event, runtime)

    assert outcome.category == "python_dependencies"
    incident = outcome.incident
    assert incident.evidence.build.failed_phase == "BUILD"
    assert incident.evidence.build.phase_context[0].startswith("COMMAND_EXECUTION_ERROR: ")
    (tail,) = incident.evidence.logs.streams
    assert tail.truncated  # 2,000 lines of progress do not fit the default tail; the end does
    assert any(e.source == f"log:{build.split(':', 1)[1]}" for e in incident.diagnosis.evidence)
    assert incident.diagnosis.commands[0].startswith("aws codebuild batch-get-builds --ids ")
    assert not any("<job_name>" in command for command in incident.diagnosis.commands)
    assert "build" in incident.links and "log_stream" in incident.links


def test_a_build_whose_log_is_gone_is_diagnosed_from_codebuilds_own_words(aws_clients, runtime):
    event = json.loads(open("events/codebuild-build-failed.json").read())
    event["id"] = str(uuid.uuid4())

    outcome = handle_event(event, runtime)

    assert outcome.outcome == "reported"
    sources = {m.source: m.reason for m in outcome.incident.evidence.missing}
    assert "found no such build" in sources["build"]
    assert "not found" in sources["logs"]
    assert outcome.incident.diagnosis.category.value == "unknown"
