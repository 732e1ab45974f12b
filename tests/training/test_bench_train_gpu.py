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


def _result(psnr: dict, times: dict, history: list, **extra) -> dict:
    return {"psnr": psnr, "eval_train_time_s": times, "history": history, "steps_per_s": 1.0, "gaussians": 1,
            **extra}


def test_time_to_quality_takes_the_first_evaluation_at_the_baselines_psnr(bench):
    results = {
        "baseline": _result({"7000": 30.0, "30000": 34.0}, {"7000": 70.0, "30000": 300.0}, []),
        "ours": _result({"6000": 29.0, "8000": 30.5, "20000": 33.9, "26000": 34.1, "30000": 34.2},
                        {"6000": 40.0, "8000": 56.0, "20000": 140.0, "26000": 200.0, "30000": 240.0}, []),
    }
    ttq = bench.time_to_quality(results)
    assert ttq["baseline@7000"]["ours"] == {"step": 8000, "time_s": 56.0, "speedup": 1.25}
    assert ttq["baseline@final(30000)"]["ours"] == {"step": 26000, "time_s": 200.0, "speedup": 1.5}
    results["ours"]["psnr"] = {"30000": 33.0}
    assert bench.time_to_quality(results)["baseline@final(30000)"]["ours"] is None  # never reached: said so


def test_time_to_quality_times_the_baseline_at_its_own_first_crossing_when_its_curve_plateaus(bench):
    # a capture whose test PSNR is bounded by pose error: the baseline is at its 7k figure from step 2,000 on
    results = {
        "baseline": _result({"2000": 24.21, "4000": 23.45, "7000": 24.17, "30000": 24.04},
                            {"2000": 26.0, "4000": 52.0, "7000": 85.0, "30000": 398.0}, []),
        "ours": _result({"2000": 24.25, "30000": 24.08}, {"2000": 16.0, "30000": 282.0}, []),
    }
    ttq = bench.time_to_quality(results)
    assert ttq["baseline@7000"]["reference_step"] == 2000
    assert ttq["baseline@7000"]["ours"] == {"step": 2000, "time_s": 16.0, "speedup": 1.62}
    assert ttq["baseline@final(30000)"]["reference_time_s"] == 26.0


def test_growth_claim_reads_gaussians_over_time(bench):
    history = [{"step": s, "gaussians": g} for s, g in [(5000, 900_000), (12000, 2_100_000), (20000, 2_200_000)]]
    late = [{"step": s, "gaussians": g} for s, g in [(5000, 900_000), (16000, 2_100_000)]]
    claim = bench.growth_claim({"a": _result({}, {}, history), "b": _result({}, {}, late),
                                "mcmc": _result({}, {}, history, config={"strategy": "mcmc"})})
    assert claim["a"] == {"step_reaching_2M": 12000, "max_gaussians": 2_200_000, "pass": True}
    assert claim["b"]["pass"] is False and "mcmc" not in claim


def test_merge_takes_eval_times_from_history_when_a_file_lacks_them(bench, tmp_path):
    header = {"scene": "s", "machine": "m", "torch": "t", "eval_at": [2, 4], "complete": True}
    ours = _result({"2": 20.0, "4": 25.0}, {}, [{"step": 2, "gaussians": 5, "train_time_s": 1.5},
                                                {"step": 4, "gaussians": 6, "train_time_s": 3.0}])
    base = _result({"2": 21.0, "4": 24.0}, {"2": 2.0, "4": 4.0}, [{"step": 4, "gaussians": 6, "train_time_s": 4.0}],
                   status="cuda_oom", oom_step=4, oom_gaussians=6)
    (tmp_path / "o.json").write_text(json.dumps({**header, "results": {"ours": ours}}))
    (tmp_path / "b.json").write_text(json.dumps({**header, "results": {"baseline": base}}))
    merged = bench.merge([tmp_path / "o.json", tmp_path / "b.json"])
    assert merged["results"]["ours"]["eval_train_time_s"] == {"2": 1.5, "4": 3.0}
    assert merged["time_to_quality"]["baseline@final(4)"]["ours"]["step"] == 4
    assert "CUDA out of memory at step 4 (6 Gaussians)" in merged["table"]
    (tmp_path / "x.json").write_text(json.dumps({**header, "scene": "other", "results": {}}))
    with pytest.raises(SystemExit, match="different scenes"):
        bench.merge([tmp_path / "o.json", tmp_path / "x.json"])


def test_a_captured_scene_is_generated_with_its_imperfections_and_reused_only_with_them(bench, tmp_path):
    scene = tmp_path / "scene"
    capture = {"exposure": 0.08, "pose_deg": 0.1, "pose_shift": 0.005}
    bench.ensure_scene(scene, 3, 12, 9, 30, 0, "cpu", "outdoor", 2, 0, capture)
    meta = json.loads((scene / "scene.json").read_text())
    assert {k: meta[k] for k in capture} == capture
    first = (scene / "sparse/0/images.bin").read_bytes()
    bench.ensure_scene(scene, 3, 12, 9, 30, 0, "cpu", "outdoor", 2, 0, capture)  # same request: reused
    assert (scene / "sparse/0/images.bin").read_bytes() == first
    bench.ensure_scene(scene, 3, 12, 9, 30, 0, "cpu", "outdoor", 2, 0, {})  # clean request: regenerated
    assert "exposure" not in json.loads((scene / "scene.json").read_text())
    assert bench.PRESET_OPTIONS.keys() <= bench.PRESETS.keys()


def test_grass_reaches_the_scene_its_cache_folder_and_the_description(bench, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the default scene folder is under the temp dir
    out = tmp_path / "result.json"
    assert bench.main(["--device", "cpu", "--backend", "torch", "--style", "outdoor", "--detail", "2",
                       "--grass", "0.08", "--images", "5", "--width", "16", "--height", "12", "--points", "60",
                       "--steps", "4", "--eval-at", "4", "--which", "ours", "--json", str(out)]) == 0
    (scene,) = tmp_path.glob("bench_scene_*")
    assert scene.name == "bench_scene_5x16x12_0_outdoor2_grass0.08"
    assert json.loads((scene / "scene.json").read_text())["grass"] == 0.08
    assert "grass 0.08 high" in json.loads(out.read_text())["scene"]
    first = (scene / "images/view_0000.png").read_bytes()
    bench.ensure_scene(scene, 5, 16, 12, 60, 0, "cpu", "outdoor", 2, 0, {"grass": 0.08})  # same request: reused
    assert (scene / "images/view_0000.png").read_bytes() == first
    bench.ensure_scene(scene, 5, 16, 12, 60, 0, "cpu", "outdoor", 2, 0, {})  # without grass: regenerated
    assert "grass" not in json.loads((scene / "scene.json").read_text())
    assert (scene / "images/view_0000.png").read_bytes() != first


@pytest.mark.parametrize("argv", [["--grass", "0.08"], ["--style", "outdoor", "--grass", "-0.1"],
                                  ["--style", "outdoor", "--grass", "0.5"]])
def test_grass_outside_the_outdoor_style_or_its_range_is_refused(bench, argv, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--backend", "torch", *argv])
    assert "a height above 0 and at most 0.3 (scene units, e.g. 0.08), for the outdoor style" in capsys.readouterr().err


SMALL_RUN = ["--device", "cpu", "--backend", "torch", "--images", "6", "--width", "16", "--height", "12",
             "--points", "150", "--steps", "40", "--eval-at", "20,40", "--log-every", "10"]


def test_a_run_continued_across_commands_ends_where_one_uninterrupted_run_ends(bench, tmp_path):
    scene = ["--scene-dir", str(tmp_path / "scene")]
    state = ["--state-dir", str(tmp_path / "state")]
    assert bench.main([*SMALL_RUN, *scene, "--json", str(tmp_path / "whole.json")]) == 0
    assert bench.main([*SMALL_RUN, *scene, *state, "--until-step", "20", "--json", str(tmp_path / "first.json")]) == 0
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["complete"] is False
    assert {n: (r["status"], r["steps"]) for n, r in first["results"].items()} == {
        "ours": ("interrupted", 20), "baseline": ("interrupted", 20)}
    assert bench.main([*SMALL_RUN, *scene, *state, "--json", str(tmp_path / "second.json")]) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())["results"]
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["complete"] is True
    for name in ("ours", "baseline"):
        # parameters, Adam's moments, the schedule, the view order and the random streams all came back
        assert second["results"][name]["psnr"] == whole[name]["psnr"]
        assert second["results"][name]["steps"] == 40 and second["results"][name]["status"] == "completed"
    # finished trainers keep their result, not the gigabytes of state a real scene's resume needs
    assert not (tmp_path / "state" / "baseline" / "state.pt").exists()
    assert not (tmp_path / "state" / "ours" / "ckpt").exists()
    assert bench.main([*SMALL_RUN, *scene, *state, "--json", str(tmp_path / "third.json")]) == 0
    assert json.loads((tmp_path / "third.json").read_text())["results"] == second["results"]


def test_a_state_folder_of_another_schedule_is_refused_by_name(bench, tmp_path, capsys):
    scene = ["--scene-dir", str(tmp_path / "scene")]
    state = ["--state-dir", str(tmp_path / "state")]
    assert bench.main([*SMALL_RUN, *scene, *state, "--until-step", "20", "--which", "baseline"]) == 0
    longer = [*SMALL_RUN[:-6], "--steps", "60", "--eval-at", "20,60", "--log-every", "10"]
    with pytest.raises(SystemExit):
        bench.main([*longer, *scene, *state, "--which", "baseline"])
    err = capsys.readouterr().err
    assert "holds a run with other settings" in err and '"steps": 40' in err


@pytest.mark.parametrize("argv, message", [
    (["--until-step", "20"], "--until-step needs --state-dir"),
    (["--until-step", "15", "--state-dir", "x"], "a multiple of --log-every"),
    (["--until-step", "40", "--state-dir", "x"], "a step before --steps 40")])
def test_bad_continuation_arguments_are_named(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main([*SMALL_RUN, *argv])
    assert message in capsys.readouterr().err


def test_a_time_limit_too_short_to_start_a_trainer_says_so_and_leaves_the_run_incomplete(bench, tmp_path, capsys,
                                                                                         monkeypatch):
    monkeypatch.setattr(bench, "MIN_TRAINER_SECONDS", 10**9)  # whatever the machine's speed, no time is left
    out = tmp_path / "r.json"
    assert bench.main([*SMALL_RUN, "--scene-dir", str(tmp_path / "scene"), "--time-limit", "5",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["complete"] is False
    assert {r["status"] for r in result["results"].values()} == {"not_started"}
    assert "not started" in capsys.readouterr().out


def test_gen_workers_reach_the_generator_and_fewer_than_one_is_refused(bench, tmp_path, monkeypatch, capsys):
    seen = []
    real = bench.generate_scene
    monkeypatch.setattr(bench, "generate_scene", lambda *a, **kw: seen.append(kw["workers"]) or real(*a, **kw))
    assert bench.main(["--device", "cpu", "--backend", "torch", "--images", "3", "--width", "12", "--height", "9",
                       "--points", "30", "--steps", "2", "--eval-at", "2", "--which", "ours", "--gen-workers", "1",
                       "--scene-dir", str(tmp_path / "scene")]) == 0
    assert seen == [1]
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--backend", "torch", "--gen-workers", "0"])
    assert "--gen-workers 0: the number of processes generating the scene, at least 1" in capsys.readouterr().err


def test_the_peak_memory_of_a_continued_run_is_the_highest_of_its_commands(bench, tmp_path):
    state = tmp_path / "baseline"
    first = bench.peak_over_commands(state, {"peak_gpu_memory_bytes": 7, "peak_gpu_reserved_bytes": 9})
    second = bench.peak_over_commands(state, {"peak_gpu_memory_bytes": 5, "peak_gpu_reserved_bytes": 11})
    assert first == {"peak_gpu_memory_bytes": 7, "peak_gpu_reserved_bytes": 9}
    assert second == {"peak_gpu_memory_bytes": 7, "peak_gpu_reserved_bytes": 11}
