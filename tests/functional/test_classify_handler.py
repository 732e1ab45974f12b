"""The ClassifyFunction handler with every events/classify-*.json, as `sam local invoke` runs it."""

from __future__ import annotations

import json

import pytest

from incident_responder.handlers.classify import handler
from incident_responder.models import GUIDE_CATEGORIES
from tests.support.events import event_files

CLASSIFY_EVENTS = event_files("classify-*.json")


def test_there_is_a_classify_event_for_every_guide_category():
    covered = {json.loads(p.read_text())["expect"]["category"] for p in CLASSIFY_EVENTS}
    assert set(GUIDE_CATEGORIES) | {"unknown"} <= covered


@pytest.mark.parametrize("path", CLASSIFY_EVENTS, ids=lambda p: p.stem)
def test_classify_event_gives_its_expected_diagnosis(path):
    event = json.loads(path.read_text())
    result = handler(event, None)
    assert (result["category"], result["cause"]) == (event["expect"]["category"], event["expect"]["cause"])
    assert set(result) >= {"source", "category", "cause", "confidence", "evidence", "remediation", "commands"}
    for name in event.get("names", {}):
        assert not any(f"<{name}>" in command for command in result["commands"]), f"{name} left unfilled"


@pytest.mark.parametrize(
    "event, complaint",
    [({}, "'log'"), ({"log": 42}, "'log'"), ({"log": "x", "names": ["job"]}, "'names'"), ([], "'log'")],
)
def test_a_bad_classify_event_gets_a_clear_error(event, complaint):
    result = handler(event, None)
    assert complaint in result["error"]


def test_unknown_names_are_refused_with_the_accepted_ones():
    from incident_responder.handlers.classify import handler

    answer = handler({"log": "anything", "names": {"bogus": "1"}})
    assert "unknown keys ['bogus']" in answer["error"] and "job_name" in answer["error"]


def test_the_answer_is_redacted_like_the_cli():
    from incident_responder.handlers.classify import handler

    key = "AKIA" + "B" * 16
    answer = handler({"log": f'exec: "train": executable file not found in $PATH {key}',
                      "names": {"job_name": f"job-{key}"}})
    assert key not in json.dumps(answer) and "REDACTED" in json.dumps(answer)
