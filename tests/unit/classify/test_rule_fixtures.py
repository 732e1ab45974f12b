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
    diagnosis = classify(text, catalog=CATALOG)
    assert diagnosis.rule_id == rule_id, f"{rule_id} should decide {text!r}, got {diagnosis.rule_id}"
    if not rule.spec.from_groups:
        assert (diagnosis.category, diagnosis.cause) == (rule.category, rule.cause)
    else:
        named = text.split("[", 1)[1].split("/", 1)[0]
        assert diagnosis.category.value == (named if named in GUIDE_CATEGORIES else "unknown")
    assert diagnosis.evidence, "a decision must show the line that decided it"


@pytest.mark.parametrize(("rule_id", "text"), NEGATIVE)
def test_negative_fixture_is_not_decided_by_its_rule(rule_id: str, text: str) -> None:
    assert classify(text, catalog=CATALOG).rule_id != rule_id


def test_every_rule_has_positive_and_negative_fixtures() -> None:
    for rule in CATALOG.rules:
        assert rule.spec.fixtures.positive and rule.spec.fixtures.negative, rule.id


def test_every_guide_category_has_rules() -> None:
    covered = {rule.category.value for rule in CATALOG.rules}
    assert set(GUIDE_CATEGORIES) <= covered
