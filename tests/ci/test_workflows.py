"""The GitHub workflows cannot fail the way the troubleshooting guide's did.

actionlint (with shellcheck on every run block when it is installed) parses each workflow
as GitHub does; on top of it: no heredocs in run blocks (the guide's "workflow file issue"),
AWS credentials only through OIDC, and the training image's build agrees with its Dockerfile
and failure codes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from splat_trainer.failure import GPU_NOT_VISIBLE

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml")) + sorted(
    (REPO / ".github" / "workflows").glob("*.yaml")
)
BUILD_WORKFLOW = REPO / ".github" / "workflows" / "build-training-image.yml"
DOCKERFILE = REPO / "training" / "Dockerfile"
# Composite actions: actionlint reads their metadata only through a workflow that uses them by
# local path (triage-failed-run.yml does), and never their run blocks: shellcheck sees those below.
ACTIONS = sorted((REPO / ".github" / "actions").glob("*/action.yml"))
TRIAGE_ACTION = REPO / ".github" / "actions" / "triage-failed-run" / "action.yml"
TRIAGE_WORKFLOW = REPO / ".github" / "workflows" / "triage-failed-run.yml"


def _tool(name: str) -> str:
    """A linter from the venv that runs the tests (requirements-dev.txt), else from PATH."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -r requirements-dev.txt")
    return found


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    command = [_tool("actionlint"), "-no-color", "-oneline"]
    shellcheck = Path(sys.executable).parent / "shellcheck"
    # An absolute path: actionlint refuses a shellcheck that resolves inside the checkout.
    command += ["-shellcheck", str(shellcheck.resolve())] if shellcheck.exists() else []
    return subprocess.run([*command, str(path)], capture_output=True, text=True, cwd=REPO, timeout=120)


def _load(path_or_text: Path | str) -> dict[str, Any]:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    return yaml.safe_load(text)


def _steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (job_id, step)
        for job_id, job in (workflow.get("jobs") or {}).items()
        for step in job.get("steps") or []
    ]


# A heredoc operator (`<<EOF`, `<< 'EOF'`, `<<-"END"`), not a here-string (`<<<`).
HEREDOC = re.compile(r"(?<!<)<<-?\s*['\"]?[A-Za-z_][A-Za-z0-9_]*['\"]?")


def heredocs_in_run_blocks(workflow: dict[str, Any]) -> list[str]:
    return [
        f"job {job_id!r}, step {step.get('name', step.get('uses', '?'))!r}: {match.group(0)!r}"
        for job_id, step in _steps(workflow)
        for match in HEREDOC.finditer(str(step.get("run", "")))
    ]


def _permissions_grant_id_token(permissions: Any) -> bool:
    return permissions == "write-all" or (isinstance(permissions, dict) and permissions.get("id-token") == "write")


def credential_problems(workflow: dict[str, Any]) -> list[str]:
    """Every configure-aws-credentials step assumes a role through OIDC, with the token allowed."""
    problems = []
    for job_id, job in (workflow.get("jobs") or {}).items():
        for step in job.get("steps") or []:
            if not str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
                continue
            inputs = step.get("with") or {}
            name = step.get("name", step["uses"])
            if "role-to-assume" not in inputs:
                problems.append(f"job {job_id!r}, step {name!r}: no role-to-assume (OIDC)")
            if {"aws-access-key-id", "aws-secret-access-key"} & set(inputs):
                problems.append(f"job {job_id!r}, step {name!r}: long-lived access keys instead of OIDC")
            permissions = job.get("permissions", workflow.get("permissions"))
            if not _permissions_grant_id_token(permissions):
                problems.append(f"job {job_id!r}: permissions do not grant id-token: write for OIDC")
    return problems


def test_there_are_workflows_to_check():
    names = {p.name for p in WORKFLOWS}
    assert {"build-training-image.yml", "deploy-responder.yml", "triage-failed-run.yml"} <= names, names
    assert TRIAGE_ACTION in ACTIONS, ACTIONS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_accepts_the_workflow(workflow: Path):
    result = _actionlint(workflow)
    assert result.returncode == 0, f"actionlint rejects {workflow.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_no_heredoc_in_any_run_block(workflow: Path):
    assert heredocs_in_run_blocks(_load(workflow)) == []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_aws_credentials_come_from_oidc(workflow: Path):
    assert credential_problems(_load(workflow)) == []


# The checks above must catch what they look for: the guide's own broken examples.
GUIDE_HEREDOC_WORKFLOW = """
on: push
jobs:
  bootstrap:
    runs-on: ubuntu-latest
    steps:
      - name: Write trust policy
        run: |
          cat > trust.json << 'EOF'
          {"Version": "2012-10-17"}
          EOF
"""
GUIDE_ACCESS_KEY_WORKFLOW = """
on: push
permissions:
  contents: read
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - name: Configure AWS credentials (staging via access keys)
        uses: aws-actions/configure-aws-credentials@v6
        with:
          aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}
          aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
          aws-region: us-west-2
"""
OIDC_WITHOUT_ID_TOKEN_WORKFLOW = """
on: push
permissions:
  contents: read
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: aws-actions/configure-aws-credentials@v6
        with:
          role-to-assume: ${{ secrets.AWS_ROLE_TO_ASSUME }}
          aws-region: us-west-2
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat > trust.json << 'EOF'", "<< 'EOF'"),
        ('cat <<"END" > f', '<<"END"'),
        ("cat <<-EOF", "<<-EOF"),
        ("python - <<PY", "<<PY"),
    ],
)
def test_heredoc_check_catches_every_heredoc_form(text: str, expected: str):
    workflow = {"jobs": {"j": {"steps": [{"name": "s", "run": text}]}}}
    found = heredocs_in_run_blocks(workflow)
    assert len(found) == 1 and repr(expected) in found[0], found


def test_heredoc_check_catches_the_guides_example_and_allows_here_strings():
    assert len(heredocs_in_run_blocks(_load(GUIDE_HEREDOC_WORKFLOW))) == 1
    assert heredocs_in_run_blocks({"jobs": {"j": {"steps": [{"run": "grep x <<< \"$y\""}]}}}) == []


@pytest.mark.parametrize(
    ("text", "expected_problems"),
    [
        (GUIDE_ACCESS_KEY_WORKFLOW, ["no role-to-assume", "long-lived access keys", "id-token: write"]),
        (OIDC_WITHOUT_ID_TOKEN_WORKFLOW, ["id-token: write"]),
    ],
    ids=["guide-staging-access-keys", "oidc-without-id-token-permission"],
)
def test_credential_check_catches_non_oidc_setups(text: str, expected_problems: list[str]):
    problems = credential_problems(_load(text))
    assert len(problems) == len(expected_problems), problems
    for problem, expected in zip(problems, expected_problems, strict=True):
        assert expected in problem


def _dockerfile_default_arch_list() -> str:
    match = re.search(r'^ARG TORCH_CUDA_ARCH_LIST="([^"]+)"', DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "training/Dockerfile declares no ARG TORCH_CUDA_ARCH_LIST default"
    return match.group(1)


def test_image_build_uses_the_dockerfiles_arch_list_for_linux_amd64():
    workflow = _load(BUILD_WORKFLOW)
    assert workflow["env"]["TORCH_CUDA_ARCH_LIST"] == _dockerfile_default_arch_list()
    build_runs = [s["run"] for _, s in _steps(workflow) if "docker buildx build" in str(s.get("run", ""))]
    assert len(build_runs) == 1, build_runs
    assert "--platform linux/amd64" in build_runs[0]
    assert '--build-arg "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST}"' in build_runs[0]


def test_image_smoke_test_expects_the_gpu_not_visible_failure_code():
    # The runner has no GPU: the smoke test checks the image's real failure path, so its
    # expected exit code and tag must be the registry's, not a copy that drifts.
    runs = "\n".join(str(s.get("run", "")) for _, s in _steps(_load(BUILD_WORKFLOW)))
    assert f'test "${{status}}" -eq {GPU_NOT_VISIBLE.exit_code}' in runs
    assert f"grep -q '^\\[{GPU_NOT_VISIBLE.category}/{GPU_NOT_VISIBLE.cause}\\] '" in runs


def test_image_is_pushed_with_the_commit_sha_and_latest():
    runs = "\n".join(str(s.get("run", "")) for _, s in _steps(_load(BUILD_WORKFLOW)))
    assert 'docker push "${image}:${GITHUB_SHA}"' in runs
    assert 'docker push "${image}:latest"' in runs


DEPLOY_WORKFLOW = REPO / ".github" / "workflows" / "deploy-responder.yml"
TEMPLATE = REPO / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml's short-form intrinsics (!Ref, !Sub, ...) as plain values."""


_CloudFormationLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)
)


def _template_parameters() -> dict[str, dict[str, Any]]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)["Parameters"]


def _deploy_run() -> str:
    runs = [str(s.get("run", "")) for _, s in _steps(_load(DEPLOY_WORKFLOW)) if "sam deploy" in str(s.get("run", ""))]
    assert len(runs) == 1, runs
    return runs[0]


def test_deploy_overrides_only_parameters_the_template_declares():
    overridden = set(re.findall(r"\b([A-Z][A-Za-z0-9]+)=\$\{", _deploy_run()))
    assert overridden, "sam deploy passes no --parameter-overrides"
    assert overridden <= set(_template_parameters()), overridden - set(_template_parameters())


def test_deploy_passes_every_parameter_without_a_default():
    required = {name for name, spec in _template_parameters().items() if "Default" not in spec}
    overridden = set(re.findall(r"\b([A-Z][A-Za-z0-9]+)=\$\{", _deploy_run()))
    assert required <= overridden, f"sam deploy never sets {sorted(required - overridden)}"


def test_main_deploys_to_production_and_other_branches_to_staging():
    workflow = _load(DEPLOY_WORKFLOW)
    chooser = "${{ github.ref_name == 'main' && 'production' || 'staging' }}"
    assert workflow["jobs"]["deploy"]["environment"] == chooser
    assert workflow["env"]["DEPLOY_ENV"] == chooser
    assert '--stack-name "threedgs-incident-responder-${DEPLOY_ENV}"' in _deploy_run()


def test_smoke_test_never_mounts_over_the_code_folder():
    # /opt/ml/code holds the entry point: a volume on /opt/ml would hide it and the smoke
    # test would fail for a reason SageMaker never has (it mounts only /opt/ml's subfolders).
    runs = "\n".join(str(s.get("run", "")) for _, s in _steps(_load(BUILD_WORKFLOW)))
    mounts = re.findall(r"--volume\s+\"?[^\s:]+:(/[^\s\"]*)", runs)
    assert mounts, "the no-GPU smoke test reads the failure file through a volume"
    for target in mounts:
        assert target.rstrip("/") not in ("/opt/ml", "/opt", "/opt/ml/code"), target


def test_deploy_runs_the_readme_test_command_before_it_deploys():
    runs = [str(s.get("run", "")) for _, s in _steps(_load(DEPLOY_WORKFLOW))]
    readme_test = re.search(r"^make test\b", (REPO / "README.md").read_text(), re.M)
    assert readme_test, "the README no longer starts with `make test`"
    tests = next(i for i, run in enumerate(runs) if run.startswith("make test"))
    deploy = next(i for i, run in enumerate(runs) if "sam deploy" in run)
    assert tests < deploy


def _action_steps(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [("runs", step) for step in _load(path)["runs"].get("steps") or []]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda p: p.parent.name)
def test_composite_action_run_blocks_pass_shellcheck(action: Path):
    runs = [step for _, step in _action_steps(action) if "run" in step]
    assert runs, f"{action} has no run block to check"
    for step in runs:
        assert step.get("shell") == "bash", f"{step.get('name')!r}: composite run steps need shell: bash"
        # Values reach the script through env, never pasted in by ${{ }} (script injection, quoting).
        assert "${{" not in step["run"], f"{step.get('name')!r} expands an expression inside its script"
        result = subprocess.run([_tool("shellcheck"), "--shell=bash", "--severity=style", "-"], input=step["run"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"shellcheck rejects {step.get('name')!r}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("action", ACTIONS, ids=lambda p: p.parent.name)
def test_no_heredoc_in_any_composite_action_run_block(action: Path):
    assert heredocs_in_run_blocks({"jobs": {"runs": {"steps": [s for _, s in _action_steps(action)]}}}) == []


def test_shellcheck_check_catches_an_unquoted_variable():
    result = subprocess.run([_tool("shellcheck"), "--shell=bash", "--severity=style", "-"],
                            input='rm -rf $RUNNER_TEMP/x\n', capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "SC2086" in result.stdout


def test_actionlint_reads_the_triage_actions_inputs_through_its_workflow(tmp_path: Path):
    # The check above is only worth having if actionlint really resolves the local action:
    # an input the action does not declare must be refused.
    broken = TRIAGE_WORKFLOW.read_text().replace(
        "- uses: ./.github/actions/triage-failed-run",
        "- uses: ./.github/actions/triage-failed-run\n        with:\n          no-such-input: x",
    )
    assert broken != TRIAGE_WORKFLOW.read_text()
    # A copy of the action and the workflow in a scratch project: nothing is written into the checkout.
    (tmp_path / ".git").mkdir()
    shutil.copytree(TRIAGE_ACTION.parent, tmp_path / ".github" / "actions" / TRIAGE_ACTION.parent.name)
    (tmp_path / ".github" / "workflows").mkdir()
    probe = tmp_path / ".github" / "workflows" / TRIAGE_WORKFLOW.name
    probe.write_text(broken)
    result = subprocess.run([_tool("actionlint"), "-no-color", "-oneline", str(probe)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode != 0 and 'input "no-such-input" is not defined' in result.stdout, result.stdout


def test_triage_workflow_reads_only_and_uses_no_secret():
    workflow = _load(TRIAGE_WORKFLOW)
    assert workflow["permissions"] == {"actions": "read", "contents": "read"}
    assert "secrets." not in TRIAGE_WORKFLOW.read_text() + TRIAGE_ACTION.read_text()
    triage = workflow["jobs"]["triage"]
    assert "github.event.workflow_run.conclusion == 'failure'" in triage["if"]
    assert "permissions" not in triage


def test_triage_workflow_watches_workflows_that_exist():
    # yaml reads `on` as True.
    watched = set(_load(TRIAGE_WORKFLOW)[True]["workflow_run"]["workflows"])
    names = {_load(path)["name"] for path in WORKFLOWS if path != TRIAGE_WORKFLOW}
    assert watched and watched <= names, watched - names


def test_triage_action_installs_this_project_on_python_312():
    steps = [s for _, s in _action_steps(TRIAGE_ACTION)]
    setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.12"
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert '"${ACTION_PATH}/../../.."' in install["run"]
    assert (TRIAGE_ACTION.parent / "../../../pyproject.toml").resolve() == REPO / "pyproject.toml"


def test_triage_action_bounds_every_download():
    run = next(s["run"] for _, s in _action_steps(TRIAGE_ACTION) if "actions/jobs/" in s.get("run", ""))
    assert run.count("--max-filesize") == 2
    assert 'tail -c "${MAX_LOG}"' in run
    assert "--location-trusted" not in run


def _readme_caller_snippet() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Triage a failed GitHub Actions run without deploying anything", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "the README's triage section has no yaml caller snippet"
    return match.group(1)


def test_the_readmes_caller_snippet_passes_actionlint(tmp_path: Path):
    snippet = _readme_caller_snippet()
    assert "/.github/actions/triage-failed-run@" in snippet
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "triage.yml").write_text(snippet)
    result = subprocess.run([_tool("actionlint"), "-no-color", "-oneline", str(workflows / "triage.yml")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _load(snippet)["permissions"] == {"actions": "read", "contents": "read"}
