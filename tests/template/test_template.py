"""template.yaml: the linters and `sam build` accept it, and it keeps the contract with the code.

Structural checks read the CloudFormation that the real SAM translator generates (offline), so
they check the rules, targets, roles and invoke configs that would be deployed, not only the
shorthand written in template.yaml.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.template.template_model import (
    FUNCTIONS,
    REPO,
    TEMPLATE,
    TEST_PIPELINE_ARN,
    eventbridge_rules,
    lambda_env_names_read_by,
    python312_dir,
    raw,
    resolve,
    resources_of_type,
    string_constants_in,
    tool,
    transformed,
)

PACKAGE = FUNCTIONS / "incident_responder"
SAM_ENV = {**os.environ, "SAM_CLI_TELEMETRY": "0"}

TRIAGE_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "INCIDENT_TABLE",
    "SNS_TOPIC_ARN",
    "SLACK_WEBHOOK_SECRET_ARN",
    "LOG_TAIL_BYTES",
    "LOG_WAIT_SECONDS",
    "IDEMPOTENCY_TTL_SECONDS",
}
EXPECTED_RULES = {"TrainingJobFailed", "TrainingJobCompleted", "PipelineExecutionFailed", "ImageBuildFailed",
                  "StackDeploymentFailed", "GitHubRunFailed"}
EVENTBRIDGE_RETRY_WINDOW_S = 24 * 3600


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=SAM_ENV, capture_output=True, text=True, timeout=300, **kw)


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def _getatt_target(value: Any) -> str | None:
    """The logical id behind {"Fn::GetAtt": [id, attr]} or {"Ref": id}."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _lambda_function(cfn: dict[str, Any], logical_id: str) -> dict[str, Any]:
    fn = cfn["Resources"][logical_id]
    assert fn["Type"] == "AWS::Lambda::Function"
    return fn["Properties"]


def _role_statements(cfn: dict[str, Any], role_id: str, conditions: dict[str, bool]) -> list[dict[str, Any]]:
    role = resolve(cfn["Resources"][role_id]["Properties"], {}, conditions)
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


# ---------------------------------------------------------------- the three tools


def test_cfn_lint_is_clean() -> None:
    result = _run([tool("cfn-lint"), str(TEMPLATE)])
    assert result.returncode == 0, f"cfn-lint:\n{result.stdout}{result.stderr}"


def test_sam_validate_lint_is_clean() -> None:
    result = _run([tool("sam"), "validate", "--lint", "--region", "us-west-2", "--template-file", str(TEMPLATE)])
    assert result.returncode == 0, f"sam validate --lint:\n{result.stdout}{result.stderr}"
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_generated_cloudformation_is_lint_clean(tmp_path: Path) -> None:
    """What SAM generates (rules, queue policies pointing at generated rule ids) lints clean too."""
    out = tmp_path / "transformed.json"
    out.write_text(json.dumps(transformed(), indent=1))
    result = _run([tool("cfn-lint"), str(out)])
    assert result.returncode == 0, f"cfn-lint on the SAM output:\n{result.stdout}{result.stderr}"


# Run by the built functions' CPython 3.12 with -S: argv = module, attr, build dir, runtime dir.
IMPORT_PROBE = """
import importlib, importlib.util, os, sys
module, attr, build, runtime = sys.argv[1:5]
sys.path[:0] = [build, runtime]
assert callable(getattr(importlib.import_module(module), attr)), f"{module}.{attr} is not callable"
import boto3, botocore
for sdk in (boto3, botocore):  # the bundled SDK shadows the runtime's
    assert sdk.__file__.startswith(build + os.sep), f"{sdk.__name__} imported from {sdk.__file__}"
# Every module that came from the build came with its bytecode: 3.12's magic number, and
# unchecked-hash (flags 0b01): never compared with the source, whatever the zip did to mtimes.
loaded = [m for m in list(sys.modules.values()) if (getattr(m, "__file__", None) or "").startswith(build + os.sep)]
assert len(loaded) > 50, f"only {len(loaded)} modules imported from the build"
for m in loaded:
    if not m.__file__.endswith(".py"):
        continue  # extension modules (.so)
    cached = importlib.util.cache_from_source(m.__file__)
    assert os.path.isfile(cached), f"{m.__name__}: no {cached}"
    with open(cached, "rb") as f:
        header = f.read(8)
    assert header[:4] == importlib.util.MAGIC_NUMBER, f"{cached}: not CPython 3.12 bytecode"
    assert int.from_bytes(header[4:8], "little") == 0b01, f"{cached}: not an unchecked-hash .pyc"
"""


@pytest.mark.slow
def test_sam_build_packages_code_and_requirements(tmp_path: Path) -> None:
    py312 = python312_dir()
    assert py312, "sam build of a python3.12 runtime needs python3.12 on PATH (pyenv install 3.12)"
    build_dir = tmp_path / "build"
    env = {**SAM_ENV, "PATH": f"{py312}{os.pathsep}{os.environ['PATH']}"}
    started = time.monotonic()
    result = subprocess.run(
        [
            tool("sam"), "build", "--template-file", str(TEMPLATE), "--base-dir", str(REPO),
            "--build-dir", str(build_dir), "--cache-dir", str(tmp_path / "cache"),
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"sam build failed:\n{result.stdout}{result.stderr}"
    print(f"sam build took {elapsed:.1f} s")

    for fn in ("TriageFunction", "ClassifyFunction", "DecisionFunction"):
        built = build_dir / fn
        assert (built / "incident_responder" / "__init__.py").is_file(), f"{fn}: package not copied"
        assert (built / "incident_responder" / "rollback" / "endpoint.py").is_file(), f"{fn}: rollback/ not copied"
        assert (built / "incident_responder" / "models.py").is_file()
        # The demo's emulator and the CLI are for terminals: they never ship in a function.
        assert not (built / "incident_responder" / "demo").exists() and not (built / "incident_responder" / "cli.py").exists()
        installed = {
            re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() for p in built.glob("*.dist-info")
        }
        for line in (FUNCTIONS / "requirements.txt").read_text().splitlines():
            line = line.split("#")[0].strip()
            if not line:
                continue
            name = re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]
            assert re.sub(r"[-_.]+", "_", name).lower() in installed, f"{fn}: requirement {name} not installed"
        # Compiled extensions must be for the Lambda runtime (CPython 3.12 on x86_64 Linux).
        for so in built.rglob("*.so"):
            tag = so.name.split(".")[-2] if so.name.count(".") >= 2 else ""
            assert tag in ("cpython-312-x86_64-linux-gnu", "abi3") or not tag.startswith(("cpython", "pypy")), (
                f"{fn}: {so.relative_to(built)} is not built for python3.12 x86_64"
            )
    # The built package imports under CPython 3.12 with only what Lambda's runtime adds (boto3,
    # s3transfer): no site-packages, so a requirement missing from functions/requirements.txt shows.
    runtime_dir = tmp_path / "lambda-runtime"
    runtime_dir.mkdir()
    for provided in ("boto3", "s3transfer"):
        spec = importlib.util.find_spec(provided)
        assert spec and spec.submodule_search_locations, provided
        (runtime_dir / provided).symlink_to(list(spec.submodule_search_locations)[0])
    cfn = transformed()
    for fn in ("TriageFunction", "ClassifyFunction"):
        module, _, attr = _lambda_function(cfn, fn)["Handler"].rpartition(".")
        lambda_env = {
            "PATH": "/usr/bin:/bin", "AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-2",
            "AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline",
            # Unroutable: an import that calls AWS fails instead of reaching it.
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "INCIDENT_TABLE": "incidents", "POWERTOOLS_SERVICE_NAME": "incident-responder",
            "POWERTOOLS_METRICS_NAMESPACE": "ThreeDGSIncidentResponder",
        }
        probe = subprocess.run(
            [
                str(Path(py312) / "python3.12"), "-S", "-c", IMPORT_PROBE, module, attr,
                str(build_dir / fn), str(runtime_dir),
            ],
            cwd=tmp_path, env={**lambda_env, "PYTHONDONTWRITEBYTECODE": "1"},  # /var/task is read-only
            capture_output=True, text=True, timeout=120,
        )
        assert probe.returncode == 0, f"{fn}: {module}.{attr} does not import from the build:\n{probe.stderr}"

    built_template = (build_dir / "template.yaml").read_text()
    assert "CodeUri: TriageFunction" in built_template and "CodeUri: ClassifyFunction" in built_template

    for fn in ("TriageFunction", "ClassifyFunction"):
        built = build_dir / fn
        # Bytecode is shipped: /var/task is read-only, so a .py without its cpython-312 .pyc is
        # compiled again on every cold start. (Other versions' .pyc would be ignored by 3.12.)
        uncompiled = [
            str(py.relative_to(built)) for py in built.rglob("*.py")
            if not (py.parent / "__pycache__" / f"{py.stem}.cpython-312.pyc").is_file()
        ]
        assert not uncompiled, f"{fn}: {len(uncompiled)} modules without a cpython-312 .pyc: {uncompiled[:10]}"
        assert not [p for p in built.rglob("*.pyc") if "cpython-312" not in p.name], f"{fn}: foreign .pyc"
        assert not list((built / "incident_responder").rglob("tests")), f"{fn}: tests shipped"
        # boto3 is bundled and matches the bundled botocore (aws-xray-sdk pulls botocore in; the
        # runtime's older boto3 over it would be a mismatched pair).
        dists = {d.metadata["Name"].lower(): d for d in importlib.metadata.distributions(path=[str(built)])}
        assert {"boto3", "botocore", "s3transfer"} <= set(dists), f"{fn}: boto3 not bundled: {sorted(dists)}"
        botocore_pins = [
            Requirement(r) for r in dists["boto3"].requires or []
            if Requirement(r).name == "botocore" and Requirement(r).marker is None
        ]
        assert botocore_pins, f"{fn}: boto3 {dists['boto3'].version} declares no botocore requirement"
        for pin in botocore_pins:
            assert pin.specifier.contains(dists["botocore"].version, prereleases=True), (
                f"{fn}: bundled boto3 {dists['boto3'].version} wants {pin}, "
                f"bundled botocore is {dists['botocore'].version}"
            )


# ---------------------------------------------------------------- functions


def test_functions_keep_the_contract_with_the_code() -> None:
    cfn = transformed()
    triage = _lambda_function(cfn, "TriageFunction")
    assert triage["Handler"] == "incident_responder.handlers.triage.handler"
    assert triage["Runtime"] == "python3.12"
    assert triage["Architectures"] == ["x86_64"]
    assert triage["Timeout"] == 120
    assert triage["MemorySize"] == 512
    assert triage["TracingConfig"] == {"Mode": "Active"}
    env = triage["Environment"]["Variables"]
    assert TRIAGE_ENV <= set(env), f"missing env vars: {sorted(TRIAGE_ENV - set(env))}"
    assert env["POWERTOOLS_SERVICE_NAME"] == "incident-responder"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ThreeDGSIncidentResponder"
    assert env["POWERTOOLS_LOG_LEVEL"] == _ref("LogLevel")
    assert env["SLACK_WEBHOOK_SECRET_ARN"] == _ref("SlackWebhookSecretArn")
    assert env["LOG_TAIL_BYTES"] == _ref("LogTailBytes")
    assert env["LOG_WAIT_SECONDS"] == _ref("LogWaitSeconds")
    assert _getatt_target(env["INCIDENT_TABLE"]) == "IncidentsTable"
    assert _getatt_target(env["SNS_TOPIC_ARN"]) == "NotificationTopic"
    assert int(env["IDEMPOTENCY_TTL_SECONDS"]) > EVENTBRIDGE_RETRY_WINDOW_S

    classify = _lambda_function(cfn, "ClassifyFunction")
    assert classify["Handler"] == "incident_responder.handlers.classify.handler"
    assert classify["Runtime"] == "python3.12"
    assert not raw()["Resources"]["ClassifyFunction"]["Properties"].get("Events")


def test_every_function_is_built_by_the_makefile_that_ships_bytecode() -> None:
    """sam build runs functions/Makefile's build-<LogicalId> for each function (the CodeUri holds
    it); the python_pip default would ship no .pyc."""
    tpl = raw()
    code_uri = tpl["Globals"]["Function"]["CodeUri"]
    makefile = (REPO / code_uri / "Makefile").read_text()
    functions = resources_of_type(tpl, "AWS::Serverless::Function")
    assert functions
    for logical_id, fn in functions.items():
        assert fn.get("Metadata", {}).get("BuildMethod") == "makefile", f"{logical_id}: not built by the Makefile"
        assert fn["Properties"].get("CodeUri", code_uri) == code_uri
        assert re.search(rf"^(\S+ )*build-{logical_id}( \S+)*:", makefile, re.M), (
            f"{code_uri}Makefile has no build-{logical_id} target"
        )
    assert "compileall" in makefile and "unchecked-hash" in makefile


def test_log_wait_always_fits_in_the_triage_timeout() -> None:
    params = raw()["Parameters"]
    timeout = _lambda_function(transformed(), "TriageFunction")["Timeout"]
    assert int(params["LogWaitSeconds"]["MaxValue"]) + 20 <= timeout
    assert int(params["LogWaitSeconds"]["Default"]) <= int(params["LogWaitSeconds"]["MaxValue"])


@pytest.mark.parametrize("function_id", ["TriageFunction", "ClassifyFunction", "DecisionFunction"])
def test_handler_resolves_to_a_module_defining_it(function_id: str) -> None:
    handler = _lambda_function(transformed(), function_id)["Handler"]
    module, _, attr = handler.rpartition(".")
    path = FUNCTIONS / Path(*module.split(".")).with_suffix(".py")
    assert path.is_file(), f"{function_id}: Handler {handler!r} needs {path.relative_to(REPO)}"
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    assert attr in names, f"{path.relative_to(REPO)} defines no top-level {attr!r}"


# Set by the Lambda runtime itself, or optional tunables of a library.
RUNTIME_PROVIDED = re.compile(r"^(AWS_|_X_AMZN_|_HANDLER$|LAMBDA_|POWERTOOLS_)")
# Modules that never run in Lambda (developer's machine: the demo emulator and the CLI).
NOT_IN_LAMBDA = ("demo", "cli.py")


def _env_read_in_lambda() -> dict[str, list[str]]:
    found = lambda_env_names_read_by(PACKAGE)
    return {
        name: files
        for name, files in found.items()
        if any(not Path(f).relative_to(PACKAGE.relative_to(REPO)).parts[0] in NOT_IN_LAMBDA for f in files)
    }


def test_every_env_var_the_code_reads_is_set_in_the_template() -> None:
    env = _lambda_function(transformed(), "TriageFunction")["Environment"]["Variables"]
    unset = {
        name: files for name, files in _env_read_in_lambda().items()
        if name not in env and not RUNTIME_PROVIDED.match(name)
    }
    assert not unset, f"read by the code but not set on TriageFunction in template.yaml: {unset}"


def test_every_env_var_the_template_sets_is_read_by_the_code() -> None:
    """No dead configuration: a renamed variable in the code must be renamed in the template."""
    triage_py = PACKAGE / "handlers" / "triage.py"
    assert triage_py.is_file(), f"{triage_py.relative_to(REPO)} does not exist yet"
    env = _lambda_function(transformed(), "TriageFunction")["Environment"]["Variables"]
    mentioned = string_constants_in(PACKAGE, skip=NOT_IN_LAMBDA)
    unread = sorted(name for name in env if not name.startswith("POWERTOOLS_") and name not in mentioned)
    assert not unread, f"set in template.yaml but read nowhere in {PACKAGE.relative_to(REPO)}: {unread}"


# ---------------------------------------------------------------- EventBridge


def test_the_rules_exist_on_the_triage_function() -> None:
    rules = eventbridge_rules()
    assert set(rules) == EXPECTED_RULES
    assert {r["_function"] for r in rules.values()} == {"TriageFunction"}


def test_every_eventbridge_target_has_retry_and_a_dead_letter_queue_it_may_write() -> None:
    cfn = transformed()
    rules = resources_of_type(cfn, "AWS::Events::Rule")
    assert len(rules) == len(EXPECTED_RULES)
    queues = resources_of_type(cfn, "AWS::SQS::Queue")
    policies = resources_of_type(cfn, "AWS::SQS::QueuePolicy")
    # One policy per queue: a second AWS::SQS::QueuePolicy on the same queue replaces the first.
    policed = [_getatt_target(q) for p in policies.values() for q in p["Properties"]["Queues"]]
    assert len(policed) == len(set(policed)), f"several QueuePolicy resources on one queue: {policed}"
    for rule_id, rule in rules.items():
        targets = rule["Properties"]["Targets"]
        assert targets, rule_id
        for target in targets:
            retry = target.get("RetryPolicy")
            assert retry, f"{rule_id}: target without RetryPolicy"
            assert 0 < retry["MaximumRetryAttempts"] <= 185
            assert 60 <= retry["MaximumEventAgeInSeconds"] <= EVENTBRIDGE_RETRY_WINDOW_S
            dlq = _getatt_target(target.get("DeadLetterConfig", {}).get("Arn"))
            assert dlq in queues, f"{rule_id}: target without an SQS DeadLetterConfig in this stack"
            # EventBridge needs the queue's resource policy to allow exactly this rule.
            allowing = [
                s
                for p in policies.values()
                if dlq in [_getatt_target(q) for q in p["Properties"]["Queues"]]
                for s in p["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Allow"
                and s["Principal"] == {"Service": "events.amazonaws.com"}
                and "sqs:SendMessage" in _as_list(s["Action"])
                and rule_id in [_getatt_target(a) for a in _as_list(s["Condition"]["ArnEquals"]["aws:SourceArn"])]
            ]
            assert allowing, f"{rule_id}: the DLQ {dlq} does not let this rule send to it"


def test_training_job_rules_filter_on_the_name_prefix() -> None:
    rules = eventbridge_rules()
    for name, status in (("TrainingJobFailed", "Failed"), ("TrainingJobCompleted", "Completed")):
        pattern = rules[name]["Pattern"]
        assert pattern["source"] == ["aws.sagemaker"]
        assert pattern["detail-type"] == ["SageMaker Training Job State Change"]
        assert pattern["detail"]["TrainingJobStatus"] == [status]
        assert pattern["detail"]["TrainingJobName"] == [{"prefix": _ref("TrainingJobNamePrefix")}]


def test_pipeline_rule_matches_only_the_pipeline_state_machine() -> None:
    """The responder never reacts to its own (or any other) state machine's failures."""
    tpl = raw()
    rules = eventbridge_rules()
    pattern = rules["PipelineExecutionFailed"]["Pattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    # Exactly one exact value: the parameter; no prefix / wildcard / anything-but.
    assert pattern["detail"]["stateMachineArn"] == [_ref("PipelineStateMachineArn")]
    assert set(pattern) == {"source", "detail-type", "detail"}
    # Every rule on aws.states pins the state machine the same way.
    for name, rule in rules.items():
        if "aws.states" in rule["Pattern"].get("source", []):
            assert rule["Pattern"]["detail"].get("stateMachineArn") == [_ref("PipelineStateMachineArn")], name
    own = [*resources_of_type(tpl, "AWS::Serverless::StateMachine"), *resources_of_type(tpl, "AWS::StepFunctions::StateMachine")]
    assert not any(o in json.dumps(pattern) for o in own), "the pipeline rule refers to one of our state machines"
    param = tpl["Parameters"]["PipelineStateMachineArn"]
    assert "Default" not in param or re.fullmatch(param["AllowedPattern"], param["Default"])
    allowed = re.compile(param["AllowedPattern"])
    assert allowed.fullmatch(TEST_PIPELINE_ARN)
    for bad in (
        "",
        "arn:aws:states:us-west-2:123456789012:stateMachine:*",
        "arn:aws:states:us-west-2:123456789012:execution:SpaceportMLPipeline:run-1",
        "arn:aws:lambda:us-west-2:123456789012:function:SpaceportMLPipeline",
    ):
        assert not allowed.fullmatch(bad), bad


def test_lambda_async_retries_twice_then_keeps_the_event_in_a_queue() -> None:
    cfn = transformed()
    configs = [
        c["Properties"] for c in resources_of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == _ref("TriageFunction")
    ]
    assert len(configs) == 1
    config = configs[0]
    assert config["MaximumRetryAttempts"] == 2
    queue = _getatt_target(config["DestinationConfig"]["OnFailure"]["Destination"])
    assert cfn["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    role = _getatt_target(_lambda_function(cfn, "TriageFunction")["Role"])
    sends = [
        s for s in _role_statements(cfn, role, {"HasSlackSecret": True, "HasGitHubToken": True})
        if "sqs:SendMessage" in _as_list(s["Action"]) and _getatt_target(s["Resource"]) == queue
    ]
    assert sends, "the triage role cannot send to its on-failure queue"


# ---------------------------------------------------------------- IAM


def _triage_statements(slack_on: bool) -> list[dict[str, Any]]:
    cfn = transformed()
    role = _getatt_target(_lambda_function(cfn, "TriageFunction")["Role"])
    return _role_statements(cfn, role, {"HasSlackSecret": slack_on, "HasGitHubToken": slack_on})


# What the code cannot show: actions AWS takes on the function's behalf with its role.
IMPLIED_BY_THE_PLATFORM = {
    "logs:CreateLogStream", "logs:PutLogEvents",      # the Lambda runtime writes the function's logs
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",  # Tracing: Active
}
IMPLIED_BY_THE_TEMPLATE = {
    "sqs:SendMessage": "Lambda delivers an event that failed every retry to the OnFailure queue",
    "kms:GenerateDataKey*": "publishing to the KMS-encrypted topic",
    "kms:Decrypt": "publishing to the KMS-encrypted topic",
}
# X-Ray's actions take no resource but "*" (no resource-level permissions exist for them).
ONLY_STAR = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# Modules only the DecisionFunction runs (its role is checked by tests/rollback/test_iam.py).
DECISION_FUNCTION_ONLY = {"handlers/decide.py", "rollback/endpoint.py", "rollback/decision.py",
                          # and the GitHub webhook function's own (its role is checked against its calls in
                          # tests/integration/test_github_webhook.py)
                          "handlers/github_webhook.py", "github/handoff.py", "github/deliveries.py"}


def _code_actions() -> dict[str, set[str]]:
    from aws_lambda_powertools.utilities.idempotency.persistence import dynamodb as idempotency_store

    from incident_responder.clients import SERVICES
    from tests.template.aws_calls import iam_actions

    ours = [p for p in PACKAGE.rglob("*.py") if not set(p.relative_to(PACKAGE).parts) & {"demo", "cli.py"}
            and p.relative_to(PACKAGE).as_posix() not in DECISION_FUNCTION_ONLY]
    found = iam_actions(ours, SERVICES)
    for action, files in iam_actions([Path(idempotency_store.__file__)], ["dynamodb"]).items():
        found.setdefault(action, set()).update(files)
    return found


@pytest.mark.parametrize("slack_on", [False, True], ids=["slack-off", "slack-on"])
def test_triage_role_grants_exactly_what_the_code_calls(slack_on: bool) -> None:
    statements = _triage_statements(slack_on)
    granted = {a for s in statements for a in _as_list(s["Action"])}
    called = set(_code_actions())
    # GetSecretValue stays called with Slack off: the decision-link key (checked below).
    expected = called | IMPLIED_BY_THE_PLATFORM | set(IMPLIED_BY_THE_TEMPLATE)
    assert granted - expected == set(), f"granted but never called: {sorted(granted - expected)}"
    assert expected - granted == set(), f"called but not granted: {sorted(expected - granted)}"
    for s in statements:
        assert s["Effect"] == "Allow"
        for resource in _as_list(s["Resource"]):
            if resource == "*":
                assert set(_as_list(s["Action"])) <= ONLY_STAR, f"{s.get('Sid')}: Resource '*' for {s['Action']}"

    def resources_for(action: str) -> str:
        return json.dumps([s["Resource"] for s in statements if action in _as_list(s["Action"])])

    assert "training-job/${TrainingJobNamePrefix}*" in resources_for("sagemaker:DescribeTrainingJob")
    assert "/aws/sagemaker/TrainingJobs" in resources_for("logs:GetLogEvents")
    assert "/aws/sagemaker/TrainingJobs" in resources_for("logs:DescribeLogStreams")
    assert "PipelineStateMachineArn" in resources_for("states:GetExecutionHistory")
    assert ":execution:" in resources_for("states:GetExecutionHistory")
    assert "repository/${TrainingImageRepository}" in resources_for("ecr:DescribeImages")
    assert "NotificationTopic" in resources_for("sns:Publish")
    assert "NotificationKey" in resources_for("kms:GenerateDataKey*")
    assert "FailedInvocationsQueue" in resources_for("sqs:SendMessage")
    assert "/aws/lambda/${AWS::StackName}-triage:*" in resources_for("logs:PutLogEvents")
    for action in ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert resources_for(action) == json.dumps([{"Fn::GetAtt": ["IncidentsTable", "Arn"]}]), action
    secrets = [s for s in statements if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))]
    # The decision-link key (the report's signed approve/reject links), the Slack webhook only when Slack is
    # on, and GitHub's token only when one is configured (the two switch together here).
    expected_secrets = [("secretsmanager:GetSecretValue", _ref("DecisionLinkKey"))]
    if slack_on:
        expected_secrets.append(("secretsmanager:GetSecretValue", _ref("SlackWebhookSecretArn")))
        expected_secrets.append(("secretsmanager:GetSecretValue", _ref("GitHubTokenSecretArn")))
    assert sorted(((s["Action"], s["Resource"]) for s in secrets), key=str) == sorted(expected_secrets, key=str)


def test_the_code_derived_action_list_sees_every_client_call() -> None:
    # A guard on the extraction itself: the calls it must find in today's code.
    found = _code_actions()
    assert {"sagemaker:DescribeTrainingJob", "states:GetExecutionHistory", "logs:GetLogEvents",
            "ecr:DescribeImages", "sns:Publish", "dynamodb:PutItem", "dynamodb:DeleteItem"} <= set(found)
    assert "states:DescribeExecution" not in found


def test_cloudwatch_may_use_the_topic_key_only_for_this_account() -> None:
    policy = raw()["Resources"]["NotificationKey"]["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in policy if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_classify_function_has_only_its_logs_and_traces() -> None:
    cfn = transformed()
    role = _getatt_target(_lambda_function(cfn, "ClassifyFunction")["Role"])
    statements = _role_statements(cfn, role, {"HasSlackSecret": True, "HasGitHubToken": True})
    assert {a for s in statements for a in _as_list(s["Action"])} == IMPLIED_BY_THE_PLATFORM
    logs = next(s for s in statements if "logs:PutLogEvents" in _as_list(s["Action"]))
    assert "/aws/lambda/${AWS::StackName}-classify:*" in json.dumps(logs["Resource"])


# ---------------------------------------------------------------- storage, topic, alarms


def test_incidents_table() -> None:
    props = raw()["Resources"]["IncidentsTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_topic_is_encrypted_with_a_key_alarms_may_use() -> None:
    tpl = raw()
    topic = tpl["Resources"]["NotificationTopic"]["Properties"]
    key_id = _getatt_target(topic["KmsMasterKeyId"])
    key = tpl["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(_as_list(cloudwatch[0]["Action"]))
    # The email subscription exists only when an address is given.
    subs = resources_of_type(tpl, "AWS::SNS::Subscription")
    assert subs and all(s.get("Condition") == "HasAlertEmail" for s in subs.values())
    assert tpl["Conditions"]["HasAlertEmail"] == {"Fn::Not": [{"Fn::Equals": [_ref("AlertEmail"), ""]}]}


def _alarms() -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources_of_type(raw(), "AWS::CloudWatch::Alarm").values()]


def _alarm_reports_any_positive_value(alarm: dict[str, Any]) -> bool:
    return (
        alarm["ComparisonOperator"] == "GreaterThanThreshold"
        and alarm["Threshold"] == 0
        and _ref("NotificationTopic") in alarm["AlarmActions"]
        and alarm.get("TreatMissingData") == "notBreaching"
    )


def test_every_queue_has_a_depth_alarm_to_the_topic() -> None:
    queues = resources_of_type(transformed(), "AWS::SQS::Queue")
    assert len(queues) >= 2  # EventBridge DLQ + Lambda on-failure queue
    for queue_id in queues:
        alarms = [
            a for a in _alarms()
            if a["Namespace"] == "AWS/SQS" and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}} in a["Dimensions"]
        ]
        assert len(alarms) == 1 and _alarm_reports_any_positive_value(alarms[0]), queue_id


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_triage_function_alarm(metric: str) -> None:
    alarms = [
        a for a in _alarms()
        if a["Namespace"] == "AWS/Lambda" and a["MetricName"] == metric
        and a["Dimensions"] == [{"Name": "FunctionName", "Value": _ref("TriageFunction")}]
    ]
    assert len(alarms) == 1 and _alarm_reports_any_positive_value(alarms[0])


# ---------------------------------------------------------------- parameters, outputs, secrets


def test_parameters_and_defaults() -> None:
    params = raw()["Parameters"]
    assert params["TrainingJobNamePrefix"]["Default"] == "3dgs-"
    assert params["SlackWebhookSecretArn"]["Default"] == ""
    assert params["AlertEmail"]["Default"] == ""
    assert int(params["LogTailBytes"]["Default"]) == 65536
    assert int(params["LogWaitSeconds"]["Default"]) == 60
    assert "LogLevel" in params
    for name, param in params.items():
        if "AllowedPattern" in param and "Default" in param:
            assert re.fullmatch(param["AllowedPattern"], str(param["Default"])), name
    slack = re.compile(params["SlackWebhookSecretArn"]["AllowedPattern"])
    assert slack.fullmatch("arn:aws:secretsmanager:us-west-2:123456789012:secret:3dgs/slack-webhook-AbC123")
    assert not slack.fullmatch("https://hooks.slack.com/services/T000/B000/XXXX")
    prefix = re.compile(params["TrainingJobNamePrefix"]["AllowedPattern"])
    assert not prefix.fullmatch("") and not prefix.fullmatch("3DGS-")


def test_outputs() -> None:
    outputs = raw()["Outputs"]
    assert {
        "TriageFunctionArn", "ClassifyFunctionArn", "NotificationTopicArn", "IncidentsTableName",
        "EventsDeadLetterQueueUrl", "FailedInvocationsQueueUrl",
    } <= set(outputs)


SECRET_LOOKING = re.compile(
    r"hooks\.slack\.com/services/|xox[abposr]-|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY"
)


def test_no_secrets_in_the_template() -> None:
    for path in (TEMPLATE, REPO / "samconfig.toml"):
        if path.exists():
            assert not SECRET_LOOKING.search(path.read_text()), f"{path.name} holds something secret-looking"
    # A parameter that could carry a secret value (not an ARN to one) must be NoEcho.
    for name, param in raw()["Parameters"].items():
        if re.search(r"token|password|webhook(?!secretarn)|apikey|signing", name, re.I):
            assert param.get("NoEcho") is True, f"{name} may carry a secret: NoEcho"

