"""A `workflow_run` delivery is verified before anything in it is trusted; each refusal names what is
wrong and what to do, and only a signed, fresh, allowed failure becomes a FailureEvent."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.support.events import with_field
from incident_responder.github.webhook import Verdict, WebhookConfig, signature, verify_delivery
from incident_responder.models import FailureEvent

EVENTS = Path(__file__).resolve().parents[3] / "events"
FAILURE = json.loads((EVENTS / "github-workflow-run-failure.json").read_text())
STARTUP_FAILURE = json.loads((EVENTS / "github-workflow-run-startup-failure.json").read_text())
UPDATED = datetime(2026, 11, 20, 17, 47, 31, tzinfo=timezone.utc)
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
CONFIG = WebhookConfig(repositories="Example-Org/3dgs-pipeline",
                       workflows=".github/workflows/build-training-image.yml,.github/workflows/cdk-bootstrap.yml",
                       max_age_seconds=3600, region="us-west-2")


def deliver(payload: Any = FAILURE, *, secret: str, sign_with: str | None = None, event: str = "workflow_run",
            headers: dict[str, str | None] | None = None, body: bytes | None = None, now: datetime | None = None,
            config: WebhookConfig = CONFIG) -> FailureEvent | Verdict:
    body = body if body is not None else json.dumps(payload).encode()
    sent = {"X-GitHub-Event": event, "X-GitHub-Delivery": DELIVERY, "Content-Type": "application/json",
            "X-Hub-Signature-256": signature(sign_with or secret, body)}
    for name, value in (headers or {}).items():
        if value is None:
            sent.pop(name, None)
        else:
            sent[name] = value
    return verify_delivery(sent, body, secret=secret, config=config, now=now or UPDATED + timedelta(seconds=30))


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(20)


# id: (what the delivery gets, status, kind, words the reason must contain)
REFUSALS: dict[str, tuple[dict[str, Any], int, str, tuple[str, ...]]] = {
    "unsigned": ({"headers": {"X-Hub-Signature-256": None}}, 401, "refused", ("unsigned", "Secret")),
    "bad-signature": ({"sign_with": "another-secret"}, 401, "refused", ("bad signature", "Secrets Manager")),
    "sha1-only-signature": ({"headers": {"X-Hub-Signature-256": "sha1=" + "0" * 40}}, 401, "refused", ("malformed",)),
    "signature-of-other-body": ({"headers": {"X-Hub-Signature-256": signature("x", b"{}")}}, 401, "refused",
                                ("bad signature",)),
    "stale": ({"now": UPDATED + timedelta(seconds=3601)}, 400, "refused",
              ("stale delivery", "3601 s ago", "no timestamp header", "GITHUB_MAX_DELIVERY_AGE_SECONDS")),
    "from-the-future": ({"now": UPDATED - timedelta(minutes=10)}, 400, "refused", ("in the future", "clock")),
    "unconfigured-repository": ({"payload": with_field(FAILURE, "repository.full_name", "someone-else/fork")}, 403,
                                "refused", ("repository someone-else/fork is not configured", "GitHubRepositories")),
    "unconfigured-workflow": ({"payload": with_field(FAILURE, "workflow_run.path", ".github/workflows/docs.yml")}, 403,
                              "refused", ("workflow .github/workflows/docs.yml", "not configured", "GitHubWorkflows")),
    "form-encoded": ({"body": b"payload=%7B%7D", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                     415, "refused", ("application/json",)),
    "no-delivery-id": ({"headers": {"X-GitHub-Delivery": None}}, 400, "refused", ("X-GitHub-Delivery",)),
    "delivery-id-not-a-guid": ({"headers": {"X-GitHub-Delivery": "x" * 101}}, 400, "refused", ("X-GitHub-Delivery",)),
    "not-a-workflow-run": ({"payload": {"action": "completed", "zen": "Keep it logically awesome."}}, 400, "refused",
                           ("workflow_run", "nothing was triaged")),
    "push-event": ({"event": "push"}, 202, "ignored", ("'push' is not handled", "Workflow runs")),
    "ping": ({"event": "ping"}, 200, "ignored", ("ping",)),
    "requested": ({"payload": with_field(FAILURE, "action", "requested")}, 202, "ignored", ("'requested'",)),
    "success": ({"payload": with_field(FAILURE, "workflow_run.conclusion", "success")}, 202, "ignored",
                ("concluded 'success'", "failure and startup_failure")),
    "cancelled": ({"payload": with_field(FAILURE, "workflow_run.conclusion", "cancelled")}, 202, "ignored",
                  ("concluded 'cancelled'",)),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_each_unusable_delivery_is_answered_with_its_reason(case: str, secret: str) -> None:
    changes, status, kind, words = REFUSALS[case]
    verdict = deliver(secret=secret, **changes)
    assert isinstance(verdict, Verdict), verdict
    assert (verdict.status, verdict.kind) == (status, kind), verdict.reason
    for word in words:
        assert word in verdict.reason, (word, verdict.reason)
    assert secret not in verdict.reason


def test_the_signature_is_checked_before_the_body_is_read(secret: str) -> None:
    # An unsigned body that is not even JSON is refused for its signature, not parsed.
    verdict = deliver(secret=secret, body=b"\xff not json", headers={"X-Hub-Signature-256": None})
    assert isinstance(verdict, Verdict) and verdict.status == 401


def test_an_empty_configured_secret_verifies_nothing() -> None:
    body = json.dumps(FAILURE).encode()
    verdict = verify_delivery({"X-Hub-Signature-256": signature("", body), "X-GitHub-Event": "workflow_run",
                               "X-GitHub-Delivery": DELIVERY}, body, secret="", config=CONFIG,
                              now=UPDATED + timedelta(seconds=30))
    assert isinstance(verdict, Verdict) and verdict.status == 500 and "secret is empty" in verdict.reason


@pytest.mark.parametrize("sample", sorted(EVENTS.glob("github-workflow-run-*.json")), ids=lambda p: p.stem)
def test_every_sample_delivery_in_events_becomes_a_github_failure_event(sample: Path, secret: str) -> None:
    # GitHub's payloads are not EventBridge events (intake refuses them); this is the path that takes them.
    payload = json.loads(sample.read_text())
    event = deliver(payload, secret=secret, headers={"x-github-event": "workflow_run"})
    assert isinstance(event, FailureEvent), event
    run = payload["workflow_run"]
    assert event.source == "github" and event.event_id == DELIVERY and event.region == "us-west-2"
    assert event.status == run["conclusion"] in ("failure", "startup_failure") and event.workflow_path == run["path"]
    assert (event.repository, event.run_id, event.run_attempt) == ("example-org/3dgs-pipeline", run["id"], 1)
    assert event.run_url == run["html_url"] and event.head_sha == run["head_sha"] and event.time == UPDATED


def test_header_names_are_case_insensitive_as_api_gateway_lowercases_them(secret: str) -> None:
    body = json.dumps(FAILURE).encode()
    headers = {"x-hub-signature-256": signature(secret, body), "x-github-event": "workflow_run",
               "x-github-delivery": DELIVERY}
    assert isinstance(verify_delivery(headers, body, secret=secret, config=CONFIG, now=UPDATED), FailureEvent)


def test_a_star_allows_every_workflow_of_a_configured_repository(secret: str) -> None:
    config = CONFIG.model_copy(update={"workflows": frozenset({"*"})})
    payload = with_field(FAILURE, "workflow_run.path", ".github/workflows/anything.yml")
    assert isinstance(deliver(payload, secret=secret, config=config), FailureEvent)


def test_no_configured_repository_refuses_everything(secret: str) -> None:
    config = WebhookConfig(repositories="", workflows="*", region="us-west-2")
    verdict = deliver(secret=secret, config=config)
    assert isinstance(verdict, Verdict) and verdict.status == 403 and "allowed: none" in verdict.reason
