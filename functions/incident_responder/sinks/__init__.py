"""Where reports go: Slack (incoming webhook), SNS, stdout.

Sinks receive an Incident that is redacted by construction (triage's boundary) and return a
Notification; run_guarded runs each on its own thread and turns a raising sink into a failed
Notification, so one failed sink never stops or delays the others.
"""

from __future__ import annotations

from .base import Sink, SinkConfigError, run_guarded
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
    "run_guarded",
]
