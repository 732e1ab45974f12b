"""Hands a verified GitHub failure to the TriageFunction through EventBridge.

The endpoint answers GitHub at once (GitHub gives a delivery 10 s and never retries on its own);
triage then runs where every other failure does, with Lambda's retries, the dead-letter queue and its
alarm: a Slack outage or a crash mid-report is retried, not lost with a failed delivery.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..intake import GITHUB_DETAIL_TYPE, GITHUB_EVENT_SOURCE
from ..models import FailureEvent


class HandoffFailed(RuntimeError):
    pass


class EventBusHandoff:
    def __init__(self, events: Any, bus: str = "default") -> None:
        self.events = events
        self.bus = bus

    def __call__(self, event: FailureEvent) -> None:
        entry = {"Source": GITHUB_EVENT_SOURCE, "DetailType": GITHUB_DETAIL_TYPE,
                 "Detail": event.model_dump_json(exclude_none=True), "EventBusName": self.bus,
                 "Resources": [event.run_url] if event.run_url else []}
        try:
            answer = self.events.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise HandoffFailed(f"PutEvents to the '{self.bus}' event bus failed: {exc}") from exc
        failed = [e for e in answer.get("Entries", []) if e.get("ErrorCode")]
        if answer.get("FailedEntryCount") or failed:
            error = failed[0] if failed else {}
            raise HandoffFailed(f"PutEvents to the '{self.bus}' event bus refused the event: "
                                f"{error.get('ErrorCode', '?')}: {error.get('ErrorMessage', '')}")
