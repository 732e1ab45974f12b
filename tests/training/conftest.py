"""Fixtures for the trainer's CPU tests: tiny real synthetic scenes (COLMAP binary model + PNGs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from splat_trainer.config import TrainConfig
from splat_trainer.dataset import Scene, load_scene
from splat_trainer.synthetic import generate_scene

# The tests run 2 xdist workers on 2 cores; more intra-op threads per worker only adds contention.
torch.set_num_threads(1)

TINY = {"n_images": 8, "width": 20, "height": 15, "n_points": 250, "seed": 3}


@pytest.fixture(scope="session")
def tiny_scene_dir(tmp_path_factory) -> Path:
    """8 views of 20x15 and 250 SfM points, generated once per session (test views: 0, 4)."""
    return generate_scene(tmp_path_factory.mktemp("tiny_scene"), **TINY)


@pytest.fixture
def tiny_scene(tiny_scene_dir) -> Scene:
    return load_scene(tiny_scene_dir, data_factor=1, test_every=4)


def tiny_config(**overrides) -> TrainConfig:
    """A schedule that densifies, resets opacity and raises the SH degree within a few dozen steps."""
    base = dict(max_steps=40, eval_steps=[40], log_every=10, sh_degree_interval=10, refine_start_iter=10,
                refine_every=10, reset_every=30, refine_stop_iter=35, checkpoint_every=0, seed=7)
    return TrainConfig(**{**base, **overrides})
