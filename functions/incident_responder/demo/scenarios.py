"""Demo scenarios are data (scenarios/*.yaml): a failed 3DGS job's FailureReason and logs, and
the diagnosis the responder must reach. The tests run every one, so a new scenario is a new file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..models import Category

SCENARIO_DIR = Path(__file__).with_name("scenarios")
DEFAULT_SCENARIO = "train-argument-replaces-cmd"


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    category: Category
    cause: str


class StackEvent(BaseModel):
    """One resource event of the failed deployment, in the order CloudFormation writes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    logical_id: str
    type: str
    status: str = Field(pattern=r"^[A-Z_]+$")
    reason: str | None = None


class GitHubStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    conclusion: Literal["success", "failure", "skipped", "cancelled"] = "success"
    log: str = ""


class GitHubJob(BaseModel):
    """One job of the failed run, as GitHub's jobs API lists it, with each step's log."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    conclusion: Literal["success", "failure", "skipped", "cancelled"]
    steps: list[GitHubStep]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    summary: str
    source: Literal["sagemaker", "codebuild", "cloudformation", "github"] = "sagemaker"
    failure_reason: str | None = None
    log: str | None = Field(None, description="the job's or build's CloudWatch log; null: no stream was ever written")
    image_tag: str = "latest"
    hyperparameters: dict[str, str] = {"max_steps": "30000", "sh_degree": "3", "strategy": "default"}
    # CodeBuild: the failed phase and CodeBuild's contexts for it ("STATUS_CODE: message").
    phase: str = "BUILD"
    phase_context: list[str] = []
    # CloudFormation: the failed operation's resource events (the stack's own events are added around them).
    operation: Literal["CREATE", "UPDATE"] = "UPDATE"
    stack_events: list[StackEvent] = []
    # GitHub Actions: the run's conclusion and workflow file (at the run's commit), and its jobs' steps.
    conclusion: Literal["failure", "startup_failure"] = "failure"
    workflow_path: str = ".github/workflows/build-training-image.yml"
    workflow_file: str | None = None
    jobs: list[GitHubJob] = []
    expect: Expectation

    @model_validator(mode="after")
    def _source_has_what_it_needs(self) -> "Scenario":
        if self.source == "cloudformation" and not any(e.status.endswith("_FAILED") for e in self.stack_events):
            raise ValueError("a cloudformation scenario needs stack_events with at least one *_FAILED resource")
        if self.source == "codebuild" and not (self.phase_context or self.log):
            raise ValueError("a codebuild scenario needs phase_context or a log")
        if self.source == "github" and not (self.workflow_file if self.conclusion == "startup_failure" else self.jobs):
            raise ValueError("a github scenario needs jobs (failure) or a workflow_file (startup_failure)")
        return self


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
