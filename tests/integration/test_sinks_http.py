"""Sinks over real HTTP: SNS and Secrets Manager on moto's server, Slack on a loopback receiver.

The last test is the issue's acceptance check: every secret format embedded in a
training log reaches no sink and not the responder's own logs.
"""

from __future__ import annotations

import io
import json
import logging
import uuid

import boto3
import pytest

from incident_responder.demo.emulator import EMULATOR_CREDENTIALS
from incident_responder.intake import parse_event
from incident_responder.models import IntakeError
from incident_responder.redact import RedactingFormatter, redact
from incident_responder.sinks import (
    SinkConfigError, SlackWebhookSink, SnsParams, SnsSink, StdoutParams, StdoutSink, run_guarded,
)
from tests.unit.report.samples import (
    JOB, SECRET_SAMPLES, make_incident, make_intake_error, make_leaky_evidence, make_leaky_incident, all_secret_substrings,
)

REGION = "us-west-2"


@pytest.fixture
def sqs(moto_endpoint: str):
    return boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint, **EMULATOR_CREDENTIALS)


def _subscribed_queue(aws_clients, sqs, topic_arn: str, filter_policy: dict | None = None) -> str:
    queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    aws_clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes)
    return queue_url


def _envelopes(sqs, queue_url: str) -> list[dict]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def topic(aws_clients, sqs):
    """A fresh topic and a queue subscribed to it: (topic_arn, queue_url)."""
    topic_arn = aws_clients.sns.create_topic(Name=f"incidents-{uuid.uuid4().hex[:12]}")["TopicArn"]
    return topic_arn, _subscribed_queue(aws_clients, sqs, topic_arn)


@pytest.fixture
def webhook_secret(aws_clients, slack_receiver):
    """A Secrets Manager secret holding the receiver's URL as JSON, as the template stores it."""
    name = f"slack-webhook-{uuid.uuid4().hex[:12]}"
    aws_clients.secretsmanager.create_secret(Name=name, SecretString=json.dumps({"webhook_url": slack_receiver.url}))
    return name


def test_sns_publish_is_readable_by_subscribers(aws_clients, sqs, topic) -> None:
    incident = make_incident()
    topic_arn, queue_url = topic
    notification = SnsSink(SnsParams(topic_arn=topic_arn), aws_clients.sns).send(incident)
    assert notification.ok and notification.sink == "sns"
    [envelope] = _envelopes(sqs, queue_url)
    assert envelope["MessageId"] == notification.message_id
    assert envelope["Subject"] == f"[3DGS] entry_point/train_argument_replaces_cmd: {JOB}"
    assert envelope["Message"].startswith(f"FAILED SageMaker training job {JOB}")
    assert envelope["MessageAttributes"]["category"] == {"Type": "String", "Value": "entry_point"}
    assert envelope["MessageAttributes"]["confidence"] == {"Type": "Number", "Value": "0.92"}


@pytest.mark.parametrize(("filter_policy", "delivered"), [
    ({"category": ["entry_point"]}, True),
    ({"category": ["cuda_gpu"]}, False),
    ({"confidence": [{"numeric": [">=", 0.9]}]}, True),
    ({"confidence": [{"numeric": [">=", 0.95]}]}, False),
    ({"kind": ["intake_error"]}, False),
])
def test_attributes_drive_subscription_filter_policies(aws_clients, sqs, topic, filter_policy,
                                                       delivered) -> None:
    incident = make_incident()
    topic_arn, _ = topic
    filtered_queue = _subscribed_queue(aws_clients, sqs, topic_arn, filter_policy)
    assert SnsSink(SnsParams(topic_arn=topic_arn), aws_clients.sns).send(incident).ok
    assert bool(_envelopes(sqs, filtered_queue)) is delivered


def test_intake_error_is_published(aws_clients, sqs, topic) -> None:
    intake_error = make_intake_error()
    topic_arn, queue_url = topic
    assert SnsSink(SnsParams(topic_arn=topic_arn), aws_clients.sns).send_intake_error(intake_error).ok
    [envelope] = _envelopes(sqs, queue_url)
    assert envelope["MessageAttributes"]["kind"]["Value"] == "intake_error"


def test_publish_to_a_missing_topic_is_a_failed_notification(aws_clients) -> None:
    incident = make_incident()
    missing = f"arn:aws:sns:{REGION}:123456789012:does-not-exist-{uuid.uuid4().hex[:8]}"
    notification = SnsSink(SnsParams(topic_arn=missing), aws_clients.sns).send(incident)
    assert not notification.ok
    assert "NotFound" in notification.detail and missing in notification.detail


@pytest.mark.parametrize("topic_arn", ["incidents", "https://sns.us-west-2.amazonaws.com/incidents",
                                       "arn:aws:sqs:us-west-2:123456789012:incidents"])
def test_sns_params_reject_what_is_not_a_topic_arn(topic_arn) -> None:
    with pytest.raises(ValueError, match="must be an SNS topic ARN"):
        SnsParams(topic_arn=topic_arn)


@pytest.mark.parametrize("shape", ["json", "plain_url"])
def test_slack_sink_from_secret(aws_clients, slack_receiver, shape) -> None:
    incident = make_incident()
    value = json.dumps({"webhook_url": slack_receiver.url}) if shape == "json" else slack_receiver.url + "\n"
    name = f"slack-{shape}-{uuid.uuid4().hex[:8]}"
    aws_clients.secretsmanager.create_secret(Name=name, SecretString=value)
    sink = SlackWebhookSink.from_secret(aws_clients.secretsmanager, name, timeout_s=3)
    assert sink.send(incident).ok
    assert len(slack_receiver.requests) == 1


BAD_SECRETS = [
    pytest.param('{"url": "https://hooks.slack.com/services/T/B/' + "x" * 8 + '"}', 'without a "webhook_url"',
                 id="json-without-webhook-url"),
    pytest.param("{webhook_url: https://example.com/hook}", "does not parse", id="broken-json"),
    pytest.param("xoxb-not-a-url-" + "1" * 10, "neither a URL nor JSON", id="a-token-not-a-url"),
    pytest.param("http://hooks.slack.com/services/T/B/" + "y" * 8, "must use https://", id="plain-http"),
]


@pytest.mark.parametrize(("value", "complaint"), BAD_SECRETS)
def test_slack_secret_with_wrong_shape_says_what_to_store(aws_clients, value, complaint) -> None:
    name = f"slack-bad-{uuid.uuid4().hex[:8]}"
    aws_clients.secretsmanager.create_secret(Name=name, SecretString=value)
    with pytest.raises(SinkConfigError) as raised:
        SlackWebhookSink.from_secret(aws_clients.secretsmanager, name)
    message = str(raised.value)
    assert complaint in message and name in message
    assert value not in message
    assert redact(message) == message, "the advice must survive the responder's redacting logger"


def test_missing_slack_secret_names_the_secret(aws_clients) -> None:
    with pytest.raises(SinkConfigError, match=r"'no-such-secret' could not be read \(ResourceNotFoundException\)"):
        SlackWebhookSink.from_secret(aws_clients.secretsmanager, "no-such-secret")


def test_every_secret_format_in_a_training_log_reaches_no_sink(
    aws_clients, sqs, topic, slack_receiver, webhook_secret, capsys,
) -> None:
    _, gathered = make_leaky_evidence()
    # What gathering returns really carries every format; triage's boundary is what removes them.
    tail = "\n".join(gathered.logs.streams[0].lines)
    assert all(secret in tail for secret in all_secret_substrings())
    incident = make_leaky_incident()

    topic_arn, queue_url = topic
    sinks = [
        SlackWebhookSink.from_secret(aws_clients.secretsmanager, webhook_secret),
        SnsSink(SnsParams(topic_arn=topic_arn), aws_clients.sns),
        StdoutSink(StdoutParams()),
    ]
    leaky_intake_error = parse_event({"detail-type": "SageMaker Training Job State Change", "source": "aws.sagemaker",
                                      "id": "leaky", "detail": {"TrainingJobName": tail}})
    assert isinstance(leaky_intake_error, IntakeError)
    notifications = run_guarded([(sink, "alert", lambda sink=sink: sink.send(incident)) for sink in sinks])
    notifications += [sink.send_intake_error(leaky_intake_error) for sink in sinks]
    assert [(n.sink, n.ok) for n in notifications] == [("slack", True), ("sns", True), ("stdout", True)] * 2

    log_output = io.StringIO()
    from aws_lambda_powertools import Logger

    logger = Logger(service=f"responder-{uuid.uuid4().hex[:6]}", logger_formatter=RedactingFormatter(),
                    logger_handler=logging.StreamHandler(log_output))
    logger.info("incident", extra={"incident": incident.model_dump(mode="json")})
    logger.warning("intake error %s", leaky_intake_error.model_dump_json())
    logger.info("notified", extra={"notifications": [n.model_dump() for n in notifications]})

    delivered = {
        "slack": "\n".join(request.raw.decode() for request in slack_receiver.requests),
        "sns": json.dumps(_envelopes(sqs, queue_url)),
        "stdout": capsys.readouterr().out,
        "logs": log_output.getvalue(),
    }
    assert len(slack_receiver.requests) == 2 and delivered["sns"].count('"MessageId"') == 2
    for where, text in delivered.items():
        assert "[REDACTED:" in text, f"{where} received nothing to check"
        # JSON bodies escape "/" and "+" differently per encoder; check raw and escaped forms.
        leaked = [s for s in all_secret_substrings()
                  if s in text or json.dumps(s)[1:-1] in text or s.replace("/", "\\/") in text]
        assert leaked == [], f"secrets reached {where}"
