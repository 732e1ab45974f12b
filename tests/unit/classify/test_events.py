"""Every events/classify-*.json (the ClassifyFunction's `sam local invoke` events) is diagnosed as it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from incident_responder.classify import classify
from incident_responder.models import Category

EVENTS_DIR = Path(__file__).resolve().parents[3] / "events"
EVENTS = sorted(EVENTS_DIR.glob("classify-*.json"))


def test_there_is_an_event_for_every_category() -> None:
    expected = {json.loads(p.read_text(encoding="utf-8"))["expect"]["category"] for p in EVENTS}
    assert expected >= {c.value for c in Category}


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_event_is_classified_as_it_expects(path: Path, catalog) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert set(event) <= {"failure_reason", "log", "names", "expect"}, f"{path.name}: unexpected keys"
    # As triage composes it: the FailureReason first, the only lines a structured line is trusted in.
    reason = event.get("failure_reason")
    text = event["log"] if reason is None else f"{reason}\n{event['log']}"
    trusted = 0 if reason is None else len(reason.splitlines())
    diagnosis = classify(text, names=event.get("names"), catalog=catalog, trusted_lines=trusted)
    assert diagnosis.category.value == event["expect"]["category"], diagnosis
    assert diagnosis.cause == event["expect"]["cause"], diagnosis
    # an `unknown` answer names the learned fallback's lead where the event expects one, and only there
    lead = event["expect"].get("lead")
    assert diagnosis.remediation[0].startswith(f"Lead: a model trained on labelled public logs finds this log's "
                                               f"wording nearest {lead} (") is (lead is not None), diagnosis
    assert ("a lead, not a diagnosis" in diagnosis.title) is (lead is not None), diagnosis
    for key, value in event.get("names", {}).items():
        if key in ("job_name", "execution_arn"):
            assert any(value in command for command in diagnosis.commands), f"{key} not filled in"
