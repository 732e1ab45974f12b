"""SageMaker's container layout, rooted at SM_ROOT, and the hyperparameters file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splat_trainer.failure import HYPERPARAMETERS_UNREADABLE, TrainingFailure
from splat_trainer.paths import SageMakerPaths


@pytest.mark.parametrize(
    ("env", "root"),
    [({}, Path("/opt/ml")), ({"SM_ROOT": ""}, Path("/opt/ml")), ({"SM_ROOT": "/tmp/sm"}, Path("/tmp/sm"))],
    ids=["unset", "empty", "set"],
)
def test_root_comes_from_sm_root(env, root):
    assert SageMakerPaths.from_env(env).root == root


@pytest.mark.parametrize(
    ("attribute", "relative"),
    [
        ("hyperparameters_file", "input/config/hyperparameters.json"),
        ("input_data_dir", "input/data"),
        ("model_dir", "model"),
        ("checkpoint_dir", "checkpoints"),
        ("output_dir", "output"),
        ("failure_file", "output/failure"),
        ("output_data_dir", "output/data"),
    ],
)
def test_sagemaker_layout(attribute, relative):
    assert getattr(SageMakerPaths(Path("/opt/ml")), attribute) == Path("/opt/ml") / relative


def test_channels():
    paths = SageMakerPaths(Path("/opt/ml"))
    assert paths.channel() == Path("/opt/ml/input/data/training")
    assert paths.channel("images") == Path("/opt/ml/input/data/images")


def test_available_channels_lists_folders_only(tmp_path):
    paths = SageMakerPaths(tmp_path)
    assert paths.available_channels() == []
    for name in ("train", "eval"):
        (paths.input_data_dir / name).mkdir(parents=True)
    (paths.input_data_dir / "stray-file").write_text("")
    assert paths.available_channels() == ["eval", "train"]


def _write_hyperparameters(paths: SageMakerPaths, text: str) -> None:
    paths.hyperparameters_file.parent.mkdir(parents=True)
    paths.hyperparameters_file.write_text(text)


def test_missing_hyperparameters_file_means_none(tmp_path):
    assert SageMakerPaths(tmp_path).load_hyperparameters() == {}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"max_steps": "7000", "strategy": "mcmc"}, {"max_steps": "7000", "strategy": "mcmc"}),
        # a hand-written file: values become the strings SageMaker would have sent
        ({"max_steps": 7000, "packed": True, "ssim_lambda": 0.2}, {"max_steps": "7000", "packed": "true",
                                                                   "ssim_lambda": "0.2"}),
        ({}, {}),
    ],
    ids=["sagemaker-strings", "json-types", "empty"],
)
def test_hyperparameters_are_strings(tmp_path, content, expected):
    paths = SageMakerPaths(tmp_path)
    _write_hyperparameters(paths, json.dumps(content))
    assert paths.load_hyperparameters() == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('{"max_steps": "7000",', "is not readable JSON (JSONDecodeError"),
        ('["max_steps", "7000"]', "holds a JSON list, expected an object of name -> string"),
        ('"7000"', "holds a JSON str"),
    ],
    ids=["truncated", "list", "string"],
)
def test_bad_hyperparameters_file_is_a_classified_failure(tmp_path, text, complaint):
    paths = SageMakerPaths(tmp_path)
    _write_hyperparameters(paths, text)
    with pytest.raises(TrainingFailure) as caught:
        paths.load_hyperparameters()
    assert caught.value.code is HYPERPARAMETERS_UNREADABLE
    assert complaint in caught.value.line()
    assert str(paths.hyperparameters_file) in caught.value.line()
