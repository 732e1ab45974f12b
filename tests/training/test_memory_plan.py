"""The memory plan (preflight's choice of settings that fit) and the growth guard (densification halted at the
budget, not a CUDA out-of-memory error), on the CPU with the torch backend and small budgets."""

from __future__ import annotations

import re

import pytest

from splat_trainer.config import TrainConfig
from splat_trainer.cost import BENCH_MEGAPIXELS, G4DN_XLARGE_USD_PER_HOUR, H200_STEPS_PER_S, estimate_t4_job
from splat_trainer.memory import BYTES_PER_GAUSSIAN, GrowthGuard, plan_memory, scene_bytes
from splat_trainer.trainer import TrainPaths, Trainer, train

from .conftest import TINY, tiny_config

GIB = 1024**3
T4 = 15_835_660_288  # what CUDA reports for a T4
# a schedule that densifies twice within 40 steps on the tiny scene: 250 -> 498 -> 980 Gaussians
GROWING = dict(backend="torch", grow_grad2d=0.00005)


def _budget_total(gaussians: int, images_on_gpu: bool = True) -> int:
    """A GPU size whose default budget holds exactly `gaussians` on the tiny scene (by the memory model)."""
    sb = scene_bytes(TINY["n_images"], TINY["width"], TINY["height"], images_on_gpu)
    return int((sb + gaussians * BYTES_PER_GAUSSIAN) / 0.9) + 1


def _train(tiny_scene, tmp_path, total):
    lines: list[str] = []
    result = train(tiny_config(**GROWING), tiny_scene, TrainPaths(tmp_path / "m", tmp_path / "c"), device="cpu",
                   log=lines.append, resume=False, gpu_total_bytes=total)
    return result, lines


def test_without_a_budget_the_schedule_grows_past_the_budget_used_below(tiny_scene, tmp_path):
    result, _ = _train(tiny_scene, tmp_path, None)
    assert result.metrics["gaussians"] > 700 and result.metrics["growth_stop"] is None
    assert result.metrics["densification_events"]["opacity_reset"] == 1  # at step 30


def test_growth_that_would_pass_the_budget_is_halted_and_logged(tiny_scene, tmp_path):
    result, lines = _train(tiny_scene, tmp_path, _budget_total(700))
    m = result.metrics
    assert result.status == "completed"
    # the first growth (250 -> 498) fits, the second (-> ~980) would not: it is refused, training goes on
    assert [h["gaussians"] for h in m["history"]] == [250, 250, 498, 498]
    stop = m["growth_stop"]
    assert stop["gaussians"] == 498 and stop["would_be"] > 700 and stop["projected_bytes"] > stop["budget_bytes"]
    events = m["densification_events"]
    assert events["growth_refused"] == 1 and events["split"] == 248
    # refinement ended at the refusal (step 30): no pruning and no opacity reset at or after it
    assert stop["step"] == 30 and events["opacity_reset"] == 0 and events["pruned"] == 0
    halted = [line for line in lines if line.startswith("densification halted")]
    assert len(halted) == 1, lines  # logged once, at the refusal
    assert re.match(r"densification halted at step=\d+ gaussians=498: growing to \d+ would take the estimated peak to "
                    r"[\d.]+ GiB, over the budget of [\d.]+ GiB.*; refinement ends here", halted[0])
    assert any(line.startswith("memory plan: estimated peak") for line in lines)


def test_a_resumed_run_keeps_the_halt(tiny_scene, tmp_path):
    from splat_trainer.trainer import StopFlag

    cfg = tiny_config(**GROWING, checkpoint_every=30)
    total = _budget_total(700)
    stop = StopFlag()
    first = Trainer(cfg, tiny_scene, TrainPaths(tmp_path / "m", tmp_path / "c"), device="cpu", stop=stop,
                    gpu_total_bytes=total, log=lambda _: None)
    first.fit()
    lines: list[str] = []
    again = Trainer(cfg, tiny_scene, TrainPaths(tmp_path / "m", tmp_path / "c"), device="cpu",
                    gpu_total_bytes=total, log=lines.append)
    assert again.try_resume() and again.guard.halted is not None
    assert again.guard.halted == first.guard.halted
    assert again.strategy_state["refine_halted_at"] == first.strategy_state["refine_halted_at"] == 30


def test_the_guard_uses_measured_bytes_per_gaussian_when_they_exceed_the_model():
    guard = GrowthGuard(budget_bytes=10 * GIB, scene_bytes=GIB)
    assert guard.allow(600, 1_000_000, 1_100_000, peak_bytes=3 * GIB)  # first measurement: the model's 1.8 KB
    # 2 M more Gaussians cost 6 GiB more: 3.2 KB each, more than the model; growing by 1 M more would pass 10 GiB
    assert not guard.allow(700, 3_000_000, 4_000_000, peak_bytes=9 * GIB)
    assert guard.halted["bytes_per_gaussian"] == round(6 * GIB / 2_000_000)
    assert not guard.allow(800, 3_000_000, 3_000_001, peak_bytes=3 * GIB)  # halted for good


@pytest.mark.parametrize("hyper, n_images, points, expect", [
    # default strategy on a T4: the growth the model expects (30 x points, at most 6 M) fits
    ({}, 320, 200_000, {"fits": True, "images_on_gpu": True, "choices": []}),
    # 2,000 images of 1 MP would take a quarter of a T4: kept on the host, and the plan says so
    ({}, 2000, 200_000, {"fits": True, "images_on_gpu": False, "choices": ["images in host memory (they would"]}),
    # a smaller budget: densification stops where the budget ends, and the plan says where
    ({"gpu_memory_budget_fraction": 0.4}, 320, 200_000,
     {"fits": True, "choices": ["images in host memory (to leave room", "densification stops at about"]}),
    # MCMC: cap_max=auto is the budget's count; an explicit cap above it is lowered
    ({"strategy": "mcmc"}, 320, 200_000, {"fits": True, "choices": ["cap_max=auto -> "]}),
    ({"strategy": "mcmc", "cap_max": 9_000_000}, 320, 200_000,
     {"fits": True, "choices": ["images in host memory (to leave room", "cap_max lowered from 9000000 to "]}),
    # not even the SfM points (with room to grow) fit: preflight fails the job
    ({"gpu_memory_budget_fraction": 0.05}, 320, 200_000, {"fits": False}),
])
def test_the_plan_picks_settings_that_fit_the_budget_or_says_it_cannot(hyper, n_images, points, expect):
    plan = plan_memory(TrainConfig(**hyper), n_images, 1152, 864, points, T4)
    assert plan.fits is expect["fits"]
    for key in ("images_on_gpu",):
        if key in expect:
            assert getattr(plan, key) is expect[key]
    for prefix, choice in zip(expect.get("choices", []), plan.choices):
        assert choice.startswith(prefix), plan.choices
    assert len(plan.choices) == len(expect.get("choices", plan.choices))
    if plan.fits:
        assert plan.estimated_peak_bytes <= plan.budget_bytes
        assert plan.expected_peak_gaussians <= plan.max_gaussians
        if plan.cap_max is not None:
            assert plan.cap_max <= plan.max_gaussians
    else:
        assert "fewer than the 200000 SfM points need" in plan.reason


def test_the_trainer_applies_the_plan_preflight_logged(tiny_scene, tmp_path):
    total = _budget_total(700)
    trainer = Trainer(tiny_config(**GROWING), tiny_scene, TrainPaths(tmp_path / "m", tmp_path / "c"), device="cpu",
                      gpu_total_bytes=total, log=lambda _: None)
    plan = plan_memory(tiny_config(**GROWING), TINY["n_images"], TINY["width"], TINY["height"], TINY["n_points"], total)
    assert trainer.plan == plan and trainer.guard.budget_bytes == plan.budget_bytes


def test_the_job_estimate_scales_with_steps_and_pixels_and_prints_its_basis():
    one = estimate_t4_job(30_000, 320, 1152, 864)
    assert one.seconds[0] < one.seconds[1] < one.seconds[2]
    assert one.usd[1] == pytest.approx(one.seconds[1] / 3600 * G4DN_XLARGE_USD_PER_HOUR)
    # the bench scene at the central ratio: 30k steps at H200_STEPS_PER_S / 11.2
    assert one.seconds[1] == pytest.approx((30_000 + 2 * 40 * 0.5) / H200_STEPS_PER_S * 11.2, rel=1e-6)
    four_mp = estimate_t4_job(30_000, 320, 2304, 1728)
    assert four_mp.seconds[1] == pytest.approx(4 * one.seconds[1], rel=1e-6)
    assert estimate_t4_job(7_000, 320, 1152, 864).seconds[1] < one.seconds[1] / 4
    line = one.line()
    assert line.startswith("estimate on ml.g4dn.xlarge (T4): 30000 steps of 1.00 MP images about ")
    assert f"H200 {H200_STEPS_PER_S} steps/s at {BENCH_MEGAPIXELS:.2f} MP" in line and "$" in line


def test_the_job_sets_expandable_segments_unless_told_otherwise():
    import os
    import subprocess
    import sys

    code = "import os, splat_trainer.main; print(os.environ['PYTORCH_CUDA_ALLOC_CONF'])"
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_CUDA_ALLOC_CONF"}
    training = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "training")
    env["PYTHONPATH"] = training
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "expandable_segments:True"
    env["PYTORCH_CUDA_ALLOC_CONF"] = "max_split_size_mb:128"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "max_split_size_mb:128"
