"""GitHub's `workflow_run` webhook end to end: signed deliveries through the endpoint (and the Lambda
handler), the incident table and SNS in moto, Slack on the local receiver, GitHub's API on the stand-in.

What issue 13 must show: a bad signature, a stale delivery, a replayed one and one for a repository
not configured are each refused with a clear reason; a valid one produces one report; a startup_failure
caused by a heredoc inside `run: |` is reported as workflow_parsing, pointing at the file and line."""

from __future__ import annotations

import importlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from incident_responder.delivery import DeliveryIncomplete
from tests.support.events import with_field
from incident_responder.demo.provision import (
    create_incident_table,
    create_topic_with_inbox,
    create_triage_bus,
    read_inbox,
    receive_handed_off,
)
from incident_responder.github.api import GitHubApi
from incident_responder.github.endpoint import GitHubWebhookEndpoint, WebhookReply
from incident_responder.github.webhook import WebhookConfig, signature
from incident_responder.report import render_text
from incident_responder.runtime import ResponderSettings, build_runtime
from tests.rollback.conftest import http_event
from tests.support.github_standin import GitHubStandIn, StandInJob, StandInStep
from tests.support.lambda_env import LambdaContext

REGION = "us-west-2"
REPO = "example-org/3dgs-pipeline"
EVENTS = Path(__file__).resolve().parents[2] / "events"
WORKFLOW_FILES = Path(__file__).resolve().parents[1] / "unit" / "github" / "workflow_files"
FAILURE = json.loads((EVENTS / "github-workflow-run-failure.json").read_text())
STARTUP_FAILURE = json.loads((EVENTS / "github-workflow-run-startup-failure.json").read_text())
UPDATED = datetime(2026, 11, 20, 17, 47, 31, tzinfo=timezone.utc)
CREDENTIALS_ERROR = ("Error: Credentials could not be loaded, please check your action inputs: "
                     "Could not load credentials from any providers")
WORKFLOWS = ".github/workflows/build-training-image.yml,.github/workflows/cdk-bootstrap.yml"


@dataclass
class Deployment:
    endpoint: GitHubWebhookEndpoint
    secret: str
    slack: Any
    clients: Any
    queue_url: str
    table: str

    def deliver(self, payload: dict[str, Any], *, delivery: str | None = None, sign_with: str | None = None,
                drop: tuple[str, ...] = ()) -> WebhookReply:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                   "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/abc123",
                   "X-Hub-Signature-256": signature(sign_with or self.secret, body)}
        return self.endpoint.handle({k: v for k, v in headers.items() if k not in drop}, body)

    def sns_messages(self) -> list[dict[str, Any]]:
        return read_inbox(self.clients, self.queue_url)


def _failed_build(github: GitHubStandIn) -> None:
    github.add_run(REPO, FAILURE["workflow_run"]["id"], jobs=[
        StandInJob(31415, "build-and-push", "failure", (
            StandInStep("Set up job", log="Current runner version: '2.321.0'"),
            StandInStep("Configure AWS credentials", "failure",
                        "Run aws-actions/configure-aws-credentials@v4\n" + CREDENTIALS_ERROR),
            StandInStep("Build and push the training image", "skipped"))),
        StandInJob(27182, "lint", "success", (StandInStep("ruff", log="All checks passed!"),)),
    ])


@pytest.fixture
def deployment(aws_clients, slack_receiver, github: GitHubStandIn) -> Deployment:
    suffix = uuid.uuid4().hex[:8]
    table = f"incidents-{suffix}"
    create_incident_table(aws_clients, table)
    topic_arn, queue_url = create_topic_with_inbox(aws_clients, f"alerts-{suffix}")
    slack_secret = aws_clients.secretsmanager.create_secret(
        Name=f"slack-{suffix}", SecretString=json.dumps({"webhook_url": slack_receiver.url}))["ARN"]
    settings = ResponderSettings(region=REGION, incident_table=table, sns_topic_arn=topic_arn,
                                 slack_webhook_secret_arn=slack_secret, log_wait_seconds=0)
    runtime = build_runtime(settings, clients=aws_clients)
    aws_clients.github = GitHubApi(github.token, base_url=github.url, sleep=lambda s: None)
    secret = secrets.token_hex(20)
    endpoint = GitHubWebhookEndpoint.build(
        config=WebhookConfig(repositories=REPO, workflows=WORKFLOWS, max_age_seconds=3600, region=REGION),
        secret=lambda: secret, runtime=runtime, table=table, now=lambda: UPDATED + timedelta(seconds=20))
    return Deployment(endpoint, secret, slack_receiver, aws_clients, queue_url, table)


def test_a_valid_failure_delivery_produces_exactly_one_report(deployment: Deployment, github: GitHubStandIn) -> None:
    _failed_build(github)
    reply = deployment.deliver(FAILURE)
    assert reply.status == 200, reply.body
    assert reply.body["outcome"] == "reported" and reply.body["category"] == "aws_credentials"
    assert reply.body["incident_key"] == f"github-run:{REPO}:{FAILURE['workflow_run']['id']}:1"
    (slack,) = deployment.slack.requests
    (sns,) = deployment.sns_messages()
    assert sns["MessageAttributes"]["category"]["Value"] == "aws_credentials"
    posted = json.dumps(slack.body)
    assert "Credentials could not be loaded" in posted and REPO in posted
    run_url = FAILURE["workflow_run"]["html_url"]
    # The run, and the failing job opened at its failed step (GitHub's #step:<n>:1 anchor).
    assert run_url in posted and f"{run_url}/job/31415#step:2:1" in posted
    # The token never went to the signed log URL's host.
    assert github.blob_requests and all("authorization" not in r.headers for r in github.blob_requests)


def test_a_replayed_delivery_is_refused_and_reports_nothing_more(deployment: Deployment, github: GitHubStandIn) -> None:
    _failed_build(github)
    delivery = str(uuid.uuid4())
    assert deployment.deliver(FAILURE, delivery=delivery).status == 200
    replay = deployment.deliver(FAILURE, delivery=delivery)
    assert replay.status == 409 and replay.body["outcome"] == "refused"
    assert f"replayed delivery {delivery}: already handled at" in replay.body["reason"]
    assert "no second report" in replay.body["reason"]
    assert len(deployment.slack.requests) == 1 and len(deployment.sns_messages()) == 1


REFUSED = {
    "bad-signature": ({"sign_with": "not-the-secret"}, FAILURE, 401, "bad signature"),
    "unsigned": ({"drop": ("X-Hub-Signature-256",)}, FAILURE, 401, "unsigned delivery"),
    "stale": ({}, with_field(FAILURE, "workflow_run.updated_at", "2026-11-20T16:00:00Z"), 400, "stale delivery"),
    "unconfigured-repository": ({}, with_field(FAILURE, "repository.full_name", "example-org/other"), 403,
                                "repository example-org/other is not configured"),
    "unconfigured-workflow": ({}, with_field(FAILURE, "workflow_run.path", ".github/workflows/release.yml"), 403,
                              "workflow .github/workflows/release.yml of example-org/3dgs-pipeline is not configured"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_each_refused_delivery_says_why_and_reports_nothing(deployment: Deployment, github: GitHubStandIn,
                                                            case: str) -> None:
    _failed_build(github)
    options, payload, status, words = REFUSED[case]
    reply = deployment.deliver(payload, **options)
    assert (reply.status, reply.body["outcome"]) == (status, "refused"), reply.body
    assert words in reply.body["reason"]
    assert deployment.slack.requests == [] and deployment.sns_messages() == []
    assert github.api_requests == []  # nothing was read for a delivery that was not accepted


def test_a_startup_failure_from_a_heredoc_names_workflow_parsing_with_the_file_and_line(
        deployment: Deployment, github: GitHubStandIn) -> None:
    run = STARTUP_FAILURE["workflow_run"]
    github.add_file(REPO, run["path"], run["head_sha"],
                    (WORKFLOW_FILES / "heredoc-body-less-indented.yml").read_text())
    reply = deployment.deliver(STARTUP_FAILURE)
    assert reply.status == 200 and reply.body["category"] == "workflow_parsing", reply.body
    (slack,) = deployment.slack.requests
    posted = json.dumps(slack.body)
    assert "Invalid workflow file: .github/workflows/cdk-bootstrap.yml#L19" in posted
    (sns,) = deployment.sns_messages()
    assert sns["MessageAttributes"]["category"]["Value"] == "workflow_parsing"
    assert ".github/workflows/cdk-bootstrap.yml#L19" in sns["Message"]


def test_a_delivery_whose_report_did_not_reach_every_sink_can_be_redelivered(
        deployment: Deployment, github: GitHubStandIn) -> None:
    _failed_build(github)
    deployment.slack.reply_next(500, times=3)  # the first try and the sink's 2 retries
    delivery = str(uuid.uuid4())
    first = deployment.deliver(FAILURE, delivery=delivery)
    assert first.status == 503 and "the report did not reach slack" in first.body["reason"]
    assert "redelivery" in first.body["reason"]
    sns_first = deployment.sns_messages()
    again = deployment.deliver(FAILURE, delivery=delivery)  # GitHub's redelivery: the same GUID
    assert again.status == 200, again.body
    assert deployment.slack.statuses[-1] is True
    assert len(sns_first) == 1 and deployment.sns_messages() == []  # SNS was not sent twice


def _bus_with_the_templates_rule(aws_clients, suffix: str) -> tuple[str, str]:
    """An event bus with the template's own GitHubRunFailed rule pattern, targeting a queue that stands for
    the TriageFunction's asynchronous invocation."""
    from tests.template.template_model import eventbridge_rules, resolve, values_for_tests

    return create_triage_bus(aws_clients, suffix,
                             resolve(eventbridge_rules()["GitHubRunFailed"]["Pattern"], values_for_tests()))


def test_the_deployed_endpoint_hands_verified_runs_to_the_triage_function(aws_clients, emulator, slack_receiver,
                                                                          github: GitHubStandIn, monkeypatch) -> None:
    """As deployed: the endpoint verifies and puts the run on the event bus (answering GitHub at once); the
    template's rule routes it to the TriageFunction, which reads GitHub and reports once, with Lambda's retries
    behind it when a sink fails."""
    _failed_build(github)
    suffix = uuid.uuid4().hex[:8]
    table = f"incidents-{suffix}"
    create_incident_table(aws_clients, table)
    topic_arn, inbox_url = create_topic_with_inbox(aws_clients, f"alerts-{suffix}")
    bus, triage_queue = _bus_with_the_templates_rule(aws_clients, suffix)
    webhook_secret = secrets.token_hex(20)
    arns = {name: aws_clients.secretsmanager.create_secret(Name=f"{name}-{suffix}", SecretString=value)["ARN"]
            for name, value in {"slack": json.dumps({"webhook_url": slack_receiver.url}),
                                "github-webhook": json.dumps({"secret": webhook_secret}),
                                "github-token": github.token}.items()}
    for name, value in {
        "AWS_ENDPOINT_URL": emulator.url, "AWS_REGION": REGION, "INCIDENT_TABLE": table, "SNS_TOPIC_ARN": topic_arn,
        "SLACK_WEBHOOK_SECRET_ARN": arns["slack"], "LOG_WAIT_SECONDS": "0",
        "GITHUB_WEBHOOK_SECRET_ARN": arns["github-webhook"], "GITHUB_REPOSITORIES": REPO, "GITHUB_WORKFLOWS": WORKFLOWS,
        "TRIAGE_EVENT_BUS": bus, "GITHUB_TOKEN_SECRET_ARN": arns["github-token"], "GITHUB_API_URL": github.url,
        "POWERTOOLS_SERVICE_NAME": "incident-responder", "POWERTOOLS_METRICS_NAMESPACE": "ThreeDGSIncidentResponder",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    import incident_responder.handlers.github_webhook as webhook_module
    import incident_responder.handlers.triage as triage_module

    webhook = importlib.reload(webhook_module)  # configuration is read at cold start
    triage = importlib.reload(triage_module)
    payload = with_field(FAILURE, "workflow_run.updated_at", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    body = json.dumps(payload)
    headers = {"content-type": "application/json", "x-github-event": "workflow_run",
               "x-github-delivery": str(uuid.uuid4()), "x-hub-signature-256": signature(webhook_secret, body.encode())}

    answer = webhook.handler(http_event("POST", "/github/webhook", body=body, headers=headers), LambdaContext())
    assert answer["statusCode"] == 202 and json.loads(answer["body"])["outcome"] == "accepted", answer
    replay = webhook.handler(http_event("POST", "/github/webhook", body=body, headers=headers), LambdaContext())
    assert replay["statusCode"] == 409 and "replayed delivery" in json.loads(replay["body"])["reason"]
    assert slack_receiver.requests == [] and github.api_requests == []  # nothing read or reported in the request
    (handed,) = receive_handed_off(aws_clients, triage_queue)
    result = triage.handler(handed, LambdaContext())
    assert result["outcome"] == "reported" and result["category"] == "aws_credentials", result
    assert len(slack_receiver.requests) == 1 and len(read_inbox(aws_clients, inbox_url)) == 1
    assert f"{payload['workflow_run']['html_url']}/job/31415#step:2:1" in json.dumps(slack_receiver.requests[0].body)

    # A startup failure whose report fails at Slack: the TriageFunction's invocation fails (Lambda retries it,
    # then keeps it in the DLQ); the retry sends only what is missing.
    run = STARTUP_FAILURE["workflow_run"]
    github.add_file(REPO, run["path"], run["head_sha"], (WORKFLOW_FILES / "heredoc-body-less-indented.yml").read_text())
    startup = json.dumps(with_field(STARTUP_FAILURE, "workflow_run.updated_at", payload["workflow_run"]["updated_at"]))
    headers = {**headers, "x-github-delivery": str(uuid.uuid4()),
               "x-hub-signature-256": signature(webhook_secret, startup.encode())}
    accepted = webhook.handler(http_event("POST", "/github/webhook", body=startup, headers=headers), LambdaContext())
    assert accepted["statusCode"] == 202
    (handed,) = receive_handed_off(aws_clients, triage_queue)
    slack_receiver.reply_next(500, times=3)
    with pytest.raises(DeliveryIncomplete):
        triage.handler(handed, LambdaContext())
    retried = triage.handler(handed, LambdaContext())
    assert retried["category"] == "workflow_parsing" and retried["cause"] == "yaml_syntax_error"
    assert len(read_inbox(aws_clients, inbox_url)) == 1  # SNS had it the first time: not sent again
    assert ".github/workflows/cdk-bootstrap.yml#L19" in json.dumps(slack_receiver.requests[-1].body)
    _role_grants_exactly_what_was_called(webhook.endpoint().runtime.clients.counter.calls)


# What AWS does with the function's role on its behalf.
IMPLIED = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _role_grants_exactly_what_was_called(calls: list[str]) -> None:
    from tests.template.template_model import transformed
    from tests.template.test_template import _as_list, _getatt_target, _lambda_function, _role_statements

    cfn = transformed()
    role = _getatt_target(_lambda_function(cfn, "GitHubWebhookFunction")["Role"])
    statements = _role_statements(cfn, role, {"HasGitHubWebhook": True, "HasGitHubToken": True, "HasSlackSecret": True})
    granted = {action for s in statements for action in _as_list(s["Action"])}
    called = {f"{call.split(':')[0]}:{call.split(':')[1]}" for call in calls}
    # The endpoint reads its secret, claims, reads (a replay) and closes the delivery, and puts the run on the
    # bus; nothing else. DeleteItem releases a claim whose hand-off failed (the test below).
    assert called == {"secretsmanager:GetSecretValue", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem",
                      "events:PutEvents"}, called
    assert granted == called | IMPLIED | {"dynamodb:DeleteItem"}


def test_a_run_that_cannot_be_handed_to_triage_is_released_for_redelivery(aws_clients, emulator) -> None:
    from incident_responder.github.handoff import EventBusHandoff

    table = f"incidents-{uuid.uuid4().hex[:8]}"
    create_incident_table(aws_clients, table)
    secret = secrets.token_hex(20)
    runtime = build_runtime(ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table=table),
                            clients=aws_clients)
    endpoint = GitHubWebhookEndpoint.build(
        config=WebhookConfig(repositories=REPO, workflows=WORKFLOWS, max_age_seconds=3600, region=REGION),
        secret=lambda: secret, runtime=runtime, table=table, now=lambda: UPDATED + timedelta(seconds=20),
        handoff=EventBusHandoff(aws_clients.events, f"no-such-bus-{uuid.uuid4().hex[:6]}"))
    body = json.dumps(FAILURE).encode()
    headers = {"content-type": "application/json", "x-github-event": "workflow_run",
               "x-github-delivery": str(uuid.uuid4()), "x-hub-signature-256": signature(secret, body)}

    first = endpoint.handle(headers, body)
    again = endpoint.handle(headers, body)  # GitHub's Redeliver: not refused as a replay

    assert first.status == 503 and "could not be handed to triage" in first.body["reason"]
    assert again.status == 503 and "replay" not in again.body["reason"]


def test_no_secret_leaves_from_a_step_log_a_step_name_or_a_workflow_file(deployment: Deployment,
                                                                          github: GitHubStandIn) -> None:
    from tests.support.secret_corpus import leaks, secret_cases

    cases = secret_cases()
    corpus = [line for case in cases for line in case.text.splitlines()]
    # Where the report shows GitHub's text: the deciding log lines, the job and step names, the branch.
    deciding = "\n".join(f"{CREDENTIALS_ERROR} ({line})" for line in corpus)
    step = f"Configure AWS credentials {corpus[0]}"
    github.add_run(REPO, FAILURE["workflow_run"]["id"], jobs=[StandInJob(1, f"build {corpus[1]}", "failure", (
        StandInStep(step, "failure", "\n".join(corpus) + "\n" + deciding),))])
    run = STARTUP_FAILURE["workflow_run"]
    broken = (WORKFLOW_FILES / "heredoc-body-less-indented.yml").read_text().replace(
        '"Statement": []', '"Statement": [] # ' + " ".join(corpus[:5]))
    github.add_file(REPO, run["path"], run["head_sha"], broken)
    leaky_branch = with_field(FAILURE, "workflow_run.head_branch", corpus[2])
    replies = [deployment.deliver(leaky_branch), deployment.deliver(STARTUP_FAILURE)]
    assert [r.status for r in replies] == [200, 200], [r.body for r in replies]
    delivered = {
        "slack": "\n".join(r.raw.decode() for r in deployment.slack.requests),
        "sns": json.dumps(deployment.sns_messages()),
        "dynamodb (every item, keys included)": json.dumps(
            deployment.clients.dynamodb.scan(TableName=deployment.table)["Items"]),
        "webhook answers": json.dumps([r.body for r in replies]),
    }
    for where, text in delivered.items():
        assert text.strip(), f"{where}: nothing to check"
        assert leaks(text, cases) == [], f"secrets reached {where}"
