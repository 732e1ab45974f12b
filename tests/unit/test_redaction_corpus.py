"""Zero leaks over a corpus of generated secrets in every format and encoding, and no harm to
ordinary lines. The corpus is built at test time (tests/support/secret_corpus.py): nothing
secret-shaped is stored in the repository."""

from __future__ import annotations

import json

import pytest

from incident_responder.redact import KINDS, redact, redact_data, redact_lines
from tests.support.secret_corpus import BENIGN, leaks, secret_cases

CASES = secret_cases()
SEEDS = [1, 2, 3]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_redact_leaves_nothing(case) -> None:
    out = redact(case.text)
    assert leaks(out, [case]) == [], out
    assert "[REDACTED:" in out
    if case.kind is not None:
        assert f"[REDACTED:{case.kind}]" in out, out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_redact_lines_leaves_nothing_and_keeps_the_line_count(case) -> None:
    lines = ["Step 1/30000 loss=0.9", *case.text.split("\n"), "Step 2/30000 loss=0.8"]
    out = redact_lines(lines)
    assert len(out) == len(lines)
    assert leaks("\n".join(out), [case]) == [], out
    assert out[0] == lines[0] and out[-1] == lines[-1]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_redaction_is_idempotent(case) -> None:
    once = redact(case.text)
    assert redact(once) == once


@pytest.mark.parametrize("seed", SEEDS)
def test_redact_data_leaves_nothing_in_nested_payloads(seed: int) -> None:
    cases = secret_cases(seed)
    payload = {
        "incident": {"log_lines": [line for case in cases for line in case.text.split("\n")],
                     "fields": {case.id: case.text for case in cases}},
        "hyperparameters": {"wandb_api_key": cases[0].secrets[0], "epochs": "30"},
        "tuple": tuple(case.text for case in cases),
    }
    out = redact_data(payload)
    dumped = json.dumps(out, default=str)
    assert leaks(dumped, cases) == []
    assert out["hyperparameters"]["epochs"] == "30"


def test_every_kind_has_a_generated_case() -> None:
    produced = set()
    for case in CASES:
        out = redact(case.text)
        produced.update(kind for kind in KINDS if f"[REDACTED:{kind}]" in out)
    assert produced == set(KINDS)


@pytest.mark.parametrize("line", BENIGN)
def test_ordinary_lines_survive(line: str) -> None:
    assert redact(line) == line
    assert redact_lines([line]) == [line]
    assert redact_data({"k": line}) == {"k": line}
