"""template.yaml, read the way SAM reads it, for the template and EventBridge rule tests.

`raw()` is the SAM template with intrinsics as dicts ({"Ref": ...}); `transformed()` is what
CloudFormation would receive: the real SAM translator, run offline (no AWS call), so the
tests look at the rules, roles and invoke configs SAM actually generates.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
FUNCTIONS = REPO / "functions"
EVENTS = REPO / "events"

# Placeholder for CodeUri during the offline transform (the translator wants an S3 URI).
PLACEHOLDER_CODE_URI = "s3://placeholder-bucket/code.zip"
# A pipeline state machine that the sample events in events/ belong to.
TEST_PIPELINE_ARN = "arn:aws:states:us-west-2:123456789012:stateMachine:SpaceportMLPipeline"


@functools.cache
def _raw() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


def raw() -> dict[str, Any]:
    """The SAM template as written (a fresh copy)."""
    return copy.deepcopy(_raw())


@functools.cache
def _transformed() -> dict[str, Any]:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    tpl = raw()
    tpl.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = PLACEHOLDER_CODE_URI
        if res["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in res["Properties"]:
            # `sam package` uploads the ASL file; offline, the translator only needs an S3 location.
            res["Properties"]["DefinitionUri"] = {"Bucket": "placeholder-bucket", "Key": res["Properties"]["DefinitionUri"]}
    session = boto3.session.Session(
        region_name="us-west-2", aws_access_key_id="offline", aws_secret_access_key="offline"
    )
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
    return translator.translate(tpl, parameter_values={}, get_managed_policy_map=lambda: {})


def transformed() -> dict[str, Any]:
    """The CloudFormation template SAM generates (a fresh copy)."""
    return copy.deepcopy(_transformed())


def resources_of_type(tpl: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == type_}


# Pseudo parameters as the tests' stack sees them (the sample events' account and region).
PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": "us-west-2", "AWS::AccountId": "123456789012",
                     "AWS::URLSuffix": "amazonaws.com"}


def resolve(node: Any, params: dict[str, Any], conditions: dict[str, bool] | None = None) -> Any:
    """Substitute Ref to parameters (and pseudo parameters) and Fn::Sub strings, and evaluate Fn::If;
    AWS::NoValue entries disappear."""
    conditions = conditions or {}
    if isinstance(node, dict):
        values = {**PSEUDO_PARAMETERS, **params}
        if set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            names = re.findall(r"\$\{([A-Za-z0-9:]+)\}", node["Fn::Sub"])
            # Substituted only when every name is known; otherwise left for the caller to read.
            if all(name in values for name in names):
                return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: str(values[m.group(1)]), node["Fn::Sub"])
            return node
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return resolve(yes if conditions[name] else no, params, conditions)
        out = {}
        for key, value in node.items():
            value = resolve(value, params, conditions)
            if value != {"Ref": "AWS::NoValue"}:
                out[key] = value
        return out
    if isinstance(node, list):
        items = [resolve(v, params, conditions) for v in node]
        return [v for v in items if v != {"Ref": "AWS::NoValue"}]
    return node


def parameter_defaults(tpl: dict[str, Any] | None = None) -> dict[str, Any]:
    tpl = tpl or raw()
    return {k: v["Default"] for k, v in tpl.get("Parameters", {}).items() if "Default" in v}


def values_for_tests() -> dict[str, Any]:
    """Every parameter with a value: defaults, plus the pipeline ARN the sample events use."""
    return {**parameter_defaults(), "PipelineStateMachineArn": TEST_PIPELINE_ARN}


def eventbridge_rules() -> dict[str, dict[str, Any]]:
    """{event name: SAM EventBridgeRule properties} over every function in the template."""
    rules: dict[str, dict[str, Any]] = {}
    for fn_id, fn in resources_of_type(raw(), "AWS::Serverless::Function").items():
        for name, event in (fn["Properties"].get("Events") or {}).items():
            if event["Type"] in ("EventBridgeRule", "CloudWatchEvent"):
                assert name not in rules, f"event name {name} used twice"
                rules[name] = {**event["Properties"], "_function": fn_id}
    return rules


def tool(name: str) -> str:
    """A console script installed next to this Python (the venv), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    assert found, f"{name} is not installed (pip install -r requirements-dev.txt)"
    return found


def python312_dir() -> str | None:
    """A directory whose python3.12 really is CPython 3.12 (a pyenv shim may point elsewhere)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which("python3.12"), *sorted(pyenv_root.glob("versions/3.12*/bin/python3.12"), reverse=True)]
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return str(Path(candidate).parent)
    return None


def lambda_env_names_read_by(package: Path) -> dict[str, list[str]]:
    """{ENV_NAME: [files]} for os.environ[...] / os.environ.get / os.getenv / environ.get calls."""
    pattern = re.compile(
        r"""(?:os\.)?(?:environ(?:\.get|\.setdefault|\.pop)?|getenv)\s*[\[(]\s*["']([A-Z][A-Z0-9_]*)["']"""
    )
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for name in pattern.findall(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(REPO)))
    return found


def string_constants_in(package: Path, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """{string literal: [files]} over a package's modules (to see which env names the code mentions)."""
    import ast

    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).parts[0] in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.setdefault(node.value, []).append(str(path.relative_to(REPO)))
    return found
