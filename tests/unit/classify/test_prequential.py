"""bench/prequential.py: a wave classified by a checkout of a commit, the figures it prints, the fallback curve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import prequential

ROOT = Path(__file__).resolve().parents[3]

CASES = [
    {"id": "zz001", "label": "cuda_gpu", "tool": "PyTorch",
     "log": "RuntimeError: CUDA error: no kernel image is available for execution on the device"},
    {"id": "zz002", "label": "python_dependencies", "log": "ModuleNotFoundError: No module named 'gsplat'"},
    {"id": "zz003", "label": "unknown", "log": "the run was cancelled by the user"},
    {"id": "zy001", "label": "unknown", "log": "not in the wave: another prefix"},
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in CASES) + "\n", encoding="utf-8")
    return path


def test_worker_classifies_the_waves_cases_with_the_checkouts_package(corpus: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "prequential.py"), "--worker", str(ROOT),
                           "--corpus", str(corpus), "--prefixes", "zz"], capture_output=True, text=True, check=True)
    answers = {a["id"]: a for a in map(json.loads, done.stdout.splitlines())}
    assert set(answers) == {"zz001", "zz002", "zz003"}
    assert answers["zz001"]["category"] == "cuda_gpu" and answers["zz001"]["rule_id"].startswith("cuda_gpu.")
    assert "fallback" not in answers["zz001"]  # a rule decided: the fallback is not consulted
    guess = answers["zz003"]["fallback"]  # no rule matched: the fallback's guess is recorded, with no threshold
    assert answers["zz003"]["cause"] == "no_matching_rule"
    assert set(guess) == {"predicted", "score", "confidence"} and 0 <= guess["confidence"] <= 1


def test_fallback_curve_counts_right_answers_and_the_unknown_answers_it_would_spoil() -> None:
    rows = [{"id": "a", "label": "cuda_gpu"}, {"id": "b", "label": "unknown"},
            {"id": "c", "label": "unknown", "also": "entry_point"}, {"id": "d", "label": "aws_credentials"}]
    answers = {
        "a": {"cause": "no_matching_rule", "fallback": {"predicted": "cuda_gpu", "score": 0.9, "confidence": 0.9}},
        "b": {"cause": "no_matching_rule", "fallback": {"predicted": "cuda_gpu", "score": 0.9, "confidence": 0.82}},
        "c": {"cause": "learned_fallback", "fallback": {"predicted": "entry_point", "score": 1.0, "confidence": 0.995}},
        "d": {"cause": "rule"},  # a rule answered: not the fallback's population
    }
    table = {line.split()[0]: line.split()[1:] for line in prequential.fallback_curve(rows, answers)[2:]}
    # columns: answers, right, precision, on unknown, net right
    assert table["0.8"] == ["3", "2", "0.67", "1", "1"]
    assert table["0.85"] == ["2", "2", "1.00", "0", "2"]
    assert table["committed"] == ["1", "1", "1.00", "0", "1"]
    assert prequential.fallback_curve(rows, answers)[0].startswith("no rule matched: 3 cases, 1 of them")


def _has_history() -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "HEAD"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_history(), reason="needs the repository's git history (a clone)")
def test_a_wave_judged_by_a_commit_prints_its_figures_and_leaves_no_worktree(corpus: Path, tmp_path: Path,
                                                                              monkeypatch, capsys) -> None:
    monkeypatch.setattr(prequential, "WAVES", (("1", ("zz",), "HEAD"), ("2", ("zy",), "HEAD")))
    before = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    out_json = tmp_path / "answers.jsonl"
    assert prequential.main(["--corpus", str(corpus), "--fallback-curve", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    wave_one = next(line.split() for line in out.splitlines() if line.split()[:2] == ["1", "HEAD"])
    assert wave_one[2:4] == ["3", "3"]  # cases, correct
    assert any(line.split()[:3] == ["all", "-", "4"] for line in out.splitlines()), out
    assert "recall    1/1    1.000" in out and "MET  unknown_wrong_claim_rate" in out
    assert "no rule matched:" in out
    assert "pipeline's own tools (the `tool` field): 1/1 (1.000)" in out and "other tools (the `tool` field): 3/3" in out
    recorded = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert {(r["wave"], r["id"]) for r in recorded} == {("1", "zz001"), ("1", "zz002"), ("1", "zz003"),
                                                        ("2", "zy001")}
    after = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert after == before


def test_an_unknown_wave_is_refused_with_the_list_of_waves(corpus: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        prequential.main(["--corpus", str(corpus), "--waves", "99"])
    assert "no wave 99; the waves are 4, 5" in capsys.readouterr().err


def test_rule_calibration_lowers_a_rule_by_its_record_on_the_other_waves_only() -> None:
    rows = [{"id": i, "label": label} for i, label in
            (("a1", "unknown"), ("a2", "unknown"), ("a3", "cuda_gpu"), ("b1", "unknown"), ("b2", "cuda_gpu"),
             ("c1", "unknown"))]
    wrong = {"category": "entry_point", "cause": "rule", "rule_id": "x", "confidence": 0.9}
    right = {"category": "cuda_gpu", "cause": "rule", "rule_id": "y", "confidence": 0.85}
    alone = {"category": "entry_point", "cause": "rule", "rule_id": "z", "confidence": 0.9}  # no other wave's record
    answers = {"a1": wrong, "a2": wrong, "a3": right, "b1": wrong, "b2": right, "c1": alone}
    waves = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C"}
    line = prequential.rule_calibration(rows, answers, waves, prior=1)
    assert "right 2/6 (0.333) as judged, 2/3 (0.667) calibrated" in line, line


@pytest.mark.parametrize(("layout", "message"), [
    ((), "has no functions/ folder"),
    # functions/ without the package: the import finds the installed copy, which must not stand in for the commit's
    (("functions",), "not from the checkout"),
])
def test_worker_refuses_to_classify_with_a_package_from_outside_the_checkout(corpus: Path, tmp_path: Path,
                                                                            layout: tuple[str, ...],
                                                                            message: str) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for folder in layout:
        (checkout / folder).mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "prequential.py"), "--worker", str(checkout),
                           "--corpus", str(corpus), "--prefixes", "zz"], capture_output=True, text=True, cwd=checkout)
    assert done.returncode != 0 and not done.stdout
    assert message in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not _has_history(), reason="needs the repository's git history (a clone)")
def test_the_record_an_unknown_reports_lead_states_is_what_the_fresh_waves_measured(tmp_path: Path, capsys) -> None:
    """The `unknown` report says its lead was right about 7 times in 10 (fallback.LEAD_RECORD): the share of right
    guesses at >= LEAD_CONFIDENCE, on every wave's no-rule cases, under the commit that judged the wave."""
    from incident_responder.classify import fallback

    out_json = tmp_path / "answers.jsonl"
    assert prequential.main(["--json", str(out_json)]) == 0
    capsys.readouterr()
    labels = {row["id"]: row for row in map(json.loads, (ROOT / "corpus" / "train.jsonl").open(encoding="utf-8"))}
    leads = [(labels[a["id"]], a["fallback"]["predicted"]) for a in map(json.loads, out_json.open(encoding="utf-8"))
             if a.get("fallback") and a["cause"] == "no_matching_rule" and a["fallback"]["predicted"] != "unknown"
             and a["fallback"]["confidence"] >= fallback.LEAD_CONFIDENCE]
    right = sum(row["label"] == guess or row.get("also") == guess for row, guess in leads)
    assert len(leads) >= 50, "too few leads to state a record"
    assert fallback.LEAD_RECORD == "right about 7 times in 10"
    assert 0.65 <= right / len(leads) < 0.75, f"leads were right {right}/{len(leads)}: update LEAD_RECORD"


def test_the_interval_resamples_whole_threads_and_is_the_same_each_run() -> None:
    rows = ([{"id": f"a{i}", "label": "cuda_gpu", "source": f"https://github.com/o/r/issues/1#c{i}"} for i in range(10)]
            + [{"id": f"b{i}", "label": "cuda_gpu", "source": f"https://github.com/o/r/issues/2#c{i}"}
               for i in range(10)])
    answers = {**{f"a{i}": {"category": "cuda_gpu"} for i in range(10)},
               **{f"b{i}": {"category": "unknown"} for i in range(10)}}
    interval, threads = prequential.thread_interval(rows, answers, draws=400)
    assert threads == 2  # comments of one issue are one thread
    # two threads, one all right and one all wrong: a draw is 0, 0.5 or 1, never a mix of cases from within a thread
    assert interval["accuracy"] == (0.0, 1.0)
    assert interval["claim_precision"] == (1.0, 1.0)  # every answer other than unknown is right
    assert prequential.thread_interval(rows, answers, draws=400) == (interval, threads)


def test_the_interval_narrows_with_more_threads() -> None:
    rows = [{"id": str(i), "label": "cuda_gpu", "source": f"https://github.com/o/r/issues/{i}"} for i in range(400)]
    answers = {str(i): {"category": "cuda_gpu" if i % 10 else "entry_point"} for i in range(400)}
    (low, high), = [prequential.thread_interval(rows, answers, draws=400)[0]["accuracy"]]
    assert low < 0.9 < high and high - low < 0.07
