"""bench/matching.py runs and prints its tables (no figure is asserted: the bench reports them)."""

from __future__ import annotations

import json

from bench import matching as bench


def test_every_pattern_on_the_untrusted_path_is_in_the_bench() -> None:
    names = [entry.name for entry in bench.current_patterns()]
    assert len(names) == len(set(names)) > 350
    assert any(n.startswith("redact.") for n in names) and any(n.startswith("text.") for n in names)


def test_inputs_are_built_from_the_patterns_own_literals() -> None:
    inputs = bench.generated_inputs(r"(?:\b|_)loss\w*.{0,400}?[:=\s]nan\b", 1000)
    assert inputs["first_literal_repeated"].startswith("loss_loss_")
    assert all(len(text) == 1000 for text in inputs.values())


def test_cli_prints_the_tables(capsys) -> None:
    assert bench.main(["--size-kib", "2", "--e2e-kib", "4", "--only", "unknown.nan_loss", "--baseline-ref", ""]) == 0
    out = capsys.readouterr().out
    for fragment in ("worst MB/s", "t(2n)/t(n)", "unknown.nan_loss:patterns[4]", "end to end on one 4 KiB", "worst case >="):
        assert fragment in out, out


def test_cli_json(capsys) -> None:
    assert bench.main(["--size-kib", "2", "--e2e-kib", "4", "--only", "text.NOISE", "--baseline-ref", "", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in figures["patterns"]] == ["text.NOISE"]
    assert figures["patterns"][0]["worst_mb_s"] > 0
