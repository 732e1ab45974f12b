"""bench/train_gpu.py in its CPU smoke mode (the GPU numbers come from running it on a GPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "train_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_mode_runs_both_trainers_and_writes_the_table(bench, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert bench.main(["--device", "cpu", "--backend", "torch", "--images", "5", "--width", "12", "--height", "9",
                       "--points", "120", "--steps", "6", "--eval-at", "3,6", "--scene-dir", str(tmp_path / "scene"),
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["complete"] is True and set(result["results"]) == {"ours", "baseline"}
    for r in result["results"].values():
        assert set(r["psnr"]) == {"3", "6"} and r["steps_per_s"] > 0 and r["gaussians"] > 0
    assert "| ours |" in result["table"] and "| baseline |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [(["--eval-at", "50", "--steps", "10"], "between 1 and --steps"),
                                           (["--which", "ours,theirs"], "unknown ['theirs']")])
def test_bad_arguments_are_named(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--backend", "torch", *argv])
    assert message in capsys.readouterr().err
