"""The GitHub client against the stand-in over real HTTP: the redirect to the log archive without the
token, pagination, rate limits waited for within a bound or given up with a reason, 401/404 as notes,
and downloads that never read more than their cap."""

from __future__ import annotations

import zipfile

import pytest

from incident_responder.github.api import GitHubApi, GitHubError
from tests.support.github_standin import GitHubStandIn, StandInJob, StandInStep

REPO = "example-org/3dgs-pipeline"
CREDENTIALS_ERROR = ("Error: Credentials could not be loaded, please check your action inputs: "
                     "Could not load credentials from any providers")
BUILD = StandInJob(101, "build", "failure", (
    StandInStep("Set up job", log="Current runner version: '2.321.0'"),
    StandInStep("Configure AWS credentials", "failure", CREDENTIALS_ERROR),
    StandInStep("Build image", "skipped"),
))


def api_for(github: GitHubStandIn, **kwargs) -> tuple[GitHubApi, list[float]]:
    slept: list[float] = []
    kwargs.setdefault("sleep", slept.append)  # recorded, not slept: the next answer is the stand-in's to give
    return GitHubApi(github.token, base_url=github.url, **kwargs), slept


def test_jobs_are_read_from_every_page(github: GitHubStandIn) -> None:
    github.page_size = 2
    jobs = [StandInJob(i, f"shard-{i}", "success", (StandInStep("test"),)) for i in range(1, 6)]
    github.add_run(REPO, 7, jobs=jobs)
    api, _ = api_for(github)
    assert [job["name"] for job in api.jobs(REPO, 7, 1)] == [f"shard-{i}" for i in range(1, 6)]
    assert len(github.api_requests) == 3


def test_the_log_archive_comes_through_the_redirect_and_the_token_stays_with_the_api(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    api, _ = api_for(github)
    download = api.run_logs(REPO, 7, 1)
    names = zipfile.ZipFile(download.file).namelist()
    assert "build/2_Configure AWS credentials.txt" in names and "1_build.txt" in names
    assert not download.cut
    assert github.api_requests[-1].headers["authorization"] == f"Bearer {github.token}"
    (blob,) = github.blob_requests
    assert "authorization" not in blob.headers and blob.path.startswith("/blob/")


def test_a_download_stops_at_its_cap_and_says_so(github: GitHubStandIn) -> None:
    big = "\n".join(f"line {i} " + "x" * 100 for i in range(20_000))  # ~2.1 MB of log, stored uncompressed
    github.add_run(REPO, 7, jobs=[StandInJob(5, "build", "failure", (StandInStep("Run", "failure", big),))],
                   archive_bytes=big.encode())
    api, _ = api_for(github, max_download_bytes=65_536)
    download = api.run_logs(REPO, 7, 1)
    assert download.cut and download.bytes_read == 65_536 and len(download.file.read()) == 65_536


def test_a_job_log_keeps_only_its_tail(github: GitHubStandIn) -> None:
    lines = [f"step output {i}" for i in range(50_000)] + [CREDENTIALS_ERROR]
    github.add_run(REPO, 7, jobs=[StandInJob(5, "build", "failure", (StandInStep("Run", "failure", "\n".join(lines)),))])
    api, _ = api_for(github)
    download = api.job_log(REPO, 5, keep_tail=4096)
    assert len(download.data) == 4096 and download.data.decode().rstrip().endswith(CREDENTIALS_ERROR)
    assert download.bytes_read > 1_000_000 and not download.cut


@pytest.mark.parametrize("retry_after", [None, 3], ids=["x-ratelimit-reset", "retry-after"])
def test_a_rate_limited_answer_is_retried_after_a_wait_within_the_bound(github: GitHubStandIn, retry_after) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    github.rate_limit_next(1, status=403, reset_in=2, retry_after=retry_after)
    api, slept = api_for(github)
    assert [job["id"] for job in api.jobs(REPO, 7, 1)] == [101]
    assert len(slept) == 1 and 0 < slept[0] <= 5


def test_a_rate_limit_beyond_the_bound_is_given_up_with_a_reason(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    github.rate_limit_next(1, status=429, reset_in=3600)
    api, slept = api_for(github)
    with pytest.raises(GitHubError) as raised:
        api.jobs(REPO, 7, 1)
    assert slept == [] and "rate limit" in raised.value.note and "waits at most 5 s" in raised.value.note
    assert len(github.api_requests) == 1


def test_an_answer_that_exhausts_the_limit_stops_the_next_request(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    github.rate_limit_next(1, status=200, reset_in=3600)  # a 200 with x-ratelimit-remaining: 0
    api, _ = api_for(github)
    assert api.jobs(REPO, 7, 1)
    with pytest.raises(GitHubError, match="rate limit"):
        api.run_logs(REPO, 7, 1)
    assert len(github.api_requests) == 1


@pytest.mark.parametrize("call, words", [
    (lambda api: api.jobs(REPO, 999, 1), ("not found (404", "actions:read")),
    (lambda api: api.run_logs(REPO, 999, 1), ("not found (404", "log archive")),
    (lambda api: api.workflow_file(REPO, ".github/workflows/gone.yml", "a" * 40), ("not found (404", "contents:read")),
], ids=["jobs", "logs", "workflow-file"])
def test_a_404_is_a_note_that_says_what_is_missing(github: GitHubStandIn, call, words) -> None:
    api, _ = api_for(github)
    with pytest.raises(GitHubError) as raised:
        call(api)
    assert raised.value.status == 404
    for word in words:
        assert word in raised.value.note


def test_a_refused_token_is_a_note_that_names_the_secret(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    api = GitHubApi("not-the-token", base_url=github.url)
    with pytest.raises(GitHubError) as raised:
        api.jobs(REPO, 7, 1)
    assert raised.value.status == 401 and "GITHUB_TOKEN_SECRET_ARN" in raised.value.note
    assert "not-the-token" not in raised.value.note


def test_the_workflow_file_is_read_at_the_commit(github: GitHubStandIn) -> None:
    github.add_file(REPO, ".github/workflows/build.yml", "b" * 40, "name: Build\non: push\n")
    api, _ = api_for(github)
    assert api.workflow_file(REPO, ".github/workflows/build.yml", "b" * 40) == "name: Build\non: push\n"


def test_an_unreachable_github_is_a_note() -> None:
    api = GitHubApi("t", base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(GitHubError, match="could not be reached"):
        api.jobs(REPO, 1, 1)


def test_a_token_that_cannot_be_read_is_a_note_not_a_crash(github: GitHubStandIn) -> None:
    def unreadable() -> str:
        raise RuntimeError("AccessDeniedException")

    with pytest.raises(GitHubError, match="GITHUB_TOKEN_SECRET_ARN"):
        GitHubApi(unreadable, base_url=github.url).jobs(REPO, 7, 1)
    assert github.api_requests == []


def test_past_the_deliverys_time_budget_no_request_starts(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    now = [1000.0]
    api = GitHubApi(github.token, base_url=github.url, clock=lambda: now[0], sleep=lambda s: None)
    api.begin(25)
    assert api.jobs(REPO, 7, 1)
    now[0] += 26
    with pytest.raises(GitHubError, match="the 25 s given to GitHub's API for this delivery were used up"):
        api.run_logs(REPO, 7, 1)
    assert len(github.api_requests) == 1
    api.begin(25)  # the next delivery has its own budget
    assert api.run_logs(REPO, 7, 1).bytes_read > 0


def test_a_rate_limit_wait_longer_than_the_budget_left_is_not_waited(github: GitHubStandIn) -> None:
    github.add_run(REPO, 7, jobs=[BUILD])
    github.rate_limit_next(1, status=403, reset_in=4)
    api, slept = api_for(github)
    api.begin(2)
    with pytest.raises(GitHubError, match="rate limit"):
        api.jobs(REPO, 7, 1)
    assert slept == []
