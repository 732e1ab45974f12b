"""bench/corpus_tool.py: thread identity, merging, the by-thread split and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import corpus_tool
from bench.corpus_tool import thread_of


@pytest.mark.parametrize(
    ("url", "thread"),
    [
        ("https://github.com/o/r/issues/12", "https://github.com/o/r/issues/12"),
        ("https://github.com/o/r/issues/12#issuecomment-99", "https://github.com/o/r/issues/12"),
        ("https://github.com/o/r/issues/12/", "https://github.com/o/r/issues/12"),
        ("https://GitHub.com/o/r/pull/7/files?diff=split", "https://github.com/o/r/pull/7"),
        ("https://github.com/o/r/pull/7/commits/abc", "https://github.com/o/r/pull/7"),
        ("https://github.com/o/r/discussions/3/comments/5", "https://github.com/o/r/discussions/3"),
        ("https://stackoverflow.com/questions/123/some-title?answertab=votes#a", "https://stackoverflow.com/questions/123"),
    ],
)
def test_thread_of(url: str, thread: str) -> None:
    assert thread_of(url) == thread


def test_different_issues_are_different_threads() -> None:
    assert thread_of("https://github.com/o/r/issues/12") != thread_of("https://github.com/o/r/issues/120")


def _case(i: int, label: str, source: str, log: str | None = None) -> dict:
    return {"id": f"x{i:03d}", "source": source, "log": log or f"error number {i}", "label": label, "cause": "c"}


def test_merge_drops_duplicate_logs_and_dev_threads() -> None:
    first = [_case(1, "cuda_gpu", "https://github.com/o/r/issues/1", "same log")]
    second = [_case(2, "cuda_gpu", "https://github.com/o/r/issues/2", "  same log\n"),
              _case(3, "unknown", "https://github.com/o/r/issues/3#x")]
    kept, dropped = corpus_tool.merge([first, second], dev_sources={"https://github.com/o/r/issues/3"})
    assert [c["id"] for c in kept] == ["x001"]
    assert dropped == {"duplicate_log": ["x002 (same log as x001)"], "dev_thread": ["x003"]}


def test_merge_refuses_duplicate_ids() -> None:
    with pytest.raises(corpus_tool.CorpusError, match="duplicate id"):
        corpus_tool.merge([[_case(1, "unknown", "https://a.org/1")], [_case(1, "unknown", "https://a.org/2")]], set())


def test_split_keeps_threads_whole_meets_the_minimum_and_is_deterministic() -> None:
    cases = [_case(i, "cuda_gpu" if i // 3 % 2 else "unknown", f"https://github.com/o/r/issues/{i // 3}")
             for i in range(90)]
    train, test = corpus_tool.split(cases, test_fraction=0.1, min_per_category=12)  # 10% would be 4
    assert {thread_of(c["source"]) for c in train}.isdisjoint({thread_of(c["source"]) for c in test})
    assert len(train) + len(test) == 90 and train
    assert all(sum(c["label"] == label for c in test) >= 12 for label in ("cuda_gpu", "unknown"))
    again = corpus_tool.split(list(reversed(cases)), 0.1, 12)[1]  # input order does not matter
    assert sorted(c["id"] for c in again) == sorted(c["id"] for c in test)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"id": "x1", "source": "https://a.org/1", "log": "e", "label": "gpu", "cause": "c"}, "label 'gpu'"),
        ({"id": "x1", "source": "https://a.org/1", "log": "", "label": "unknown", "cause": "c"}, "log"),
        ({"id": "x1", "source": "https://a.org/1", "log": "e", "label": "unknown", "cause": "c", "also": "unknown"},
         "also 'unknown'"),
    ],
)
def test_build_rejects_bad_cases(tmp_path: Path, case: dict, message: str, capsys) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps(case) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        corpus_tool.main(["build", str(raw), "--dev", "", "--out", str(tmp_path / "out")])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_build_writes_both_parts(tmp_path: Path, capsys) -> None:
    raw = tmp_path / "raw.jsonl"
    cases = [_case(i, "unknown", f"https://github.com/o/r/issues/{i}") for i in range(20)]
    raw.write_text("\n".join(json.dumps(c) for c in cases) + "\n", encoding="utf-8")
    assert corpus_tool.main(["build", str(raw), "--dev", "", "--out", str(tmp_path / "out")]) == 0
    train = (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    test = (tmp_path / "out" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert (len(train), len(test)) == (8, 12) and "kept 20" in capsys.readouterr().out


NUMPY_ABI = (
    "A module that was compiled using NumPy 1.x cannot be run in\n"
    "NumPy 2.0.0 as it may crash. To support both 1.x and 2.x\n"
    "versions of NumPy, modules must be compiled with NumPy 2.0.\n"
    "Some module may need to rebuild instead e.g. with 'pybind11>=2.12'.\n"
)


def _posted(case_id: str, log: str) -> dict:
    return {"id": case_id, "log": log}


def test_reposts_finds_one_log_filed_in_two_threads_and_not_one_message_from_two_projects() -> None:
    from bench.corpus_tool import reposts

    mine = ("Traceback (most recent call last):\n"
            '  File "/home/ana/proj/train_4417.py", line 212, in <module>\n'
            "    import cv2\n" + NUMPY_ABI + "2024-06-17 10:42:13,551 job 8812 exited with 1\n")
    theirs = ("Traceback (most recent call last):\n"
              '  File "C:\\\\work\\\\tool\\\\app.py", line 3, in <module>\n'
              "    import pandas\n" + NUMPY_ABI)
    # the author's second post: one line more, the same particulars
    again = mine + "Any idea? Same on 2.0.1\n"
    found = reposts([_posted("t1", mine), _posted("t2", theirs)], [_posted("x1", again), _posted("x2", theirs + "\n")])
    assert [(a, b) for a, b, *_ in found] == [("t1", "x1")]
    assert reposts([_posted("t2", theirs)], [_posted("x2", theirs)]) == []  # same words, no particulars shared


def test_distinct_keeps_the_first_of_one_standard_message_and_every_other_wording(tmp_path: Path, capsys) -> None:
    notice = ("A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.0.2 as it may crash. To support both "
              "1.x and 2.x\nversions of NumPy, modules must be compiled with NumPy 2.0.")
    cases = [
        {"id": "z2", "log": "$ python train.py\n\n" + notice.replace("\n", "\n\n")},
        {"id": "z1", "log": notice},
        {"id": "z10", "log": "ModuleNotFoundError: No module named 'gsplat' while importing the trainer module now"},
        {"id": "z3", "log": "short"},
        {"id": "z4", "log": "short"},
    ]
    kept, dropped = corpus_tool.distinct(cases)
    assert [c["id"] for c in kept] == ["z1", "z3", "z4", "z10"]
    assert dropped == [("z2", "z1")]
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({**c, "source": "https://github.com/o/r/issues/1", "label": "unknown",
                                       "cause": "x"}) + "\n" for c in cases), encoding="utf-8")
    assert corpus_tool.main(["distinct", str(raw), "--out", str(tmp_path / "d.jsonl")]) == 0
    assert "z2: the same wording as z1" in capsys.readouterr().out
    assert len((tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()) == 4
