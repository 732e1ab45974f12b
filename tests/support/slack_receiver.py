"""The `slack_receiver` fixture: the demo's local Slack stand-in, one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from incident_responder.demo.slack_receiver import ReceivedRequest, SlackReceiver

__all__ = ["ReceivedRequest", "SlackReceiver", "slack_receiver"]


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver
