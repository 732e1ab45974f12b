"""Whole-document reasoning: causal order, tracebacks, noise, structured lines, unknown.

The cases are data (cases/reasoning.yaml, and cases/boundaries.yaml for the labelling guide's
boundaries): adding one needs no code.
"""

from __future__ import annotations

import pytest

from incident_responder.classify import classify

from .conftest import load_cases

CASES = load_cases("reasoning.yaml") + load_cases("boundaries.yaml")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reasoning_case(case: dict, catalog) -> None:
    diagnosis = classify(case["text"], catalog=catalog, trusted_lines=case.get("trusted_lines", 0))
    assert diagnosis.category.value == case["category"], diagnosis
    if "cause" in case:
        assert diagnosis.cause == case["cause"], diagnosis
    if "rule" in case:
        assert diagnosis.rule_id == case["rule"], diagnosis
    lines = [e.line for e in diagnosis.evidence]
    for expected in case.get("evidence_lines", []):
        assert expected in lines, f"line {expected} should be evidence, got {lines}"
    text_lines = case["text"].splitlines()
    for evidence in diagnosis.evidence:
        assert evidence.text == text_lines[evidence.line - 1].strip()[:300] or evidence.text.endswith("…")
    assert diagnosis.confidence >= case.get("min_confidence", 0.0)
    assert diagnosis.confidence <= case.get("max_confidence", 1.0)
    assert diagnosis.remediation, "every diagnosis carries the guide's fix steps"
    if "remediation_first" in case:
        assert diagnosis.remediation[0] == case["remediation_first"]


def test_unknown_when_no_rule_fits_has_zero_confidence(catalog) -> None:
    diagnosis = classify("everything is fine\nstep 100 loss=0.1\n", catalog=catalog)
    assert (diagnosis.category.value, diagnosis.confidence, diagnosis.rule_id) == ("unknown", 0.0, None)


def test_evidence_text_is_truncated(catalog) -> None:
    line = "ModuleNotFoundError: No module named 'gsplat' " + "x" * 1000
    evidence = classify(line, catalog=catalog).evidence[0]
    assert len(evidence.text) <= 300 and evidence.text.endswith("…")


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_trusted_lines_must_be_a_count(bad, catalog) -> None:
    with pytest.raises(ValueError, match="trusted_lines must be a count"):
        classify("x", catalog=catalog, trusted_lines=bad)


def test_rejects_bytes_with_a_clear_error(catalog) -> None:
    with pytest.raises(TypeError, match="decode bytes first"):
        classify(b"ModuleNotFoundError", catalog=catalog)  # type: ignore[arg-type]
