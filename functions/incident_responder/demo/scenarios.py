"""Demo scenarios are data (scenarios/*.yaml): a failed 3DGS job's FailureReason and logs, and
the diagnosis the responder must reach. The tests run every one, so a new scenario is a new file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..models import Category

SCENARIO_DIR = Path(__file__).with_name("scenarios")
DEFAULT_SCENARIO = "train-argument-replaces-cmd"


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    category: Category
    cause: str


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    summary: str
    failure_reason: str | None = None
    log: str | None = Field(None, description="the job's CloudWatch log; null: no stream was ever written")
    image_tag: str = "latest"
    hyperparameters: dict[str, str] = {"max_steps": "30000", "sh_degree": "3", "strategy": "default"}
    expect: Expectation


class ScenarioNotFound(LookupError):
    pass


@cache
def load_scenarios() -> dict[str, Scenario]:
    scenarios = {}
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        scenario = Scenario.model_validate(yaml.safe_load(path.read_text()))
        if scenario.name != path.stem:
            raise ValueError(f"{path}: name '{scenario.name}' must match the file name '{path.stem}'")
        scenarios[scenario.name] = scenario
    return scenarios


def get_scenario(name: str) -> Scenario:
    scenarios = load_scenarios()
    if name not in scenarios:
        raise ScenarioNotFound(
            f"no demo scenario '{name}'; choose one of: {', '.join(scenarios)} (see `demo --list`)"
        )
    return scenarios[name]
