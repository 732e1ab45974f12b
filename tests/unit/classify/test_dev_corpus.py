"""The issue's targets on the development corpus (../shared/corpus/dev.jsonl), where CI has it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.classifier_eval import evaluate, read_corpus

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "dev.jsonl"

pytestmark = pytest.mark.skipif(not CORPUS.is_file(), reason=f"{CORPUS} is not present")


@pytest.fixture(scope="module")
def evaluation(catalog):
    return evaluate(read_corpus(CORPUS), catalog)


def test_accuracy(evaluation) -> None:
    assert evaluation.accuracy >= 0.95, evaluation.mistakes


def test_macro_f1(evaluation) -> None:
    assert evaluation.macro_f1 >= 0.93, evaluation.per_label


def test_every_category_recall(evaluation) -> None:
    low = {k: m["recall"] for k, m in evaluation.per_label.items() if m["support"] and m["recall"] < 0.85}
    assert not low, low


def test_wrong_claims_on_unknown_cases(evaluation) -> None:
    assert evaluation.unknown_wrong_claim_rate <= 0.25, evaluation.mistakes


def test_high_confidence_is_right_at_least_90_percent(evaluation) -> None:
    assert evaluation.high_confidence_precision >= 0.90, evaluation.mistakes
