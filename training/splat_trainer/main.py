"""The training job from start to finish: config -> preflight -> training -> outputs.

Whatever goes wrong ends the same way: one classified line in ``/opt/ml/output/failure``
(SageMaker's FailureReason), the same line on stderr (CloudWatch), and the failure's exit
code. Nothing escapes as a bare traceback with an empty FailureReason (the incident this
image exists for).

Only the standard library and this package's failure/paths modules are imported at module
level: a broken torch or gsplat install must become a classified failure, not an
ImportError before anything can report it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splat_trainer.failure import (
    BAD_ARGUMENTS,
    INVALID_HYPERPARAMETER,
    TrainingFailure,
    UnexpectedFailure,
    failure_from_exception,
    write_failure_file,
)
from splat_trainer.paths import TRAINING_CHANNEL, SageMakerPaths

if TYPE_CHECKING:
    from splat_trainer.config import TrainConfig
    from splat_trainer.preflight import PlatformFacts, PreflightReport

PROG = "train_gaussian_production.py"
# Densification reallocates every parameter and Adam moment at a new size every 100 steps; with fixed-size
# segments the caching allocator fragments (measured: 0.8 GiB reserved but unusable beside 1.6 GiB allocated,
# then an out-of-memory error under a 2.5 GiB cap). Expandable segments grow in place. Set before torch loads;
# a value the job's environment already has wins.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit 2, unclassified
        raise TrainingFailure(BAD_ARGUMENTS, f"bad command line: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog=PROG,
        description=(
            "Train 3D Gaussian Splatting with gsplat on a SageMaker training job. Reads hyperparameters from "
            "$SM_ROOT/input/config/hyperparameters.json (SM_ROOT defaults to /opt/ml) and the SfM output "
            "(COLMAP sparse model + images) from the 'training' channel; writes the .ply and metrics.json to "
            "model/, checkpoints to checkpoints/, and on failure one classified line to output/failure."
        ),
    )
    parser.add_argument(
        "mode", nargs="?", choices=["train"],
        help="SageMaker starts the image as `docker run IMAGE train`; the argument is accepted and changes nothing",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one hyperparameter (repeatable; validated like hyperparameters.json)",
    )
    parser.add_argument("--channel", default=TRAINING_CHANNEL, help="input channel holding the SfM output")
    parser.add_argument(
        "--preflight-only", action="store_true",
        help="run the preflight checks, print the machine's facts and the verdict as JSON, and exit with its code",
    )
    parser.add_argument(
        "--gpu-only", action="store_true",
        help="with --preflight-only: check the GPU, driver and gsplat kernels only (no input data needed)",
    )
    return parser


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TrainingFailure(BAD_ARGUMENTS, f"--set {pair!r} is not KEY=VALUE", "write e.g. --set max_steps=7000")
        values[key.strip()] = value
    return values


def load_config(hyperparameters: Mapping[str, str]) -> TrainConfig:
    """The typed config, or an invalid_hyperparameter failure naming every bad key."""
    from splat_trainer.config import ConfigError, TrainConfig

    try:
        return TrainConfig.from_hyperparameters(dict(hyperparameters))
    except ConfigError as exc:
        raise TrainingFailure(INVALID_HYPERPARAMETER, str(exc)) from exc


def _default_probe(env: Mapping[str, str]) -> PlatformFacts:
    from splat_trainer.preflight import probe_platform

    return probe_platform(dict(env))


def _log(message: str) -> None:
    print(message, flush=True)


def _report_failure(paths: SageMakerPaths, failure: TrainingFailure | UnexpectedFailure) -> int:
    line = write_failure_file(paths.failure_file, failure)
    if isinstance(failure, UnexpectedFailure):
        # The failure file holds the tail; CloudWatch gets the whole traceback.
        traceback.print_exception(failure.original, file=sys.stderr)
    print(f"FAILURE (exit {failure.exit_code}): {line}", file=sys.stderr, flush=True)
    return failure.exit_code


def _print_preflight(report: PreflightReport) -> None:
    for check in report.checks:
        _log(f"preflight {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")


def run(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    probe: Callable[[Mapping[str, str]], PlatformFacts] = _default_probe,
    free_bytes: Callable[[Path], int] | None = None,
    trainer: Callable[..., Any] | None = None,
) -> int:
    """The job; returns its exit code. ``probe``, ``free_bytes`` and ``trainer`` are the
    machine-facing parts, replaceable by data in CPU tests (a GPU that is not there)."""
    env = os.environ if env is None else env
    paths = SageMakerPaths.from_env(env)
    diagnostic = False  # --preflight-only: report on stdout, leave the failure file alone
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        diagnostic = args.preflight_only
        if args.gpu_only and not args.preflight_only:
            raise TrainingFailure(BAD_ARGUMENTS, "--gpu-only works only with --preflight-only")
        hyperparameters = {**paths.load_hyperparameters(), **_overrides(args.overrides)}
        cfg = load_config(hyperparameters)
        if not args.preflight_only:  # --preflight-only prints pure JSON on stdout
            _log(f"config: {json.dumps(cfg.model_dump(mode='json'), sort_keys=True)}")

        from splat_trainer.preflight import disk_free_bytes, run_preflight

        # gsplat prints its JIT progress on stdout; --preflight-only keeps stdout pure JSON.
        with contextlib.redirect_stdout(sys.stderr) if diagnostic else contextlib.nullcontext():
            facts = probe(env)
            report = run_preflight(
                cfg, paths, facts, channel=args.channel, env=dict(env),
                free_bytes=free_bytes or disk_free_bytes, gpu_only=args.gpu_only,
            )
        if args.preflight_only:
            print(json.dumps(report.to_json(), indent=1, default=str), flush=True)
            return 0 if report.ok else report.failure.exit_code
        _print_preflight(report)
        if report.failure is not None:
            raise report.failure
        run_training = trainer or _train
        run_training(cfg, paths, report, channel=args.channel)
        return 0
    except SystemExit:
        raise  # --help: argparse printed it and exits 0
    except Exception as exc:  # every failure ends classified in the failure file
        failure = failure_from_exception(exc)
        if diagnostic:
            print(json.dumps({"verdict": failure.line(), "exit_code": failure.exit_code}, indent=1), flush=True)
            return failure.exit_code
        return _report_failure(paths, failure)


def _train(cfg: TrainConfig, paths: SageMakerPaths, report: PreflightReport, *, channel: str) -> Any:
    from splat_trainer.dataset import load_scene
    from splat_trainer.trainer import TrainPaths, train

    # preflight read and checked the model; a 1 M-point model takes seconds to read again
    scene = load_scene(paths.channel(channel), cfg.data_factor, cfg.test_every, model=report.model)
    # SIGTERM (a stopped job, a spot interruption) is the trainer's: it checkpoints and
    # returns status "interrupted", which is a clean exit (0) for SageMaker.
    result = train(
        cfg, scene, TrainPaths(paths.model_dir, paths.checkpoint_dir), log=_log,
        gpu_total_bytes=report.facts.gpu_total_memory_bytes,
    )
    _log(f"training {result.status}")
    return result


def main() -> None:
    sys.exit(run())
