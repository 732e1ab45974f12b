"""Every ASL file in statemachine/ is valid (statelint), and the workflows keep their design rules."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.template.template_model import REPO, tool

ASL_FILES = sorted((REPO / "statemachine").glob("*.asl.json"))


def _statelint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("statelint"), str(path)], capture_output=True, text=True, timeout=120)


def test_there_are_workflows():
    assert {p.name for p in ASL_FILES} >= {"rollback.asl.json", "ml_pipeline.asl.json"}


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_statelint_accepts(path):
    result = _statelint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_statelint_catches_a_broken_definition(tmp_path):
    broken = json.loads((REPO / "statemachine" / "rollback.asl.json").read_text())
    broken["States"]["Rollback approved?"]["Default"] = "No such state"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    result = _statelint(path)
    assert result.returncode != 0 and "No such state" in result.stdout + result.stderr


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_task_retries_and_catches_and_every_name_comes_from_substitutions(path):
    definition = json.loads(path.read_text())
    for name, state in definition["States"].items():
        assert " " in name, f"{name}: states are named as sentences"
        if state["Type"] == "Task":
            assert state.get("Retry") and state.get("Catch"), f"{name}: a task without Retry and Catch"
    text = path.read_text()
    # No account, region, table, topic, repository or parameter written in: only integration ARNs.
    literal_arns = [a for a in re.findall(r"arn:aws[a-z-]*:[^\"']*", text) if not a.startswith("arn:aws:states:::")]
    assert literal_arns == []
    assert not re.search(r"\d{12}", text), "an account id is written into the definition"
