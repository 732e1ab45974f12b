"""train_gaussian_production.py started the way SageMaker starts it: a separate process,
`train` as its argument, /opt/ml (here SM_ROOT) as its world.

The pure-PyTorch backend lets the whole job (preflight, training, checkpoints, SIGTERM,
resume, outputs) run on a CPU; on a machine without a GPU the default backend must fail
loudly with a classified failure file, exactly as the image does on a GPU-less runner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splat_trainer import main as job
from splat_trainer.failure import (
    BAD_ARGUMENTS,
    FAILURE_CODES,
    GPU_OUT_OF_MEMORY,
    INVALID_HYPERPARAMETER,
    UNEXPECTED_EXIT_CODE,
    parse_failure_line,
)
from splat_trainer.paths import SageMakerPaths
from splat_trainer.synthetic import generate_scene

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "training" / "train_gaussian_production.py"
# Small and quick on a CPU: the torch backend renders 24x18 views of 300 Gaussians.
CPU_TRAINING = {
    "backend": "torch", "max_steps": "6", "eval_steps": "6", "log_every": "2", "sh_degree_interval": "2",
    "checkpoint_every": "0", "min_free_disk_gb": "0",
}


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("scene"), n_images=6, width=24, height=18, n_points=300, seed=2)


def job_root(tmp_path: Path, scene: Path | None, hyperparameters: dict[str, str] | None) -> Path:
    root = tmp_path / "opt-ml"
    paths = SageMakerPaths(root)
    if scene is not None:
        import shutil

        shutil.copytree(scene, paths.channel())
    if hyperparameters is not None:
        paths.hyperparameters_file.parent.mkdir(parents=True)
        paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    return root


def start(root: Path, *args: str, **popen) -> subprocess.Popen[str]:
    env = {**os.environ, "SM_ROOT": str(root)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], env=env, text=True, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen,
    )


def run_script(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    process = start(root, *args)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def failure_line(root: Path) -> str:
    return SageMakerPaths(root).failure_file.read_text().rstrip("\n")


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"]], ids=["help", "train-help"])
def test_help_works_with_and_without_sagemakers_train_argument(tmp_path, args):
    result = run_script(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert "usage: train_gaussian_production.py" in result.stdout
    assert "docker run IMAGE train" in result.stdout
    assert not SageMakerPaths(tmp_path).failure_file.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "--epochs", "5"], "unrecognized arguments: --epochs 5"),
        (["serve"], "invalid choice: 'serve'"),
        (["train", "--set", "max_steps"], "--set 'max_steps' is not KEY=VALUE"),
        (["train", "--gpu-only"], "--gpu-only works only with --preflight-only"),
    ],
    ids=["unknown-option", "serve-instead-of-train", "set-without-value", "gpu-only-alone"],
)
def test_bad_command_line_is_an_entry_point_failure(tmp_path, args, says):
    result = run_script(tmp_path, *args)
    line = failure_line(tmp_path)
    assert result.returncode == BAD_ARGUMENTS.exit_code, result.stderr
    assert parse_failure_line(line) == ("entry_point", "bad_arguments")
    assert says in line
    assert line in result.stderr, "the same line reaches CloudWatch"


def test_bad_hyperparameters_name_each_key_value_and_what_is_accepted(tmp_path):
    root = job_root(tmp_path, None, {"max_steps": "ten thousand", "strategy": "mcmcc", "max_step": "5"})
    result = run_script(root, "train")
    line = failure_line(root)
    assert result.returncode == INVALID_HYPERPARAMETER.exit_code, result.stderr
    assert parse_failure_line(line) == ("sagemaker_environment", "invalid_hyperparameter")
    for fragment in ("max_steps='ten thousand'", "an integer >= 1", "strategy='mcmcc'", '"default" or "mcmc"',
                     "max_step='5'", "did you mean max_steps"):
        assert fragment in line, f"{fragment!r} not in {line!r}"


@pytest.mark.slow
def test_without_a_gpu_the_default_backend_fails_loudly_and_classified(tmp_path, tiny_scene):
    # This machine has no usable GPU (CPU torch, or no gsplat): started as SageMaker starts
    # it, the job must end at preflight with a classified line, never crawl on the CPU.
    root = job_root(tmp_path, tiny_scene, {"max_steps": "6", "eval_steps": "6"})
    result = run_script(root, "train")
    line = failure_line(root)
    tag = parse_failure_line(line)
    assert tag in {("python_dependencies", "import_failed"), ("cuda_gpu", "torch_without_cuda"),
                   ("cuda_gpu", "gpu_not_visible")}, line
    assert result.returncode == FAILURE_CODES["/".join(tag)].exit_code
    assert not (root / "model" / "splat.ply").exists()


@pytest.mark.slow
def test_cpu_job_trains_and_writes_the_splat_and_metrics(tmp_path, tiny_scene):
    root = job_root(tmp_path, tiny_scene, CPU_TRAINING)
    result = run_script(root, "train")
    assert result.returncode == 0, result.stderr
    assert not SageMakerPaths(root).failure_file.exists()
    for check in ("imports", "input_channel", "colmap_model", "images", "outputs_writable", "free_disk"):
        assert f"preflight ok   {check}:" in result.stdout
    assert "step=6/6" in result.stdout and "psnr=" in result.stdout
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == 6
    assert (root / "model" / "splat.ply").stat().st_size > 0
    assert result.stdout.rstrip().endswith("training completed")


@pytest.mark.slow
def test_sigterm_checkpoints_exits_cleanly_and_the_next_job_resumes(tmp_path, tiny_scene):
    root = job_root(tmp_path, tiny_scene, {**CPU_TRAINING, "max_steps": "100000", "eval_steps": "100000",
                                           "log_every": "1", "checkpoint_every": "1000"})
    process = start(root, "train")
    # SageMaker stops a job (or reclaims a spot instance) with SIGTERM once it is training.
    for line in process.stdout:
        if line.startswith("step="):
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert not SageMakerPaths(root).failure_file.exists()
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    stopped_at = metrics["steps"]
    checkpoints = sorted((root / "checkpoints").iterdir())
    assert checkpoints, "SIGTERM must leave a checkpoint for the next job"

    # Managed spot training restarts the job with the same checkpoints folder.
    hyperparameters = {**CPU_TRAINING, "max_steps": str(stopped_at + 2), "eval_steps": str(stopped_at + 2)}
    SageMakerPaths(root).hyperparameters_file.write_text(json.dumps(hyperparameters))
    resumed = run_script(root, "train")
    assert resumed.returncode == 0, resumed.stderr
    assert f"start_step={stopped_at}" in resumed.stdout
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == stopped_at + 2


# In-process: faults of the training itself, through the job's injectable trainer.


def _lookup_missing_setting(cfg, paths, report, channel):
    settings = {"max_steps": cfg.max_steps}
    return settings["densify_until"]


def _gpu_runs_out_of_memory(cfg, paths, report, channel):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.50 GiB. GPU 0 has a total capacity of "
                                 "14.58 GiB of which 1.10 GiB is free.")


def _run_with_trainer(tmp_path: Path, scene: Path, trainer) -> tuple[int, Path]:
    root = job_root(tmp_path, scene, CPU_TRAINING)
    return job.run(["train"], env={"SM_ROOT": str(root)}, trainer=trainer), root


def test_unexpected_exception_writes_its_traceback_tail_without_a_tag(tmp_path, tiny_scene, capsys):
    exit_code, root = _run_with_trainer(tmp_path, tiny_scene, _lookup_missing_setting)
    line = failure_line(root)
    assert exit_code == UNEXPECTED_EXIT_CODE
    assert parse_failure_line(line) is None
    assert line.startswith("KeyError: 'densify_until' | Traceback (most recent call last")
    assert "in _lookup_missing_setting: return settings[\"densify_until\"]" in line
    assert "Traceback (most recent call last):" in capsys.readouterr().err, "the whole traceback goes to CloudWatch"


def test_gpu_out_of_memory_during_training_is_classified(tmp_path, tiny_scene):
    exit_code, root = _run_with_trainer(tmp_path, tiny_scene, _gpu_runs_out_of_memory)
    line = failure_line(root)
    assert exit_code == GPU_OUT_OF_MEMORY.exit_code
    assert parse_failure_line(line) == ("sagemaker_environment", "gpu_out_of_memory")
    assert "Tried to allocate 3.50 GiB" in line and "raise data_factor" in line
