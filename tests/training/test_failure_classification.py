"""The responder classifies every failure file this image writes into the right category
and cause: the contract between training/splat_trainer/failure.py and the classifier's
structured-line rule (functions/incident_responder/rules/unknown.yaml).

Each failure file is produced by the real job (``main.run``): preflight failures from
test_preflight's table, the others from a real bad command line, hyperparameters file, or a
real exception raised while training. The classifier reads it as the file's content and as
SageMaker's FailureReason in both shapes seen (``AlgorithmError: `` + the content cut at 1,024
characters; and with SageMaker's ``, exit code: N`` after it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from incident_responder.classify import classify
from splat_trainer import main as job
from splat_trainer.failure import FAILURE_CODES, UNEXPECTED_EXIT_CODE, parse_failure_line
from splat_trainer.paths import SageMakerPaths
from splat_trainer.synthetic import generate_scene
from tests.training.test_preflight import FAILURE_CASES, HEALTHY_HYPERPARAMETERS, make_job_root, run_case

SAGEMAKER_REASON_CHARS = 1024


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("scene"), n_images=6, width=24, height=18, n_points=300, seed=3)


def as_failure_reason(content: str) -> str:
    """What DescribeTrainingJob returns for a job that wrote ``content`` to its failure file."""
    return ("AlgorithmError: " + content)[:SAGEMAKER_REASON_CHARS]


def as_failure_reason_with_exit_code(content: str, exit_code: int) -> str:
    """The shape SageMaker's events show: the file's first 1,024 characters, then the exit code."""
    return f"AlgorithmError: {content.rstrip(chr(10))[:SAGEMAKER_REASON_CHARS]}, exit code: {exit_code}"


def assert_classified(content: str, category: str, cause: str) -> None:
    exit_code = FAILURE_CODES[f"{category}/{cause}"].exit_code
    for text in (content, as_failure_reason(content), as_failure_reason_with_exit_code(content, exit_code)):
        # all of it is the FailureReason: the only place a structured line is trusted
        diagnosis = classify(text, trusted_lines=max(1, len(text.splitlines())))
        assert (diagnosis.category.value, diagnosis.cause) == (category, cause), (
            f"{text!r} classified as {diagnosis.category.value}/{diagnosis.cause} by {diagnosis.rule_id}"
        )


@pytest.mark.parametrize("case", FAILURE_CASES, ids=lambda c: c.id)
def test_every_preflight_failure_file_is_classified_exactly(case, tmp_path, tiny_scene):
    exit_code, root = run_case(case, tmp_path, tiny_scene)
    assert exit_code == case.code.exit_code
    assert_classified(SageMakerPaths(root).failure_file.read_text(), case.code.category, case.code.cause)


# ---------------------------------------------------------------- the codes preflight does not raise


def _job(tmp_path: Path, scene: Path, argv: list[str], hyperparameters_text: str,
         trainer: Callable | None = None) -> Path:
    root = make_job_root(tmp_path, scene, HEALTHY_HYPERPARAMETERS)
    SageMakerPaths(root).hyperparameters_file.write_text(hyperparameters_text)
    exit_code = job.run(argv, env={"SM_ROOT": str(root)}, trainer=trainer)
    assert exit_code not in (0, UNEXPECTED_EXIT_CODE), f"expected a classified failure, got exit {exit_code}"
    return root


CPU_JOB = json.dumps({**HEALTHY_HYPERPARAMETERS, "backend": "torch", "min_free_disk_gb": "0"})


def _import_a_missing_package(*args, **kwargs):
    import plyfile_that_is_not_installed  # noqa: F401


def _write_to_a_full_disk(*args, **kwargs):
    with open("/dev/full", "wb") as device:
        device.write(b"checkpoint")


def _write_where_not_permitted(cfg, paths, report, channel):
    paths.model_dir.chmod(0o500)
    if os.geteuid() != 0:
        (paths.model_dir / "splat.ply").write_bytes(b"ply")
    os.seteuid(65534)  # root ignores file modes: write as nobody, then become root again
    try:
        (paths.model_dir / "splat.ply").write_bytes(b"ply")
    finally:
        os.seteuid(0)


def _run_out_of_gpu_memory(*args, **kwargs):
    # No GPU here: torch's own exception class with the allocator's message.
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.20 GiB. GPU 0 has a total capacity of "
                                 "14.58 GiB of which 312.00 MiB is free.")


PRODUCERS: dict[str, Callable[[Path, Path], Path]] = {
    "entry_point/bad_arguments": lambda tmp, scene: _job(tmp, scene, ["train", "--epochs", "3"], CPU_JOB),
    "sagemaker_environment/invalid_hyperparameter": lambda tmp, scene: _job(
        tmp, scene, ["train"], json.dumps({"max_steps": "-5", "strategy": "mcmcc"})),
    "sagemaker_environment/hyperparameters_unreadable": lambda tmp, scene: _job(
        tmp, scene, ["train"], '{"max_steps": "7000",'),
    "python_dependencies/module_not_found": lambda tmp, scene: _job(
        tmp, scene, ["train"], CPU_JOB, trainer=_import_a_missing_package),
    "file_permissions_paths/permission_denied": lambda tmp, scene: _job(
        tmp, scene, ["train"], CPU_JOB, trainer=_write_where_not_permitted),
    "sagemaker_environment/gpu_out_of_memory": lambda tmp, scene: _job(
        tmp, scene, ["train"], CPU_JOB, trainer=_run_out_of_gpu_memory),
    # also raised by preflight (free disk below the estimate); here: ENOSPC while writing
    "sagemaker_environment/disk_full": lambda tmp, scene: _job(
        tmp, scene, ["train"], CPU_JOB, trainer=_write_to_a_full_disk),
}


@pytest.mark.parametrize("key", sorted(PRODUCERS))
def test_failure_files_written_outside_preflight_are_classified_exactly(key, tmp_path, tiny_scene):
    root = PRODUCERS[key](tmp_path, tiny_scene)
    content = SageMakerPaths(root).failure_file.read_text()
    category, cause = key.split("/")
    assert parse_failure_line(content) == (category, cause), content
    assert_classified(content, category, cause)


def test_every_failure_code_is_produced_and_classified_by_some_test():
    produced = {case.code.key for case in FAILURE_CASES} | set(PRODUCERS)
    assert produced == set(FAILURE_CODES), f"no test produces {sorted(set(FAILURE_CODES) - produced)}"


def test_a_failure_reason_cut_at_1024_characters_still_classifies(tmp_path, tiny_scene):
    # A long line (here: forty misspelt hyperparameters) is cut to 1,024 characters by the
    # image and again by SageMaker after its prefix; the tag at the start survives both.
    misspelt = {f"learning_rate_{i}": "0.1" for i in range(40)}
    root = _job(tmp_path, tiny_scene, ["train"], json.dumps(misspelt))
    content = SageMakerPaths(root).failure_file.read_text().rstrip("\n")
    assert len(content) == 1024 and len(as_failure_reason(content)) == SAGEMAKER_REASON_CHARS
    assert_classified(content, "sagemaker_environment", "invalid_hyperparameter")
