"""The known-good ledger against moto over HTTP: the digest a completed job ran, by ECR's push time
against the job's start, protected by a known-good-* tag, history per repository."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from incident_responder.demo.provision import create_incident_table, push_images
from incident_responder.intake import KnownGoodImage
from incident_responder.models import ImageRef
from incident_responder.rollback.ledger import Ledger, NotRecorded, protect_tag, record_completed

REGION = "us-west-2"
ACCOUNT = "123456789012"


@pytest.fixture
def ledger(aws_clients):
    table = f"ledger-{uuid.uuid4().hex[:8]}"
    create_incident_table(aws_clients, table)
    return Ledger(aws_clients.dynamodb, table)


def _repo() -> str:
    return f"spaceport/3dgs-{uuid.uuid4().hex[:6]}"


def _digest(clients, repo, tag):
    return clients.ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])["imageDetails"][0]["imageDigest"]


def _completed(repo, tag, *, job="3dgs-ok", started=None, completed=None, digest=None):
    now = datetime.now(timezone.utc)
    return KnownGoodImage(training_job_name=job, region=REGION,
                          image_uri=ImageRef.in_ecr(ACCOUNT, REGION, repo, tag=tag, digest=digest).uri,
                          training_started_at=started or now + timedelta(seconds=5),
                          completed_at=completed or now + timedelta(hours=1))


def test_records_the_digest_behind_the_tag_at_the_jobs_start_and_protects_it(aws_clients, ledger):
    repo = _repo()
    push_images(aws_clients, repo, ["latest"])
    entry = record_completed(_completed(repo, "latest"), aws_clients.ecr, ledger)
    digest = _digest(aws_clients, repo, "latest")
    assert entry.digest == digest and entry.protect_tag == protect_tag(digest)
    assert ledger.history(REGION, repo) == [entry]
    tags = aws_clients.ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"][0]["imageTags"]
    assert sorted(tags) == sorted(["latest", protect_tag(digest)])


def test_a_tag_pushed_after_the_job_started_records_nothing_and_says_why(aws_clients, ledger):
    repo = _repo()
    push_images(aws_clients, repo, ["latest"])
    started = datetime.now(timezone.utc) - timedelta(hours=1)
    result = record_completed(_completed(repo, "latest", started=started), aws_clients.ecr, ledger)
    assert isinstance(result, NotRecorded)
    assert "after 3dgs-ok started" in result.reason and "nothing recorded" in result.reason
    assert ledger.history(REGION, repo) == []


@pytest.mark.parametrize("uri, reason", [
    ("docker.io/library/python:3.12", "not an ECR image"),
    (ImageRef.in_ecr(ACCOUNT, REGION, "spaceport/never-pushed", tag="latest").uri, "no longer exists"),
])
def test_images_whose_digest_cannot_be_known_record_nothing(aws_clients, ledger, uri, reason):
    image = KnownGoodImage(training_job_name="3dgs-x", region=REGION, image_uri=uri,
                           training_started_at=datetime.now(timezone.utc), completed_at=datetime.now(timezone.utc))
    result = record_completed(image, aws_clients.ecr, ledger)
    assert isinstance(result, NotRecorded) and reason in result.reason


def test_a_digest_pinned_uri_is_recorded_as_is(aws_clients, ledger):
    repo = _repo()
    push_images(aws_clients, repo, ["v1"])
    digest = _digest(aws_clients, repo, "v1")
    entry = record_completed(_completed(repo, None, digest=digest, started=datetime(2020, 1, 1, tzinfo=timezone.utc)),
                             aws_clients.ecr, ledger)
    assert entry.digest == digest


def test_history_is_per_repository_newest_first_and_out_of_order_events_never_replace_newer(aws_clients, ledger):
    repo, other = _repo(), _repo()
    push_images(aws_clients, repo, ["v1", "v2"])
    push_images(aws_clients, other, ["v1"])
    t0 = datetime.now(timezone.utc) + timedelta(hours=1)
    record_completed(_completed(repo, "v1", job="3dgs-a", completed=t0), aws_clients.ecr, ledger)
    record_completed(_completed(repo, "v2", job="3dgs-b", completed=t0 + timedelta(hours=1)), aws_clients.ecr, ledger)
    record_completed(_completed(repo, "v1", job="3dgs-c", completed=t0 + timedelta(hours=2)), aws_clients.ecr, ledger)
    # A late, older completion of v1 arrives last: the newer one stays.
    record_completed(_completed(repo, "v1", job="3dgs-old", completed=t0 - timedelta(days=1)), aws_clients.ecr, ledger)
    record_completed(_completed(other, "v1", job="3dgs-other"), aws_clients.ecr, ledger)
    history = ledger.history(REGION, repo)
    assert [e.training_job_name for e in history] == ["3dgs-c", "3dgs-b"]
    assert [e.training_job_name for e in ledger.history(REGION, other)] == ["3dgs-other"]


def test_cli_lists_the_ledger(aws_clients, ledger, emulator, capsys):
    from incident_responder.cli import main

    repo = _repo()
    push_images(aws_clients, repo, ["latest"])
    entry = record_completed(_completed(repo, "latest", job="3dgs-listed"), aws_clients.ecr, ledger)
    assert main(["known-good", "list", "--repository", repo, "--incident-table", ledger._table,
                 "--region", REGION, "--endpoint-url", emulator.url]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{repo}  {entry.digest}") and "3dgs-listed" in line and entry.protect_tag in line
