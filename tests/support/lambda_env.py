"""Runs the Lambda handlers as Lambda would: configured by environment, with a Lambda context,
against the emulator (AWS_ENDPOINT_URL) and a local Slack receiver."""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass, field

import pytest

from incident_responder.demo.provision import create_incident_table, create_topic_with_inbox


@dataclass
class LambdaContext:
    function_name: str = "incident-responder-TriageFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-west-2:123456789012:function:incident-responder-TriageFunction"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


@dataclass
class DeployedResponder:
    handler: object
    table: str
    topic_arn: str
    queue_url: str
    clients: object

    def invoke(self, event):
        return self.handler(event, LambdaContext())


@pytest.fixture
def deployed_responder(aws_clients, emulator, slack_receiver, monkeypatch) -> DeployedResponder:
    suffix = uuid.uuid4().hex[:8]
    table = f"incidents-{suffix}"
    create_incident_table(aws_clients, table)
    topic_arn, queue_url = create_topic_with_inbox(aws_clients, f"alerts-{suffix}")
    secret = aws_clients.secretsmanager.create_secret(
        Name=f"slack-{suffix}", SecretString=json.dumps({"webhook_url": slack_receiver.url})
    )["ARN"]
    for name, value in {
        "AWS_ENDPOINT_URL": emulator.url,
        "AWS_REGION": "us-west-2",
        "INCIDENT_TABLE": table,
        "SNS_TOPIC_ARN": topic_arn,
        "SLACK_WEBHOOK_SECRET_ARN": secret,
        "LOG_WAIT_SECONDS": "0",
        "POWERTOOLS_SERVICE_NAME": "incident-responder",
        "POWERTOOLS_METRICS_NAMESPACE": "ThreeDGSIncidentResponder",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    import incident_responder.handlers.triage as module

    module = importlib.reload(module)  # module-level config is read at cold start
    return DeployedResponder(module.handler, table, topic_arn, queue_url, aws_clients)


@pytest.fixture
def responder_logs(deployed_responder):
    """What the responder's own Powertools Logger writes, through its own (redacting) formatter."""
    import io
    import logging

    import incident_responder.handlers.triage as module

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(module.logger.registered_formatter)
    module.logger._logger.addHandler(handler)
    yield stream
    module.logger._logger.removeHandler(handler)
