"""Typed training configuration, parsed from SageMaker's hyperparameters.json.

SageMaker hands every hyperparameter over as a string (and the SageMaker Python SDK even JSON-quotes
them: ``"\\"mcmc\\""``), so parsing is where most user mistakes surface. Every error names the key, the
value received and what is accepted, so the job's FailureReason alone tells the user what to fix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Keys the SageMaker SDK adds on its own (script mode); they are not ours to validate.
SAGEMAKER_RESERVED_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


@dataclass(frozen=True)
class HyperparameterError:
    name: str
    value: Any
    accepted: str

    def __str__(self) -> str:
        return f"hyperparameter {self.name}={self.value!r} is invalid: accepted {self.accepted}"


class ConfigError(ValueError):
    """One or more hyperparameters are wrong; str() lists each with the value and what is accepted."""

    def __init__(self, errors: list[HyperparameterError]):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


def _accepted(text: str, **kwargs: Any) -> Any:
    """A Field whose json_schema_extra carries the human-readable 'accepted' text used in errors."""
    extra = {"accepted": text}
    return Field(json_schema_extra=extra, **kwargs)


class TrainConfig(BaseModel):
    """Training hyperparameters. Defaults follow gsplat's examples/simple_trainer.py (v1.5.3)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # schedule
    max_steps: int = _accepted("an integer >= 1", default=30_000, ge=1)
    eval_steps: list[int] = _accepted(
        "comma-separated integers between 1 and max_steps, e.g. 7000,30000", default=[7_000, 30_000]
    )
    test_every: int = _accepted("an integer >= 2 (every Nth image is held out for PSNR)", default=8, ge=2)
    data_factor: int = _accepted("1, 2, 4 or 8 (image downscale factor)", default=1)
    log_every: int = _accepted("an integer >= 1 (steps between progress lines)", default=100, ge=1)
    seed: int = _accepted("an integer >= 0", default=42, ge=0)
    # model
    sh_degree: int = _accepted("an integer from 0 to 3", default=3, ge=0, le=3)
    sh_degree_interval: int = _accepted("an integer >= 1 (steps per SH degree increase)", default=1000, ge=1)
    init_opacity: float = _accepted("a number in (0, 1)", default=0.1, gt=0.0, lt=1.0)
    init_scale: float = _accepted("a number > 0 (multiplier of the 3-NN distance)", default=1.0, gt=0.0)
    # loss
    ssim_lambda: float = _accepted("a number in [0, 1]", default=0.2, ge=0.0, le=1.0)
    # learning rates (means is multiplied by the scene scale, as in simple_trainer)
    lr_means: float = _accepted("a number > 0", default=1.6e-4, gt=0.0)
    lr_means_final_factor: float = _accepted("a number in (0, 1]", default=0.01, gt=0.0, le=1.0)
    lr_scales: float = _accepted("a number > 0", default=5e-3, gt=0.0)
    lr_quats: float = _accepted("a number > 0", default=1e-3, gt=0.0)
    lr_opacities: float = _accepted("a number > 0", default=5e-2, gt=0.0)
    lr_sh0: float = _accepted("a number > 0", default=2.5e-3, gt=0.0)
    lr_shN: float = _accepted("a number > 0", default=2.5e-3 / 20, gt=0.0)
    # densification
    strategy: Literal["default", "mcmc"] = _accepted('"default" or "mcmc"', default="default")
    cap_max: int | Literal["auto"] = _accepted(
        '"auto" (derived from the GPU memory) or an integer >= 1000 (MCMC only)', default="auto"
    )
    prune_opa: float = _accepted("a number in (0, 1)", default=0.005, gt=0.0, lt=1.0)
    grow_grad2d: float = _accepted("a number > 0", default=0.0002, gt=0.0)
    grow_scale3d: float = _accepted("a number > 0", default=0.01, gt=0.0)
    prune_scale3d: float = _accepted("a number > 0", default=0.1, gt=0.0)
    refine_start_iter: int = _accepted("an integer >= 0", default=500, ge=0)
    refine_stop_iter: int = _accepted("an integer >= 0", default=15_000, ge=0)
    refine_every: int = _accepted("an integer >= 1", default=100, ge=1)
    absgrad: bool = _accepted("true or false (AbsGS gradients for densification; pair with grow_grad2d=0.0008)",
                              default=False)
    reset_every: int = _accepted("an integer >= 1", default=3000, ge=1)
    reset_start_iter: int | Literal["auto"] = _accepted(
        '"auto" (half of refine_stop_iter) or an integer >= 0: no opacity reset before this step (resets stay on '
        "multiples of reset_every) and no pruning of Gaussians too large in world space before the first reset; "
        "0 gives the 3DGS schedule (first reset at reset_every)", default="auto")
    opacity_reg: float = _accepted("a number >= 0 (MCMC opacity regularization)", default=0.01, ge=0.0)
    scale_reg: float = _accepted("a number >= 0 (MCMC scale regularization)", default=0.01, ge=0.0)
    # rasterization
    packed: bool = _accepted("true or false", default=False)
    antialiased: bool = _accepted("true or false", default=False)
    near_plane: float = _accepted("a number > 0", default=0.01, gt=0.0)
    far_plane: float = _accepted("a number > near_plane", default=1e10, gt=0.0)
    backend: Literal["auto", "gsplat", "torch"] = _accepted(
        '"auto", "gsplat" (CUDA) or "torch" (pure-PyTorch, CPU, tiny scenes only)', default="auto"
    )
    # checkpoints (SageMaker managed spot)
    checkpoint_every: int = _accepted("an integer >= 0 (0 disables periodic checkpoints)", default=2000, ge=0)
    keep_checkpoints: int = _accepted("an integer >= 1", default=2, ge=1)
    # preflight
    gpu_memory_budget_fraction: float = _accepted("a number in (0, 1]", default=0.9, gt=0.0, le=1.0)
    min_free_disk_gb: float = _accepted("a number >= 0", default=2.0, ge=0.0)

    @field_validator("eval_steps", mode="before")
    @classmethod
    def _split_int_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cap_max", mode="before")
    @classmethod
    def _cap_max_int_or_auto(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() != "auto":
            return int(value.strip())
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("reset_start_iter", mode="before")
    @classmethod
    def _reset_start_int_or_auto(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            return text if text == "auto" else int(text)
        return value

    @field_validator("reset_start_iter")
    @classmethod
    def _reset_start_not_negative(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 0:
            raise ValueError("reset_start_iter must be >= 0")
        return value

    def first_opacity_reset_from(self) -> int:
        """The step from which opacity resets may happen: reset_start_iter, or half the refinement phase for "auto"."""
        return self.refine_stop_iter // 2 if self.reset_start_iter == "auto" else int(self.reset_start_iter)

    @field_validator("cap_max")
    @classmethod
    def _cap_max_floor(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1000:
            raise ValueError("cap_max must be >= 1000")
        return value

    @field_validator("data_factor")
    @classmethod
    def _data_factor_power_of_two(cls, value: int) -> int:
        if value not in (1, 2, 4, 8):
            raise ValueError("data_factor must be 1, 2, 4 or 8")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> "TrainConfig":
        if "eval_steps" not in self.model_fields_set:
            # the default evaluation points follow a shorter run: keep those within it, and always its end
            defaults = {s for s in (7_000, 30_000) if s <= self.max_steps} | {self.max_steps}
            self.__dict__["eval_steps"] = sorted(defaults)
        bad = [s for s in self.eval_steps if s < 1 or s > self.max_steps]
        if bad:
            raise _CrossFieldError("eval_steps", self.eval_steps, f"steps between 1 and max_steps={self.max_steps}")
        if self.absgrad and self.backend == "torch":
            raise _CrossFieldError("absgrad", self.absgrad, 'false with backend=torch (absolute gradients come from '
                                   "gsplat's rasterizer: use backend=gsplat or auto on a GPU)")
        if self.far_plane <= self.near_plane:
            raise _CrossFieldError("far_plane", self.far_plane, f"a number > near_plane={self.near_plane}")
        return self

    # --- construction from SageMaker's strings ---

    @classmethod
    def field_accepted(cls, name: str) -> str:
        field = cls.model_fields.get(name)
        if field is None or not isinstance(field.json_schema_extra, dict):
            return "see docs/training.md"
        return str(field.json_schema_extra["accepted"])

    @classmethod
    def from_hyperparameters(cls, raw: dict[str, Any]) -> "TrainConfig":
        """Build a config from SageMaker's hyperparameters (a map of strings). Raises ConfigError."""
        if not isinstance(raw, dict):
            raise ConfigError([HyperparameterError("<hyperparameters.json>", raw, "a JSON object of strings")])
        values: dict[str, Any] = {}
        errors: list[HyperparameterError] = []
        known = list(cls.model_fields)
        for key, value in raw.items():
            if key.startswith(SAGEMAKER_RESERVED_PREFIXES):
                continue
            if key not in cls.model_fields:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"a known key (did you mean {close[0]}?)" if close else "a known key (see docs/training.md)"
                errors.append(HyperparameterError(key, value, hint))
                continue
            values[key] = _unquote(value)
        try:
            config = cls.model_validate(values)
        except ValidationError as exc:
            errors.extend(_errors_from_validation(exc, values))
            raise ConfigError(errors) from None
        if errors:
            raise ConfigError(errors)
        return config

    def config_hash(self) -> str:
        """Hash of the settings that change what a checkpoint means (resume refuses a mismatch)."""
        relevant = self.model_dump(include={"sh_degree", "strategy", "packed", "seed", "data_factor", "test_every"})
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


class _CrossFieldError(ValueError):
    def __init__(self, name: str, value: Any, accepted: str):
        self.name, self.value, self.accepted = name, value, accepted
        super().__init__(f"{name}={value!r}: accepted {accepted}")


def _unquote(value: Any) -> Any:
    """The SageMaker SDK JSON-encodes string hyperparameters ('"mcmc"'); accept both forms."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _errors_from_validation(exc: ValidationError, values: dict[str, Any]) -> list[HyperparameterError]:
    out: list[HyperparameterError] = []
    seen: set[str] = set()
    for err in exc.errors():
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else "<config>"
        if name in seen:  # union types report one error per branch; one line per key is enough
            continue
        seen.add(name)
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _CrossFieldError):
            out.append(HyperparameterError(ctx_error.name, ctx_error.value, ctx_error.accepted))
            continue
        out.append(HyperparameterError(name, values.get(name, err.get("input")), TrainConfig.field_accepted(name)))
    return out
