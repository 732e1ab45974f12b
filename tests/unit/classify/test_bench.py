"""bench/classifier_eval.py: the figures it prints, its JSON, and its errors on a bad corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import classifier_eval

CASES = [
    {"label": "cuda_gpu", "log": "RuntimeError: CUDA error: no kernel image is available for execution on the device"},
    {"label": "python_dependencies", "log": "ModuleNotFoundError: No module named 'gsplat'"},
    {"label": "unknown", "log": "TypeError: unsupported operand type(s) for -: 'float' and 'NoneType'"},
    {"label": "unknown", "log": "PermissionError: [Errno 13] Permission denied: '/runtime'"},  # a wrong claim
    {"label": "some_new_category", "log": "everything exploded"},  # scored as unknown
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in CASES) + "\n", encoding="utf-8")
    return path


def test_evaluation_figures(corpus: Path, catalog) -> None:
    evaluation = classifier_eval.evaluate(classifier_eval.read_corpus(corpus), catalog)
    assert (evaluation.total, evaluation.correct) == (5, 4)
    assert evaluation.unknown_cases == 3 and evaluation.unknown_wrong_claims == 1
    assert evaluation.confusion["unknown"]["file_permissions_paths"] == 1
    assert evaluation.calibration["0 (unknown)"] == [2, 2] and evaluation.calibration["[0.8, 1]"] == [3, 2]
    assert evaluation.per_label["cuda_gpu"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1,
                                                "predicted": 1}


def test_cli_prints_tables_and_targets(corpus: Path, capsys) -> None:
    assert classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0.2"]) == 0
    out = capsys.readouterr().out
    for fragment in ("accuracy: 0.800", "confusion (rows: label", "wrong claims on unknown cases: 1/3",
                     "throughput:", "MISS accuracy", "calibration (confidence band"):
        assert fragment in out, out
    # the speed target's line is printed; whether it is met depends on the machine's load (no timed assertions)
    assert re.search(r"^  (MET  |MISS )one_mb_ms = \d+\.\d+ \(target <= 100\.0\)$", out, re.M), out


def test_cli_json(corpus: Path, capsys) -> None:
    assert classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["accuracy"] == 0.8 and figures["targets_met"]["accuracy"] is False
    assert "claim_precision" in figures["targets_met"] and figures["mistakes"]


def test_no_cases_shows_the_figures_and_no_case_id(tmp_path: Path, capsys) -> None:
    ids = [f"case-{n:03d}" for n in range(len(CASES))]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, **c}) + "\n" for i, c in zip(ids, CASES)), encoding="utf-8")
    assert classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0"]) == 0
    shown = capsys.readouterr().out
    assert "mistakes:" in shown and any(i in shown for i in ids)
    assert classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0", "--no-cases"]) == 0
    text = capsys.readouterr().out
    assert classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0", "--no-cases", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert "accuracy: 0.800" in text and figures["accuracy"] == 0.8 and figures["mistakes"] == []
    assert not any(i in text for i in ids) and "mistakes:" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"label": "cuda_gpu"}\n', "needs string fields `label` and `log`"),
        ("not json\n", "not JSON"),
        ("\n", "no cases"),
        ('{"label": "unknown", "log": "x", "also": ["cuda_gpu"]}\n', "`also` must be a string"),
    ],
)
def test_bad_corpus_is_reported(tmp_path: Path, content: str, message: str, capsys) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        classifier_eval.main(["--corpus", str(path), "--synthetic-mb", "0"])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_synthetic_log_ends_with_the_failure() -> None:
    log = classifier_eval.synthetic_log(200_000)
    assert len(log) >= 200_000 and log.rstrip().endswith("1.06 GiB is free.")


PERMISSION_DENIED = "PermissionError: [Errno 13] Permission denied: '/runtime'"  # answered file_permissions_paths
MISSING_MODULE = "ModuleNotFoundError: No module named 'gsplat'"  # answered python_dependencies


@pytest.mark.parametrize(
    ("case", "right", "scored_as"),
    [
        # the answer equals `also`: right, and it counts under that category, not as a wrong claim on `unknown`
        ({"label": "unknown", "also": "file_permissions_paths", "log": PERMISSION_DENIED}, True,
         "file_permissions_paths"),
        ({"label": "cuda_gpu", "also": "python_dependencies", "log": MISSING_MODULE}, True, "python_dependencies"),
        # `also` names another category than the answer: scored against `label` as before
        ({"label": "cuda_gpu", "also": "entry_point", "log": MISSING_MODULE}, False, "cuda_gpu"),
        ({"label": "unknown", "also": "cuda_gpu", "log": PERMISSION_DENIED}, False, "unknown"),
        # `also` outside the guide's list is ignored
        ({"label": "cuda_gpu", "also": "no_such_category", "log": MISSING_MODULE}, False, "cuda_gpu"),
    ],
)
def test_an_answer_equal_to_also_is_right(case: dict, right: bool, scored_as: str, catalog) -> None:
    evaluation = classifier_eval.evaluate([case], catalog)
    predicted = "file_permissions_paths" if case["log"] == PERMISSION_DENIED else "python_dependencies"
    assert evaluation.correct == int(right)
    assert evaluation.confusion[scored_as][predicted] == 1
    assert evaluation.unknown_wrong_claims == int(scored_as == "unknown")
    assert evaluation.per_label[scored_as]["support"] == 1


# words the model learned for workflow_parsing that no rule matches (round 11's generic rule reads "is not valid")
WORKFLOW_GUESS = "workflow file github workflows yml: yaml syntax line 3 col 4 invalid"


def test_answers_from_the_learned_fallback_are_counted(tmp_path: Path, catalog, monkeypatch) -> None:
    rows = [*CASES, {"label": "workflow_parsing", "log": WORKFLOW_GUESS}]  # no rule matches it; the model does
    evaluation = classifier_eval.evaluate(rows, catalog)
    assert (evaluation.fallback, evaluation.fallback_correct) == (1, 1)
    assert (evaluation.claims, evaluation.claims_correct) == (4, 3) and evaluation.claim_precision == 0.75
    monkeypatch.setenv("CLASSIFIER_FALLBACK", "off")
    rules_alone = classifier_eval.evaluate(rows, catalog)
    assert (rules_alone.fallback, rules_alone.claims) == (0, 3)


def test_cli_no_fallback_and_the_no_rule_timing(corpus: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CLASSIFIER_FALLBACK", "on")  # so the teardown restores what main() changes
    assert classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0.2", "--no-fallback"]) == 0
    out = capsys.readouterr().out
    assert "answers other than unknown: 2/3 right" in out and "1 MB log that no rule matches" in out
    assert classifier_eval.os.environ["CLASSIFIER_FALLBACK"] == "off"


def test_cli_without_rules_leaves_the_listed_rules_out(corpus: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CLASSIFIER_FALLBACK", "off")  # rules alone: the left-out rule's case must fall to unknown
    listed = tmp_path / "left_out.txt"
    # the cuda case's rule, and round 12's generic CUDA rule, which reads it too
    listed.write_text("# comment line\ncuda_gpu.no_kernel_image  # the cuda case's rule\ncuda_gpu.generic_cuda_failure\n",
                      encoding="utf-8")
    assert classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0", "--json",
                                 "--without-rules", str(listed)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["accuracy"] == 0.6  # the cuda case is now unknown
    assert "rules left out" in captured.err and "cuda_gpu.no_kernel_image" in captured.err


def test_cli_without_rules_names_an_unknown_rule_id(corpus: Path, tmp_path: Path, capsys) -> None:
    listed = tmp_path / "left_out.txt"
    listed.write_text("cuda_gpu.no_such_rule\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        classifier_eval.main(["--corpus", str(corpus), "--synthetic-mb", "0", "--without-rules", str(listed)])
    assert "no such rule in the catalog: cuda_gpu.no_such_rule" in capsys.readouterr().err
