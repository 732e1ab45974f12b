"""TrainConfig.from_hyperparameters: SageMaker's strings -> typed config; every bad input named."""

from __future__ import annotations

import pytest

from splat_trainer.config import ConfigError, TrainConfig


@pytest.mark.parametrize(
    "raw, field, expected",
    [
        ({"max_steps": "1200"}, "max_steps", 1200),
        ({"ssim_lambda": "0.3"}, "ssim_lambda", 0.3),
        ({"lr_means": "1.6e-4"}, "lr_means", 1.6e-4),
        ({"eval_steps": "100,200"}, "eval_steps", [100, 200]),
        ({"eval_steps": "[300, 7000]"}, "eval_steps", [300, 7000]),
        ({"strategy": '"mcmc"'}, "strategy", "mcmc"),  # the SageMaker SDK JSON-quotes strings
        ({"strategy": "mcmc", "cap_max": "500000"}, "cap_max", 500_000),
        ({"cap_max": "AUTO"}, "cap_max", "auto"),
        ({"reset_start_iter": "0"}, "reset_start_iter", 0),
        ({"reset_start_iter": "9000"}, "reset_start_iter", 9000),
        ({"reset_start_iter": "Auto"}, "reset_start_iter", "auto"),
        ({"packed": "true"}, "packed", True),
        ({"packed": "False"}, "packed", False),
        ({"data_factor": "4"}, "data_factor", 4),
        ({"backend": "torch"}, "backend", "torch"),
    ],
)
def test_strings_become_typed_values(raw, field, expected):
    assert getattr(TrainConfig.from_hyperparameters(raw), field) == expected


@pytest.mark.parametrize("raw, expected", [({}, 7500), ({"refine_stop_iter": "9000"}, 4500),
                                           ({"reset_start_iter": "0"}, 0), ({"reset_start_iter": "6001"}, 6001)])
def test_first_opacity_reset_from_is_half_the_refinement_phase_unless_set(raw, expected):
    assert TrainConfig.from_hyperparameters(raw).first_opacity_reset_from() == expected


def test_defaults_follow_simple_trainer():
    cfg = TrainConfig.from_hyperparameters({})
    assert (cfg.max_steps, cfg.eval_steps, cfg.sh_degree, cfg.sh_degree_interval) == (30_000, [7_000, 30_000], 3, 1000)
    assert (cfg.lr_means, cfg.lr_scales, cfg.lr_quats, cfg.lr_opacities, cfg.lr_sh0, cfg.lr_shN) == (
        1.6e-4, 5e-3, 1e-3, 5e-2, 2.5e-3, 2.5e-3 / 20)
    assert (cfg.init_opacity, cfg.ssim_lambda, cfg.strategy, cfg.reset_every, cfg.refine_stop_iter) == (
        0.1, 0.2, "default", 3000, 15_000)


@pytest.mark.parametrize(
    "raw, name, accepted_fragment",
    [
        ({"max_steps": "abc"}, "max_steps", "an integer >= 1"),
        ({"max_steps": "0"}, "max_steps", "an integer >= 1"),
        ({"sh_degree": "4"}, "sh_degree", "0 to 3"),
        ({"strategy": "adc"}, "strategy", '"default" or "mcmc"'),
        ({"cap_max": "12"}, "cap_max", ">= 1000"),
        ({"cap_max": "lots"}, "cap_max", '"auto"'),
        ({"reset_start_iter": "-1"}, "reset_start_iter", "an integer >= 0"),
        ({"reset_start_iter": "soon"}, "reset_start_iter", '"auto"'),
        ({"data_factor": "3"}, "data_factor", "1, 2, 4 or 8"),
        ({"ssim_lambda": "1.5"}, "ssim_lambda", "[0, 1]"),
        ({"packed": "maybe"}, "packed", "true or false"),
        ({"backend": "cuda"}, "backend", '"gsplat"'),
        ({"eval_steps": "7000,40000"}, "eval_steps", "max_steps=30000"),
        ({"eval_steps": "seven"}, "eval_steps", "comma-separated integers"),
        ({"far_plane": "0.001"}, "far_plane", "near_plane=0.01"),
        ({"absgrad": "perhaps"}, "absgrad", "true or false"),
        ({"absgrad": "true", "backend": "torch"}, "absgrad", "backend=torch"),
    ],
)
def test_bad_value_names_key_value_and_what_is_accepted(raw, name, accepted_fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_hyperparameters(raw)
    (error,) = info.value.errors
    assert error.name == name
    assert accepted_fragment in error.accepted
    message = str(info.value)
    assert name in message and accepted_fragment in message
    assert str(raw[name]) in message or str(error.value) in message


@pytest.mark.parametrize("key, suggestion", [("max_step", "max_steps"), ("sh_degre", "sh_degree"),
                                              ("stratgy", "strategy")])
def test_unknown_key_suggests_the_closest(key, suggestion):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_hyperparameters({key: "1"})
    assert f"did you mean {suggestion}?" in str(info.value)
    assert info.value.errors[0].name == key


def test_unknown_key_without_a_close_match_points_to_the_docs():
    with pytest.raises(ConfigError, match="zzz_unrelated.*see docs/training.md"):
        TrainConfig.from_hyperparameters({"zzz_unrelated": "1"})


def test_every_bad_key_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_hyperparameters({"max_step": "1", "sh_degree": "9", "strategy": "x"})
    assert sorted(e.name for e in info.value.errors) == ["max_step", "sh_degree", "strategy"]


def test_sagemaker_sdk_keys_are_not_ours_to_reject():
    cfg = TrainConfig.from_hyperparameters({"sagemaker_program": "train.py", "sagemaker_region": '"us-east-1"',
                                            "max_steps": "10", "eval_steps": "10"})
    assert cfg.max_steps == 10


@pytest.mark.parametrize("raw", [[], "max_steps=3", None])
def test_hyperparameters_must_be_an_object(raw):
    with pytest.raises(ConfigError, match="JSON object"):
        TrainConfig.from_hyperparameters(raw)


def test_config_hash_changes_only_with_settings_that_change_a_checkpoint():
    base = TrainConfig().config_hash()
    assert TrainConfig(max_steps=100, eval_steps=[100]).config_hash() == base  # a longer/shorter run may resume
    assert TrainConfig(sh_degree=2).config_hash() != base
    assert TrainConfig(strategy="mcmc").config_hash() != base


@pytest.mark.parametrize("max_steps, expected", [("1200", [1200]), ("7000", [7000]), ("10000", [7000, 10000]),
                                                 ("30000", [7000, 30000]), ("50000", [7000, 30000, 50000])])
def test_default_eval_steps_follow_a_shorter_or_longer_run(max_steps, expected):
    assert TrainConfig.from_hyperparameters({"max_steps": max_steps}).eval_steps == expected


def test_every_hyperparameter_is_documented_with_its_default_and_accepted_values():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    for name in TrainConfig.model_fields:
        default = TrainConfig.model_fields[name].default
        default_text = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        row = f"| `{name}` | `{default_text}` | {TrainConfig.field_accepted(name)} |"
        assert row in doc, f"docs/training.md lacks or misstates {name}: expected {row!r}"
