"""bench/fallback_models.py: the independent model's training sets, its curve's counts, and a run on a small corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import fallback_models

WAVES = (("1", ("aa",), "HEAD"), ("2", ("bb",), "HEAD"))
ROWS = [
    {"id": "x001", "label": "cuda_gpu", "wave": None},
    {"id": "aa001", "label": "unknown", "wave": "1"},
    {"id": "aa002", "label": "cuda_gpu", "wave": "1"},
    {"id": "bb001", "label": "aws_credentials", "wave": "2"},
]


@pytest.mark.parametrize(
    ("wave", "regime", "expected"),
    [
        ("1", "earlier", ["x001"]),  # only what train held before wave 1 was judged
        ("2", "earlier", ["x001", "aa001", "aa002"]),
        ("1", "others", ["x001", "bb001"]),  # every case but the wave's own
        ("2", "no-rule", ["aa001"]),  # other waves' cases no rule matched, nothing from before the waves
    ],
)
def test_each_regime_trains_on_its_cases_and_never_on_the_judged_wave(wave, regime, expected) -> None:
    chosen = fallback_models.training_set(ROWS, wave, regime, no_rule={"aa001", "bb001"}, waves=WAVES)
    assert [r["id"] for r in chosen] == expected


def test_an_unknown_regime_is_refused() -> None:
    with pytest.raises(ValueError, match="choose from earlier, others, no-rule"):
        fallback_models.training_set(ROWS, "1", "all", set(), waves=WAVES)


def test_wave_of_reads_the_prefix() -> None:
    assert (fallback_models.wave_of("bb017", WAVES), fallback_models.wave_of("x001", WAVES)) == ("2", None)


def test_curve_counts_right_answers_and_the_right_unknowns_they_spoil() -> None:
    scored = [({"label": "cuda_gpu"}, "cuda_gpu", 0.95), ({"label": "unknown"}, "cuda_gpu", 0.85),
              ({"label": "unknown", "also": "entry_point"}, "entry_point", 0.7),
              ({"label": "aws_credentials"}, "cuda_gpu", 0.6), ({"label": "unknown"}, "unknown", 0.99)]
    assert fallback_models.curve(scored, cuts=(0.5, 0.8, 0.9)) == [(0.5, 4, 2, 1), (0.8, 2, 1, 1), (0.9, 1, 1, 0)]


def test_a_run_prints_each_regimes_curve(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(fallback_models, "WAVES", WAVES)
    words = {"cuda_gpu": "error: cuda driver version is insufficient for the gpu",
             "aws_credentials": "error: the security token included in the request is expired",
             "unknown": "error: assertion failed in the user's test suite"}
    cases = [{"id": f"{prefix}{n:03}", "label": label, "log": f"{words[label]} (run {n})",
              "source": f"https://github.com/o/{prefix}/issues/{n}"}
             for prefix in ("x", "aa", "bb") for n, label in enumerate(sorted(words) * 3)]
    corpus = tmp_path / "train.jsonl"
    corpus.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": c["id"], "rule_id": None}) + "\n"
                               for c in cases if c["id"][:2] in ("aa", "bb")), encoding="utf-8")
    assert fallback_models.main(["--answers", str(answers), "--corpus", str(corpus),
                                 "--regimes", "earlier,others", "--phrases", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no rule matched: 18 cases of the fresh waves, 12 of them labelled with a guide category")
    assert "trained on `earlier`" in out and "trained on `others`" in out and "trained on `no-rule`" not in out
    # three words a class, said nine times each: every answer is made and right, at every cut up to 0.5
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["0.5"])
    assert row == ["0.5", "12", "12", "1.00", "0", "12"]
    # wave 1 learns from the 3 threads of each category before it, wave 2 from 6: all 12 category cases answered
    assert ("phrases of 3 words held by >= 3 threads of one category before the wave: 12 answers, 12 right (1.00), "
            "0 on unknown, net +12") in out


def test_a_missing_answers_file_says_how_to_write_it(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        fallback_models.main(["--answers", str(tmp_path / "none.jsonl")])
    assert "write it with `python bench/prequential.py --json PATH`" in capsys.readouterr().err


def test_a_phrase_is_mined_from_enough_threads_of_one_category_and_none_of_another() -> None:
    rows = [{"label": "cuda_gpu", "thread": "t1", "phrases": {"driver is insufficient", "see the log"}},
            {"label": "cuda_gpu", "thread": "t2", "phrases": {"driver is insufficient", "see the log"}},
            {"label": "cuda_gpu", "thread": "t2", "phrases": {"gpu fell off"}},  # one thread, said twice
            {"label": "cuda_gpu", "thread": "t2", "phrases": {"gpu fell off"}},
            {"label": "unknown", "thread": "t3", "phrases": {"see the log", "tests failed here"}},
            {"label": "unknown", "thread": "t4", "phrases": {"tests failed here"}}]
    assert fallback_models.mined_phrases(rows, threads=2) == {"driver is insufficient": "cuda_gpu"}
    test = [{"phrases": {"driver is insufficient"}}, {"phrases": {"see the log"}}, {"phrases": set()}]
    assert [guess for _, guess, _ in fallback_models.phrase_answers(rows, test, threads=2)] == [
        "cuda_gpu", "unknown", "unknown"]


def test_phrases_skip_runs_of_placeholders_and_short_words() -> None:
    # "<num> at 42" and "at 42 7" say nothing; a run with one real word stays
    assert fallback_models.phrases("123456 at 42 7 failed\nerror: no module named gsplat") == {
        "42 7 failed", "error no module", "no module named", "module named gsplat"}
