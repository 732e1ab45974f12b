"""SageMaker's container paths, rooted at ``SM_ROOT`` (default ``/opt/ml``).

A plain custom container gets no ``SM_*`` variables from SageMaker; ``SM_ROOT`` is this
image's own switch so that tests and local runs use a temporary folder with the same
layout instead of ``/opt/ml``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from splat_trainer.failure import HYPERPARAMETERS_UNREADABLE, TrainingFailure

DEFAULT_ROOT = Path("/opt/ml")
TRAINING_CHANNEL = "training"


@dataclass(frozen=True)
class SageMakerPaths:
    root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SageMakerPaths:
        env = os.environ if env is None else env
        return cls(Path(env.get("SM_ROOT") or DEFAULT_ROOT))

    @property
    def hyperparameters_file(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def input_data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel(self, name: str = TRAINING_CHANNEL) -> Path:
        return self.input_data_dir / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    def writable_dirs(self) -> tuple[Path, ...]:
        """Folders the job writes to; preflight proves each is writable before training."""
        return (self.model_dir, self.checkpoint_dir, self.output_dir, self.output_data_dir)

    def available_channels(self) -> list[str]:
        if not self.input_data_dir.is_dir():
            return []
        return sorted(p.name for p in self.input_data_dir.iterdir() if p.is_dir())

    def load_hyperparameters(self) -> dict[str, str]:
        """The job's hyperparameters as SageMaker writes them: a JSON object of strings.

        A missing file means no hyperparameters (local runs); anything but a JSON object
        is a failure. Non-string values (a hand-written file) are turned into the string
        SageMaker would have sent, so the typed config parses one form only.
        """
        path = self.hyperparameters_file
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainingFailure(
                HYPERPARAMETERS_UNREADABLE, f"{path} is not readable JSON ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(data, dict):
            raise TrainingFailure(
                HYPERPARAMETERS_UNREADABLE,
                f"{path} holds a JSON {type(data).__name__}, expected an object of name -> string",
            )
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
