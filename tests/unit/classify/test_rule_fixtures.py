"""Every rule proves itself: its positive fixtures are decided by it, its negatives are not."""

from __future__ import annotations

import pytest

from incident_responder.classify import classify, load_catalog
from incident_responder.models import GUIDE_CATEGORIES

CATALOG = load_catalog()
POSITIVE = [
    pytest.param(rule.id, text, id=f"{rule.id}+{i}")
    for rule in CATALOG.rules
    for i, text in enumerate(rule.spec.fixtures.positive)
]
NEGATIVE = [
    pytest.param(rule.id, text, id=f"{rule.id}-{i}")
    for rule in CATALOG.rules
    for i, text in enumerate(rule.spec.fixtures.negative)
]


@pytest.mark.parametrize(("rule_id", "text"), POSITIVE)
def test_positive_fixture_is_decided_by_its_rule(rule_id: str, text: str) -> None:
    rule = CATALOG.rule(rule_id)
    # A structured line decides only inside the FailureReason: the fixture is one.
    trusted = len(text.splitlines()) if rule.spec.from_groups else 0
    diagnosis = classify(text, catalog=CATALOG, trusted_lines=trusted)
    assert diagnosis.rule_id == rule_id, f"{rule_id} should decide {text!r}, got {diagnosis.rule_id}"
    if not rule.spec.from_groups:
        assert (diagnosis.category, diagnosis.cause) == (rule.category, rule.cause)
    else:
        named = text.split("[", 1)[1].split("/", 1)[0]
        assert diagnosis.category.value == (named if named in GUIDE_CATEGORIES else "unknown")
    assert diagnosis.evidence, "a decision must show the line that decided it"


@pytest.mark.parametrize(("rule_id", "text"), NEGATIVE)
def test_negative_fixture_is_not_decided_by_its_rule(rule_id: str, text: str) -> None:
    assert classify(text, catalog=CATALOG, trusted_lines=len(text.splitlines())).rule_id != rule_id


STRUCTURED = [p for p in POSITIVE if CATALOG.rule(p.values[0]).spec.from_groups]


@pytest.mark.parametrize(("rule_id", "text"), STRUCTURED)
def test_a_structured_line_outside_the_failure_reason_decides_nothing(rule_id: str, text: str) -> None:
    for log in (text, f"FailureReason: AlgorithmError: ExecuteUserScriptError, exit code: 1\n{text}"):
        diagnosis = classify(log, catalog=CATALOG, trusted_lines=1 if log != text else 0)
        assert diagnosis.rule_id != rule_id and diagnosis.confidence < 1.0, diagnosis
        message = text.split("]", 1)[1].strip()[:40]
        assert not any(message in step for step in diagnosis.remediation), diagnosis.remediation


def test_every_rule_has_positive_and_negative_fixtures() -> None:
    for rule in CATALOG.rules:
        assert rule.spec.fixtures.positive and rule.spec.fixtures.negative, rule.id


def test_every_guide_category_has_rules() -> None:
    covered = {rule.category.value for rule in CATALOG.rules}
    assert set(GUIDE_CATEGORIES) <= covered
