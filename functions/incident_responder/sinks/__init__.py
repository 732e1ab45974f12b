"""Where reports go: Slack (incoming webhook), SNS, stdout.

Each sink redacts right before sending (whatever the caller did) and returns a
Notification instead of raising, so one failed sink never stops the others.
"""

from __future__ import annotations

from .base import Sink, SinkConfigError, notify, notify_intake_error
from .slack import SlackWebhookParams, SlackWebhookSink
from .sns import SnsParams, SnsSink
from .stdout import StdoutParams, StdoutSink

SINKS: dict[str, type] = {"slack": SlackWebhookSink, "sns": SnsSink, "stdout": StdoutSink}

__all__ = [
    "SINKS",
    "Sink",
    "SinkConfigError",
    "SlackWebhookParams",
    "SlackWebhookSink",
    "SnsParams",
    "SnsSink",
    "StdoutParams",
    "StdoutSink",
    "notify",
    "notify_intake_error",
]
