"""The workflow_run analyzer against the GitHub stand-in: the failed steps' own log tails (or the
job's, or its log from the API, each fallback said), bounded; a startup failure explained from the
workflow file at the run's commit; and never an exception out of the analyzer."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from incident_responder.evidence.base import GatherSettings, GatherState
from incident_responder.evidence.logs import MAX_EVENT_BYTES
from incident_responder.github import evidence as github_evidence
from incident_responder.github.api import GitHubApi
from incident_responder.github.evidence import gather_workflow_run, yaml_problem
from incident_responder.models import FailureEvent
from tests.support.github_standin import GitHubStandIn, StandInJob, StandInStep

REPO = "example-org/3dgs-pipeline"
SHA = "9f2c4e1b7a3d5c6e8f0a1b2c3d4e5f60718293a4"
WORKFLOW_FILES = Path(__file__).with_name("workflow_files")
CASES = yaml.safe_load((WORKFLOW_FILES / "cases.yaml").read_text())
CREDENTIALS_ERROR = ("Error: Credentials could not be loaded, please check your action inputs: "
                     "Could not load credentials from any providers")
BUILD = StandInJob(101, "build", "failure", (
    StandInStep("Set up job", log="Current runner version: '2.321.0'"),
    StandInStep("Configure AWS credentials", "failure", "Run aws-actions/configure-aws-credentials@v4\n" + CREDENTIALS_ERROR),
    StandInStep("Build image", "skipped"),
))
LINT = StandInJob(102, "lint", "success", (StandInStep("ruff", log="All checks passed!"),))


def event(conclusion: str = "failure", path: str = ".github/workflows/build-training-image.yml") -> FailureEvent:
    return FailureEvent(source="github", event_id="delivery-1", region="us-west-2",
                        time=datetime(2026, 11, 20, tzinfo=timezone.utc), status=conclusion, repository=REPO,
                        workflow_path=path, workflow_name="Build", run_id=7, run_attempt=1,
                        run_url=f"https://github.com/{REPO}/actions/runs/7", head_sha=SHA)


def gathered(github: GitHubStandIn | None, failure: FailureEvent, **settings) -> GatherState:
    state = GatherState(event=failure, settings=GatherSettings(**settings), sleep=time.sleep)
    api = GitHubApi(github.token, base_url=github.url, sleep=lambda s: None) if github else None
    gather_workflow_run(state, SimpleNamespace(github=api))
    return state


def test_the_failed_steps_own_log_tail_is_the_evidence(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD, LINT])
    state = gathered(github, event())
    run = state.workflow_run
    (job,) = run.failed_jobs
    assert (job.id, job.name, job.failed_step, job.failed_step_number) == (101, "build", "Configure AWS credentials", 2)
    assert job.html_url == f"https://github.com/{REPO}/actions/runs/7/job/101"
    assert state.logs.group == f"github:{REPO}/actions/runs/7"
    (tail,) = state.logs.streams
    assert tail.stream == "build/Configure AWS credentials"
    assert tail.lines == ["Run aws-actions/configure-aws-credentials@v4", CREDENTIALS_ERROR]  # timestamps stripped
    assert state.missing == []


def test_an_archive_without_step_files_gives_the_jobs_log_and_says_so(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD], step_files=False)
    state = gathered(github, event())
    (tail,) = state.logs.streams
    assert tail.stream == "build" and CREDENTIALS_ERROR in tail.lines
    assert any("no file for step 'Configure AWS credentials'" in m.reason for m in state.missing)


def test_an_archive_too_large_to_read_falls_back_to_the_jobs_own_log(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD], archive_bytes=b"PK" + b"\0" * 200_000)
    state = GatherState(event=event(), settings=GatherSettings(), sleep=time.sleep)
    api = GitHubApi(github.token, base_url=github.url, max_download_bytes=65_536)
    gather_workflow_run(state, SimpleNamespace(github=api))
    (tail,) = state.logs.streams
    assert CREDENTIALS_ERROR in tail.lines
    assert any("larger than 65536 bytes: not read" in m.reason for m in state.missing)


def test_an_unreadable_archive_falls_back_to_the_jobs_own_log(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD], archive_bytes=b"not a zip")
    state = gathered(github, event())
    assert CREDENTIALS_ERROR in state.logs.streams[0].lines
    assert any("not a readable zip" in m.reason for m in state.missing)


def test_tails_stay_within_the_byte_budget_and_long_lines_are_cut(github: GitHubStandIn) -> None:
    noise = "\n".join(f"compiling unit {i}" for i in range(20_000))
    huge_line = "x" * (MAX_EVENT_BYTES * 3)
    job = StandInJob(5, "build", "failure", (StandInStep("Build", "failure", f"{noise}\n{huge_line}\n{CREDENTIALS_ERROR}"),))
    github.add_run(REPO, 7, jobs=[job])
    state = gathered(github, event(), log_tail_bytes=16_384)
    (tail,) = state.logs.streams
    assert sum(len(line.encode()) + 1 for line in tail.lines) <= 16_384
    assert tail.truncated and tail.lines[-1] == CREDENTIALS_ERROR
    assert tail.cut_events == 1 and any("log line(s) longer than" in m.reason for m in state.missing)


def test_more_failed_jobs_than_streams_are_listed_but_not_all_read(github: GitHubStandIn) -> None:
    jobs = [StandInJob(i, f"shard-{i}", "failure", (StandInStep("test", "failure", f"FAILED shard {i}"),))
            for i in range(1, 5)]
    github.add_run(REPO, 7, jobs=jobs)
    state = gathered(github, event(), max_log_streams=2)
    assert len(state.workflow_run.failed_jobs) == 4
    assert [t.stream for t in state.logs.streams] == ["shard-1/test", "shard-2/test"]
    assert any("2 more failed job(s) not read" in m.reason for m in state.missing)


def test_without_a_token_the_run_is_still_named_and_the_gap_said() -> None:
    state = gathered(None, event())
    assert state.workflow_run.run_id == 7 and state.workflow_run.failed_jobs == []
    assert [m.source for m in state.missing] == ["github"] and "GITHUB_TOKEN_SECRET_ARN" in state.missing[0].reason


def test_a_run_github_no_longer_has_is_a_note_not_an_exception(github: GitHubStandIn) -> None:
    state = gathered(github, event())
    assert state.workflow_run.failed_jobs == [] and state.logs is None
    assert "not found (404" in state.missing[0].reason


def test_an_unexpected_error_never_leaves_the_analyzer(github: GitHubStandIn, monkeypatch) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    monkeypatch.setattr(github_evidence, "_tails", lambda *a: 1 / 0)
    state = gathered(github, event())
    assert "ZeroDivisionError" in state.missing[0].reason and state.workflow_run is not None


@pytest.mark.parametrize("name", CASES, ids=list(CASES))
def test_a_startup_failure_is_explained_from_the_workflow_file_at_the_commit(github: GitHubStandIn, name: str) -> None:
    path = f".github/workflows/{name}"
    github.add_file(REPO, path, SHA, (WORKFLOW_FILES / name).read_text())
    state = gathered(github, event("startup_failure", path))
    lines, expected = state.workflow_run.startup_error, CASES[name]
    if expected["line"] is None:
        assert lines == [] and "parses as YAML" in state.missing[0].reason
        return
    assert lines[:2] == [f"Invalid workflow file: {path}#L{expected['line']}",
                         f"You have an error in your yaml syntax on line {expected['line']}"]
    cut = [line for line in lines if "less indented than the `run: |` block" in line]
    assert cut == ([f"{path}#L{expected['cut_short']}: " + cut[0].split(": ", 1)[1]] if expected["cut_short"] else [])
    assert state.missing == []


def test_a_workflow_file_the_token_cannot_read_is_a_note(github: GitHubStandIn) -> None:
    state = gathered(github, event("startup_failure", ".github/workflows/missing.yml"))
    assert state.workflow_run.startup_error == [] and "contents:read" in state.missing[0].reason


def test_the_parser_never_expands_aliases() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    assert yaml_problem("bomb.yml", bomb) == []  # composed in linear time, not expanded to 4**20 nodes


def test_the_line_cap_is_the_cloudwatch_tails_cap() -> None:
    assert github_evidence.MAX_EVENT_BYTES == MAX_EVENT_BYTES


def test_a_step_log_that_inflates_past_the_cap_is_read_only_to_the_cap_and_said(github: GitHubStandIn) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:  # 20 MB inflated from ~20 KB
        zipped.writestr("build/1_Build.txt", ("A" * 999 + "\n") * 20_000 + CREDENTIALS_ERROR + "\n")
    job = StandInJob(5, "build", "failure", (StandInStep("Build", "failure", CREDENTIALS_ERROR),))
    github.add_run(REPO, 7, jobs=[job], archive_bytes=archive.getvalue())
    state = GatherState(event=event(), settings=GatherSettings(), sleep=time.sleep)
    gather_workflow_run(state, SimpleNamespace(github=GitHubApi(github.token, base_url=github.url,
                                                                max_download_bytes=1_048_576)))
    (tail,) = state.logs.streams
    assert tail.stream == "build/Build" and CREDENTIALS_ERROR not in tail.lines and tail.truncated
    assert any("inflates to more than 1048576 bytes" in m.reason for m in state.missing)
