"""Slack webhook sink against a real HTTP receiver on loopback (tests/support/slack_receiver.py)."""

import json

import pytest
from pydantic import ValidationError

from incident_responder.redact import redact
from incident_responder.sinks import SINKS, Sink, SlackWebhookParams, SlackWebhookSink, SnsSink, StdoutSink, run_guarded
from incident_responder.sinks.slack import SinkConfigError
from tests.support.slack_receiver import SlackReceiver
from tests.unit.report.samples import (
    JOB, SLACK_WEBHOOK, all_secret_substrings, make_incident, make_intake_error, make_leaky_incident,
)


def _sink(receiver: SlackReceiver, **params) -> SlackWebhookSink:
    return SlackWebhookSink(SlackWebhookParams(webhook_url=receiver.url, **params))


def test_posts_block_kit_payload(slack_receiver) -> None:
    incident = make_incident()
    notification = _sink(slack_receiver).send(incident)
    assert notification.ok and notification.sink == "slack"
    [request] = slack_receiver.requests
    assert request.path == SlackReceiver.webhook_path
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.body["blocks"][0]["text"]["text"] == f"3DGS failed: {JOB}"
    assert "entry_point/train_argument_replaces_cmd" in request.body["text"]
    assert request.body["unfurl_links"] is False and request.body["unfurl_media"] is False


def test_rate_limit_is_retried_after_retry_after(slack_receiver) -> None:
    incident = make_incident()
    slack_receiver.reply_next(429, retry_after=1)
    notification = _sink(slack_receiver).send(incident)
    assert notification.ok
    first, second = slack_receiver.requests
    assert first.body == second.body


def test_rate_limit_beyond_max_retries_fails_without_raising(slack_receiver) -> None:
    incident = make_incident()
    slack_receiver.reply_next(429, retry_after=0, times=2)
    notification = _sink(slack_receiver, max_retries=1).send(incident)
    assert not notification.ok
    assert notification.detail == "webhook answered: HTTP 429: rate_limited"
    assert len(slack_receiver.requests) == 2


@pytest.mark.parametrize(("status", "body"), [(500, "internal_error"), (400, "invalid_blocks"),
                                              (404, "no_service"), (403, "action_prohibited")])
def test_error_status_is_a_failed_notification_with_status_and_body(slack_receiver, status, body) -> None:
    incident = make_incident()
    slack_receiver.reply_next(status, body, times=3)
    notification = _sink(slack_receiver).send(incident)
    assert not notification.ok
    assert notification.detail == f"webhook answered: HTTP {status}: {body}"
    # A 500 is retried (max_retries=2); a 4xx is Slack saying no, and retrying cannot change it.
    assert len(slack_receiver.requests) == (3 if status == 500 else 1)


def test_unreachable_webhook_is_a_failed_notification() -> None:
    incident = make_incident()
    with SlackReceiver() as gone:
        url = gone.url
    sink = SlackWebhookSink(SlackWebhookParams(webhook_url=url, max_retries=0, timeout_s=2))
    notification = sink.send(incident)
    assert not notification.ok
    assert notification.detail.startswith("webhook post failed: URLError")


def test_intake_error_is_posted(slack_receiver) -> None:
    intake_error = make_intake_error()
    assert _sink(slack_receiver).send_intake_error(intake_error).ok
    assert "detail.TrainingJobName" in json.dumps(slack_receiver.requests[0].body)


def test_secrets_never_reach_the_receiver(slack_receiver) -> None:
    leaky_incident = make_leaky_incident()
    assert _sink(slack_receiver).send(leaky_incident).ok
    raw = slack_receiver.requests[0].raw.decode()
    assert [s for s in all_secret_substrings() if s in raw or json.dumps(s)[1:-1] in raw] == []


def test_a_failed_sink_does_not_stop_the_others(slack_receiver, capsys) -> None:
    incident = make_incident()
    slack_receiver.reply_next(500, times=3)

    class Exploding:
        name = "exploding"

        def send(self, incident, *, deadline=None):
            raise RuntimeError("token " + SLACK_WEBHOOK)

    sinks = [_sink(slack_receiver), Exploding(), StdoutSink()]
    notifications = run_guarded([(sink, "alert", lambda sink=sink: sink.send(incident)) for sink in sinks])
    assert [(n.sink, n.ok) for n in notifications] == [("slack", False), ("exploding", False), ("stdout", True)]
    assert "[REDACTED:slack_webhook_url]" in notifications[1].detail
    assert JOB in capsys.readouterr().out


def test_registry_names_every_sink() -> None:
    assert SINKS == {"slack": SlackWebhookSink, "sns": SnsSink, "stdout": StdoutSink}
    assert all(isinstance(getattr(cls, "name"), str) for cls in SINKS.values())
    assert isinstance(StdoutSink(), Sink)


BAD_URLS = [
    pytest.param("hooks.slack.com/services/T/B/x", "must be an https:// URL", id="no-scheme"),
    pytest.param("http://hooks.slack.com/services/T/B/x", "must use https://", id="plain-http-to-slack"),
    pytest.param("ftp://example.com/x", "must be an https:// URL", id="wrong-scheme"),
    pytest.param("https:///services/x", "must be an https:// URL", id="no-host"),
]


@pytest.mark.parametrize(("url", "complaint"), BAD_URLS)
def test_bad_webhook_urls_are_rejected_without_echoing_them(url, complaint) -> None:
    with pytest.raises(ValidationError) as raised:
        SlackWebhookParams(webhook_url=url)
    assert complaint in str(raised.value)
    assert url not in str(raised.value)
    assert redact(str(raised.value)) == str(raised.value), "the advice must survive the redacting logger"


@pytest.mark.parametrize(("params", "field"), [({"timeout_s": 0}, "timeout_s"), ({"max_retries": -1}, "max_retries"),
                                               ({"channel": "#ops"}, "channel")])
def test_bad_params_name_the_field(params, field) -> None:
    with pytest.raises(ValidationError, match=field):
        SlackWebhookParams(webhook_url="https://hooks.slack.com/services/T/B/x", **params)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(SinkConfigError, ValueError)
