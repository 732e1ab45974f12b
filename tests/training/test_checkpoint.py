"""Checkpoints: atomic, newest-readable resume, keep the last N, refuse another config; SIGTERM stops cleanly
and a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from splat_trainer.checkpoint import (
    CheckpointMismatch, list_checkpoints, load_latest_checkpoint, save_checkpoint,
)
from splat_trainer.trainer import StopFlag, TrainPaths, train

from .conftest import tiny_config


def test_keeps_the_last_n_and_no_temporaries(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, {"config_hash": "h", "x": torch.tensor([step])}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [40, 30]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"", lambda b: b"not a zip" + b[9:]])
def test_unreadable_newest_falls_back_to_the_previous(tmp_path, damage):
    save_checkpoint(tmp_path, 10, {"config_hash": "h", "x": torch.tensor([10])}, keep=5)
    newest = save_checkpoint(tmp_path, 20, {"config_hash": "h", "x": torch.tensor([20])}, keep=5)
    newest.write_bytes(damage(newest.read_bytes()))
    logs = []
    payload = load_latest_checkpoint(tmp_path, "h", log=logs.append)
    assert payload["step"] == 10 and int(payload["x"]) == 10
    assert "ckpt_0000020.pt is unreadable" in logs[0]


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert load_latest_checkpoint(tmp_path / "absent", "h") is None


def test_checkpoint_of_other_settings_is_refused_with_the_fix(tmp_path):
    save_checkpoint(tmp_path, 10, {"config_hash": "old"}, keep=2)
    with pytest.raises(CheckpointMismatch, match="use a new checkpoint S3 URI"):
        load_latest_checkpoint(tmp_path, "new")


def signal_at(step_to_stop: int):
    """A log callback that sends this process a real SIGTERM once the progress line for a step appears."""
    def log(line: str) -> None:
        if line.startswith(f"step={step_to_stop}/"):
            os.kill(os.getpid(), signal.SIGTERM)
    return log


def test_sigterm_checkpoints_and_resume_matches_an_uninterrupted_run(tiny_scene, tiny_scene_dir, tmp_path):
    from splat_trainer.dataset import load_scene

    cfg = tiny_config(max_steps=40, checkpoint_every=0, log_every=10)
    straight = train(cfg, load_scene(tiny_scene_dir, test_every=4),
                     TrainPaths(tmp_path / "a" / "model", tmp_path / "a" / "ckpt"), device="cpu", log=lambda s: None)
    assert straight.status == "completed"

    paths = TrainPaths(tmp_path / "b" / "model", tmp_path / "b" / "ckpt")
    previous = signal.getsignal(signal.SIGTERM)
    first = train(cfg, tiny_scene, paths, device="cpu", log=signal_at(20))
    assert first.status == "interrupted" and first.metrics["steps"] == 20
    assert [s for s, _ in list_checkpoints(paths.checkpoint_dir)] == [20]
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is the trainer's only while it trains
    assert not (paths.model_dir / "splat.ply").exists()

    logs: list[str] = []
    second = train(cfg, load_scene(tiny_scene_dir, test_every=4), paths, device="cpu", log=logs.append)
    assert any(line.startswith("resumed step=20") for line in logs)
    assert second.status == "completed" and second.metrics["steps"] == 40
    for name, tensor in straight.splats.items():
        torch.testing.assert_close(second.splats[name], tensor, msg=f"{name} differs after resume")
    assert second.metrics["eval"] == straight.metrics["eval"]


def test_stop_flag_before_the_first_step_still_leaves_a_checkpoint(tiny_scene, tmp_path):
    stop = StopFlag()
    stop.set("test")
    result = train(tiny_config(), tiny_scene, TrainPaths(tmp_path / "m", tmp_path / "c"), device="cpu",
                   stop=stop, log=lambda s: None)
    assert result.status == "interrupted" and [s for s, _ in list_checkpoints(tmp_path / "c")] == [0]
