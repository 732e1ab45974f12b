"""A deployed rollback in the emulator: table, topic, ECR repository with a known-good and a failing
image, the pipeline's parameter, the rollback workflow created from statemachine/rollback.asl.json
(executed by moto), and the DecisionFunction handler configured by environment as Lambda runs it."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from incident_responder.demo.provision import create_incident_table, create_topic_with_inbox, push_images, read_inbox
from incident_responder.intake import KnownGoodImage
from incident_responder.models import ImageRef, RollbackAdvice
from incident_responder.rollback.ledger import record_completed
from incident_responder.rollback.proposal import ProposalConfig, propose
from incident_responder.rollback.service import RollbackService
from incident_responder.rollback.workflow import render_definition
from incident_responder.store import IncidentStore
from tests.unit.report.samples import make_incident

REGION, ACCOUNT = "us-west-2", "123456789012"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # a test signing secret, as in Slack's docs' shape
ALLOWED_USER = "U0ALLOWED"
LINK_KEY = "test-link-key-0123456789abcdef"
POLL_S, POLL_MAX = 0.1, 600  # bounded waits for the emulator's asynchronous executions (not timed assertions)


def wait_until(check, what: str):
    for _ in range(POLL_MAX):
        value = check()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"gave up waiting for {what}")


def http_event(method: str, path: str, *, body: str = "", headers: dict[str, str] | None = None,
               query: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as `sam local generate-event apigateway http-api-proxy`."""
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": urlencode(query or {}),
        "headers": {"content-type": "application/x-www-form-urlencoded", **(headers or {})},
        "queryStringParameters": query, "body": body, "isBase64Encoded": False,
        "requestContext": {"accountId": ACCOUNT, "apiId": "api", "domainName": "api.example", "domainPrefix": "api",
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                                    "userAgent": "test"},
                           "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
                           "time": "30/Nov/2026:00:00:00 +0000", "timeEpoch": 0},
    }


def slack_request(action_id: str, approval_id: str, *, user: str = ALLOWED_USER, secret: str = SLACK_SECRET,
                  timestamp: int | None = None, response_url: str | None = None) -> dict[str, Any]:
    payload = {"type": "block_actions", "user": {"id": user, "username": f"name-{user.lower()}"},
               "actions": [{"action_id": action_id, "value": approval_id, "type": "button"}],
               "response_url": response_url,
               "message": {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "report"}},
                                      {"type": "actions", "block_id": f"rollback:{approval_id}", "elements": []}]}}
    body = urlencode({"payload": json.dumps(payload)})
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return http_event("POST", "/slack/actions", body=body,
                      headers={"x-slack-request-timestamp": ts, "x-slack-signature": signature})


@dataclass
class Rollback:
    clients: Any
    emulator: Any
    table: str
    topic_arn: str
    queue_url: str
    repository: str
    parameter: str
    mode: str
    good: str
    bad: str
    state_machine_arn: str = ""
    service: RollbackService | None = None
    handler: Any = None
    slack: Any = None
    timeout_seconds: int = 86_400
    incident: Any = None
    executions: list[str] = field(default_factory=list)

    def create_state_machine(self) -> None:
        definition = render_definition({
            "IncidentTable": self.table, "NotificationTopicArn": self.topic_arn, "RepositoryName": self.repository,
            "ImageTag": "latest", "ImageParameterName": self.parameter, "RollbackMode": self.mode,
            "ApprovalTimeoutSeconds": str(self.timeout_seconds)})
        self.state_machine_arn = self.clients.stepfunctions.create_state_machine(
            name="rollback", definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/rollback")["stateMachineArn"]
        self.service.state_machine_arn = self.state_machine_arn

    def fresh_state_machine(self) -> None:
        """moto 5.2 runs one execution per process between resets (demo/emulator.py)."""
        self.emulator.reset_step_functions()
        self.create_state_machine()

    def propose(self) -> Any:
        base = make_incident()
        key = f"training-job:{REGION}:3dgs-{uuid.uuid4().hex[:8]}"
        image = ImageRef.in_ecr(ACCOUNT, REGION, self.repository, tag="latest").model_copy(update={"digest": self.bad})
        incident = base.model_copy(update={"key": key, "subject": base.subject.model_copy(update={"image": image})})
        IncidentStore(self.clients.dynamodb, self.table).open(incident)
        self.incident = self.service.advise(incident)
        assert self.incident.rollback.proposal is not None, self.incident.rollback
        return self.incident.rollback.proposal

    def start(self) -> str:
        """Propose and start; wait until the workflow waits on its task token. Returns the approval id."""
        proposal = self.propose()
        self.executions.append(self.service.start_for(self.incident))
        self.wait_pending(proposal.approval_id)
        return proposal.approval_id

    def wait_pending(self, approval_id: str) -> None:
        wait_until(lambda: (self.service.approvals.get(approval_id) or {}).get("task_token"), "the task token")

    def wait_finished(self, approval_id: str) -> dict[str, Any]:
        # The workflow's last record sets finished_at (a decision alone sets approved/rejected before it).
        return wait_until(lambda: (lambda item: item if item and item.get("finished_at") else None)(
            self.service.approvals.get(approval_id)), f"approval {approval_id} to finish")

    def execution_status(self) -> str:
        return wait_until(lambda: (lambda s: s if s != "RUNNING" else None)(
            self.clients.stepfunctions.describe_execution(executionArn=self.executions[-1])["status"]), "the execution")

    def refusals(self) -> list[str]:
        item = self.service.approvals.incident_item(self.incident.key) or {}
        return [r["reason"] for r in item.get("refusals", [])]

    def images(self) -> dict[str, list[str]]:
        details = self.clients.ecr.describe_images(repositoryName=self.repository)["imageDetails"]
        return {d["imageDigest"]: sorted(d.get("imageTags", [])) for d in details}

    def parameter_value(self) -> str:
        return self.clients.ssm.get_parameter(Name=self.parameter)["Parameter"]["Value"]

    def reports(self) -> list[dict[str, Any]]:
        """The workflow's SNS results (it publishes just after its last record: wait for one)."""
        seen: list[dict[str, Any]] = []

        def results():
            seen.extend(read_inbox(self.clients, self.queue_url))
            return [m for m in seen if m["MessageAttributes"].get("kind", {}).get("Value") == "rollback_result"]

        return wait_until(results, "the workflow's SNS result")

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        from tests.support.lambda_env import LambdaContext

        return self.handler(event, LambdaContext(function_name="incident-responder-DecisionFunction"))


def _digest(clients, repository, tag):
    return clients.ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"][0]["imageDigest"]


@pytest.fixture(params=["ecr-retag"])
def mode(request):
    return request.param


@pytest.fixture
def rollback(aws_clients, emulator, step_functions, monkeypatch, mode, slack_receiver) -> Rollback:
    import boto3

    suffix = uuid.uuid4().hex[:8]
    table, repository, parameter = f"incidents-{suffix}", f"spaceport/3dgs-{suffix}", f"/spaceport/{suffix}/training-image"
    create_incident_table(aws_clients, table)
    topic_arn, queue_url = create_topic_with_inbox(aws_clients, f"rollback-{suffix}")
    push_images(aws_clients, repository, ["v41"])
    good = _digest(aws_clients, repository, "v41")
    service = RollbackService(clients=aws_clients, table=table, mode=mode, repository=repository,
                              decision_url="https://decide.example", approval_timeout_seconds=86_400)
    record_completed(KnownGoodImage(training_job_name="3dgs-good", region=REGION,
                                    image_uri=ImageRef.in_ecr(ACCOUNT, REGION, repository, tag="v41").uri,
                                    training_started_at=datetime.now(timezone.utc) + timedelta(seconds=5),
                                    completed_at=datetime.now(timezone.utc) + timedelta(minutes=1)),
                     aws_clients.ecr, service.ledger)
    push_images(aws_clients, repository, ["latest"])  # the new push that fails
    bad = _digest(aws_clients, repository, "latest")
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=emulator.url)
    ssm.put_parameter(Name=parameter, Value=ImageRef.in_ecr(ACCOUNT, REGION, repository, tag="latest").uri, Type="String")
    secrets = aws_clients.secretsmanager
    link_arn = secrets.create_secret(Name=f"link-key-{suffix}", SecretString=LINK_KEY)["ARN"]
    slack_arn = secrets.create_secret(Name=f"slack-signing-{suffix}", SecretString=SLACK_SECRET)["ARN"]
    bot_arn = secrets.create_secret(Name=f"slack-bot-{suffix}", SecretString="xoxb-test-not-a-token")["ARN"]
    service.link_key_secret_arn = link_arn
    service.__post_init__()
    env = Rollback(clients=aws_clients, emulator=emulator, table=table, topic_arn=topic_arn, queue_url=queue_url,
                   repository=repository, parameter=parameter, mode=mode, good=good, bad=bad, service=service)
    env.clients.ssm = ssm  # type: ignore[attr-defined]
    env.create_state_machine()
    for name, value in {"AWS_ENDPOINT_URL": emulator.url, "AWS_REGION": REGION, "INCIDENT_TABLE": table,
                        "ROLLBACK_MODE": mode, "ROLLBACK_STATE_MACHINE_ARN": env.state_machine_arn,
                        "PIPELINE_REPOSITORY": repository, "LINK_KEY_SECRET_ARN": link_arn,
                        "SLACK_SIGNING_SECRET_ARN": slack_arn, "ALLOWED_SLACK_USERS": f"{ALLOWED_USER},U0OTHER",
                        "ALLOWED_SLACK_GROUPS": "S0OPERATORS", "SLACK_BOT_TOKEN_SECRET_ARN": bot_arn,
                        "SLACK_API_URL": slack_receiver.url.rsplit("/services/", 1)[0] + "/api/",
                        "DECISION_URL": "https://decide.example", "POWERTOOLS_SERVICE_NAME": "incident-responder"}.items():
        monkeypatch.setenv(name, value)
    import incident_responder.handlers.decide as module

    env.handler = importlib.reload(module).handler  # module-level configuration is read at cold start
    env.slack = slack_receiver
    return env
