"""The training loop itself on a tiny real scene through the pure-PyTorch backend (what CI runs)."""

from __future__ import annotations

import json
import re

import sys

import pytest
import torch

from splat_trainer.export import read_ply
from splat_trainer.memory import estimate_gpu_memory_bytes, mcmc_cap_for_memory
from splat_trainer.strategy import StrategyUnavailable
from splat_trainer.trainer import (
    BackendUnavailable, TrainPaths, format_duration, init_splats, progress_line, resolve_backend, train,
)

from .conftest import tiny_config

PROGRESS_RE = re.compile(r"^step=(\d+)/(\d+) loss=(\d+\.\d{4}) psnr=(-?\d+\.\d{2}) gaussians=(\d+) "
                         r"steps_per_s=(\d+\.\d) eta=((?:\d+h)?\d+m\d{2}s)$")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 120-step run shared by the assertions below (the slowest part of the training tests)."""
    from splat_trainer.dataset import load_scene
    from splat_trainer.synthetic import generate_scene

    from .conftest import TINY

    root = tmp_path_factory.mktemp("trained")
    scene = load_scene(generate_scene(root / "scene", **TINY), test_every=4)
    lines: list[str] = []
    cfg = tiny_config(max_steps=120, eval_steps=[1, 120], log_every=20, refine_start_iter=20, refine_every=20,
                      reset_every=60, refine_stop_iter=100, sh_degree_interval=30, checkpoint_every=50)
    paths = TrainPaths(root / "model", root / "ckpt")
    result = train(cfg, scene, paths, device="cpu", log=lines.append)
    return result, lines, paths


def test_training_improves_test_psnr(tmp_path):
    """Optimization alone (no densification, no opacity reset) on the tiny scene: +1.46 to +2.94 dB on the two
    held-out views over 120 steps for generator seeds 0-7. The shared run above densifies 250 points into about
    1,300 on 6 views of 20x15 and resets opacity 60 steps before its end: on so small a scene that over-fits,
    and its gain ranged from +0.19 to +1.69 dB across seeds, so it could not tell a broken optimizer from an
    unlucky seed."""
    from splat_trainer.dataset import load_scene
    from splat_trainer.synthetic import generate_scene

    from .conftest import TINY

    scene = load_scene(generate_scene(tmp_path / "scene", **TINY), test_every=4)
    cfg = tiny_config(max_steps=120, eval_steps=[1, 120], log_every=60, refine_stop_iter=0, reset_every=10**6,
                      sh_degree_interval=30)
    result = train(cfg, scene, TrainPaths(tmp_path / "model", tmp_path / "ckpt"), device="cpu", log=lambda s: None)
    evals = result.metrics["eval"]
    assert result.metrics["densification_events"]["split"] == 0 and len(result.splats["means"]) == TINY["n_points"]
    assert evals["120"]["psnr"] > evals["1"]["psnr"] + 1.0, evals


def test_progress_lines_are_machine_parsable(trained):
    _, lines, _ = trained
    progress = [m for m in map(PROGRESS_RE.match, lines) if m]
    assert [int(m.group(1)) for m in progress] == [20, 40, 60, 80, 100, 120]
    assert all(int(m.group(2)) == 120 and int(m.group(5)) > 0 for m in progress)
    assert progress[-1].group(7) == "0m00s"


def test_densification_and_opacity_reset_happen_in_the_loop(trained):
    result, _, _ = trained
    events = result.metrics["densification_events"]
    assert events["opacity_reset"] == 1  # step 60 (step 120 is past refine_stop_iter)
    assert events["split"] + events["duplicated"] > 0


def test_outputs_metrics_ply_and_checkpoints(trained):
    result, _, paths = trained
    metrics = json.loads((paths.model_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == 120
    assert set(metrics["eval"]) == {"1", "120"} and metrics["backend"] == "torch"
    for key in ("steps_per_s", "train_time_s", "wall_time_s", "gaussians", "peak_gpu_memory_bytes", "scene"):
        assert key in metrics
    ply = read_ply(paths.model_dir / "splat.ply")
    assert len(ply["x"]) == metrics["gaussians"] == len(result.splats["means"])
    assert len([k for k in ply if k.startswith("f_rest_")]) == 45  # SH degree 3
    assert [p.name for p in sorted(paths.checkpoint_dir.iterdir())] == ["ckpt_0000100.pt", "ckpt_0000120.pt"]


def test_sh_degree_schedule_reaches_the_configured_degree(tiny_scene, tmp_path):
    cfg = tiny_config(max_steps=12, eval_steps=[12], sh_degree=1, sh_degree_interval=5)
    result = train(cfg, tiny_scene, TrainPaths(tmp_path / "m", tmp_path / "c"), device="cpu", log=lambda s: None)
    assert result.splats["shN"].shape[1:] == (3, 3)
    assert float(result.splats["shN"].abs().sum()) > 0  # degree 1 trained after step 5


def test_initialisation_follows_simple_trainer(tiny_scene):
    splats = init_splats(tiny_scene, tiny_config(), torch.device("cpu"))
    n = len(tiny_scene.points)
    assert torch.equal(splats["means"].detach(), tiny_scene.points)
    torch.testing.assert_close(torch.sigmoid(splats["opacities"].detach()), torch.full((n,), 0.1))
    rgb = splats["sh0"].detach()[:, 0] * 0.28209479177387814 + 0.5
    torch.testing.assert_close(rgb, tiny_scene.points_rgb)
    assert splats["shN"].shape == (n, 15, 3) and float(splats["shN"].detach().abs().sum()) == 0
    s = splats["scales"].detach()
    assert torch.equal(s[:, 0], s[:, 1]) and torch.equal(s[:, 1], s[:, 2])  # isotropic from the 3-NN distance


def test_mcmc_on_the_cpu_backend_fails_with_the_fix(tiny_scene, tmp_path):
    with pytest.raises(StrategyUnavailable, match="needs backend=gsplat"):
        train(tiny_config(strategy="mcmc"), tiny_scene, TrainPaths(tmp_path / "m", tmp_path / "c"), device="cpu")


def test_gsplat_backend_without_a_gpu_fails_with_the_fix():
    with pytest.raises(BackendUnavailable, match="needs a CUDA GPU"):
        resolve_backend("gsplat", torch.device("cpu"))


def test_auto_backend_on_cpu_is_the_torch_one():
    assert resolve_backend("auto", torch.device("cpu"))[0] == "torch"


@pytest.mark.parametrize("seconds, text", [(0, "0m00s"), (59.6, "1m00s"), (331, "5m31s"), (3725, "1h02m05s")])
def test_eta_format(seconds, text):
    assert format_duration(seconds) == text


def test_progress_line_matches_the_documented_example():
    line = progress_line(1200, 30000, 0.0412, 24.31, 412331, 87.2, 331)
    assert line == "step=1200/30000 loss=0.0412 psnr=24.31 gaussians=412331 steps_per_s=87.2 eta=5m31s"


@pytest.mark.parametrize("strategy, cap", [("default", "auto"), ("mcmc", 1_000_000), ("mcmc", "auto")])
def test_memory_estimate_grows_with_the_scene(strategy, cap):
    from splat_trainer.config import TrainConfig

    cfg = TrainConfig(strategy=strategy, cap_max=cap)
    t4 = 15 * 1024**3
    small = estimate_gpu_memory_bytes(cfg, 50, 640, 480, 20_000, t4)
    large = estimate_gpu_memory_bytes(cfg, 400, 1920, 1080, 200_000, t4)
    assert 0 < small < large


def test_mcmc_cap_fits_the_budget_and_shrinks_with_the_gpu():
    from splat_trainer.config import TrainConfig

    cfg = TrainConfig(strategy="mcmc")
    t4, a10g = 15 * 1024**3, 22 * 1024**3
    cap_t4 = mcmc_cap_for_memory(t4, cfg, 200, 1152, 864)
    assert 1_000_000 < cap_t4 < mcmc_cap_for_memory(a10g, cfg, 200, 1152, 864)
    capped = TrainConfig(strategy="mcmc", cap_max=cap_t4)
    assert estimate_gpu_memory_bytes(capped, 200, 1152, 864, 100_000, t4) <= t4 * cfg.gpu_memory_budget_fraction
    assert mcmc_cap_for_memory(512 * 1024**2, cfg, 200, 1152, 864) == 0  # nothing fits: preflight says so


@pytest.mark.parametrize("n_images, gpu_gib, on_gpu", [(200, 15, True), (2000, 15, False), (2000, 80, True),
                                                       (10, None, True)])
def test_training_images_stay_on_the_gpu_only_while_they_fit(n_images, gpu_gib, on_gpu):
    from splat_trainer.memory import images_fit_on_gpu

    total = gpu_gib * 1024**3 if gpu_gib else None
    assert images_fit_on_gpu(n_images, 1152, 864, total) is on_gpu


def test_memory_estimate_counts_images_only_where_they_are_kept():
    from splat_trainer.config import TrainConfig

    cfg = TrainConfig()
    t4 = 15 * 1024**3
    fits = estimate_gpu_memory_bytes(cfg, 200, 1152, 864, 100_000, t4)
    host = estimate_gpu_memory_bytes(cfg, 2000, 1152, 864, 100_000, t4)  # 6 GB of images: kept on the host
    assert fits - host == 200 * 1152 * 864 * 3


def test_images_kept_on_the_host_train_identically(tiny_scene_dir, tmp_path):
    from splat_trainer.dataset import load_scene
    from splat_trainer.trainer import Trainer

    results = []
    for on_device in (True, False):
        cfg = tiny_config(max_steps=15, eval_steps=[15])
        trainer = Trainer(cfg, load_scene(tiny_scene_dir, test_every=4),
                          TrainPaths(tmp_path / str(on_device) / "m", tmp_path / str(on_device) / "c"),
                          device="cpu", log=lambda s: None, images_on_device=on_device)
        assert trainer.images_on_device is on_device
        results.append(trainer.fit())
    for name in results[0].splats:
        torch.testing.assert_close(results[0].splats[name], results[1].splats[name])
    assert results[0].metrics["eval"] == results[1].metrics["eval"]


def test_on_a_gpu_without_gsplat_auto_fails_loudly_instead_of_falling_back(monkeypatch):
    # CI installs gsplat (for its exporter and strategy); hiding it is the only way to get the fault.
    monkeypatch.setitem(sys.modules, "gsplat", None)
    with pytest.raises(BackendUnavailable, match="needs gsplat, which does not import"):
        resolve_backend("auto", torch.device("cuda"))


@pytest.mark.parametrize("block", [1 << 26, 64, 7])  # row blocks of many sizes give the same distances
def test_initial_scale_distance_is_the_3nn_rms_whatever_the_block_size(block):
    from splat_trainer.trainer import knn_mean_distance

    pts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [10, 10, 10]])
    expected = torch.tensor([((1 + 4 + 9) / 3) ** 0.5, ((1 + 5 + 10) / 3) ** 0.5, ((4 + 5 + 13) / 3) ** 0.5,
                             ((9 + 10 + 13) / 3) ** 0.5])
    got = knn_mean_distance(pts, max_block_elems=block)
    torch.testing.assert_close(got[:4], expected)
