"""Checkpoints for SageMaker managed spot: atomic writes, resume from the newest readable one, keep the last N.

SageMaker syncs /opt/ml/checkpoints to S3 while the job runs and restores it into a restarted job, so a
checkpoint must never be observable half-written (tmp file + os.replace) and a corrupt one (a copy cut off
by the interruption) must be skipped in favour of the previous one rather than killing the resumed job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")


class CheckpointMismatch(RuntimeError):
    """The newest checkpoint was written with settings that change its meaning (see TrainConfig.config_hash)."""


def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"ckpt_{step:07d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every ckpt_<step>.pt in directory, newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CKPT_RE.match(p.name))]
    return sorted(found, reverse=True)


def save_checkpoint(directory: Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(directory, step)
    tmp = final.with_name(final.name + ".tmp")
    torch.save({**payload, "step": step}, tmp)
    os.replace(tmp, final)
    for _, old in list_checkpoints(directory)[keep:]:
        old.unlink(missing_ok=True)
    return final


def load_latest_checkpoint(directory: Path, config_hash: str, map_location: Any = "cpu",
                           log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """The newest checkpoint that loads, or None. A config_hash mismatch raises CheckpointMismatch."""
    for step, path in list_checkpoints(directory):
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # truncated or corrupt file: fall back to the previous checkpoint
            log(f"checkpoint {path.name} is unreadable ({type(exc).__name__}: {str(exc)[:120]}); trying an older one")
            continue
        if payload.get("config_hash") != config_hash:
            raise CheckpointMismatch(
                f"checkpoint {path} was written with other settings (config hash {payload.get('config_hash')} != "
                f"{config_hash}: sh_degree/strategy/packed/seed/data_factor/test_every differ); use a new "
                "checkpoint S3 URI for a job with new hyperparameters, or restore the old ones"
            )
        return payload
    return None
