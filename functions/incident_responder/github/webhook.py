"""Verify one GitHub `workflow_run` webhook delivery and turn it into a FailureEvent (pure: no I/O).

GitHub signs the raw body with the webhook's secret: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`
(docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries). The signature covers no
timestamp and GitHub sends no timestamp header, so a captured delivery verifies forever: freshness is
judged from the payload's `workflow_run.updated_at` (the run's completion, seconds before the delivery),
against a configurable maximum age, and replays inside that age are caught by the delivery ledger
(deliveries.py), whose records live longer than the maximum age.

Every answer that is not a FailureEvent is a Verdict: an HTTP status and one line that names what is
wrong and what to do. "ignored" verdicts are deliveries that are fine but not for us (a success, a
`requested` action, a ping): 2xx, so GitHub shows them as delivered. "refused" ones are 4xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..models import FailureEvent

SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
TRIAGED_CONCLUSIONS = ("failure", "startup_failure")
# A run's updated_at is set by GitHub's clock and read by ours: a little of the future is skew, not forgery.
FUTURE_SKEW = timedelta(minutes=5)


class _Payload(BaseModel):
    # GitHub adds fields to its payloads without notice: unknown ones are ignored, the ones we use are checked.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class PayloadRepository(_Payload):
    full_name: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    html_url: str | None = None


class WorkflowRun(_Payload):
    """The `workflow_run` object (GitHub's "Workflow Run" schema; the fields the responder uses)."""

    id: int = Field(gt=0)
    name: str | None = None
    path: str = Field(min_length=1, description=".github/workflows/<file>, the workflow that ran")
    head_sha: str = Field(pattern=r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
    head_branch: str | None = None
    run_attempt: int = Field(1, ge=1)
    run_number: int | None = None
    event: str | None = None
    status: str | None = None
    conclusion: str | None = None
    html_url: str | None = None
    updated_at: datetime
    run_started_at: datetime | None = None

    @field_validator("path")
    @classmethod
    def _no_ref_suffix(cls, value: str) -> str:
        # A reusable workflow's path can carry "@ref"; the file is what the allow-list names.
        return value.split("@", 1)[0]


class WorkflowRunDelivery(_Payload):
    """The `workflow_run` webhook payload (docs.github.com/webhooks/webhook-events-and-payloads#workflow_run)."""

    action: str
    workflow_run: WorkflowRun
    repository: PayloadRepository


class WebhookConfig(BaseModel):
    """What the endpoint accepts. The allow-lists are required: an empty one refuses everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repositories: frozenset[str] = Field(description="owner/name, compared case-insensitively as GitHub does")
    workflows: frozenset[str] = Field(description="workflow file paths (.github/workflows/x.yml), or '*' for any")
    max_age_seconds: int = Field(21_600, ge=60, le=259_200,
                                 description="oldest run updated_at accepted; GitHub keeps deliveries 3 days")
    region: str = Field(description="the responder's region (the FailureEvent's; GitHub has none)")

    @field_validator("repositories", "workflows", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",")]
        return frozenset(item for item in value if item)

    @field_validator("repositories")
    @classmethod
    def _lower(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(item.lower() for item in value)


class Verdict(BaseModel):
    """A delivery that produces no FailureEvent, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["refused", "ignored"]
    status: int
    reason: str
    delivery_id: str | None = None


def _refused(status: int, reason: str, delivery_id: str | None) -> Verdict:
    return Verdict(kind="refused", status=status, reason=reason, delivery_id=delivery_id)


def _ignored(reason: str, delivery_id: str | None, status: int = 202) -> Verdict:
    return Verdict(kind="ignored", status=status, reason=reason, delivery_id=delivery_id)


def signature(secret: str | bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for ``body`` (for the stand-ins and tests)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_delivery(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str | bytes,
    config: WebhookConfig,
    now: datetime | None = None,
) -> FailureEvent | Verdict:
    """The FailureEvent a verified, fresh, allowed `workflow_run` failure delivery describes, or why not.

    The signature is checked before anything in the body is read. ``body`` must be the exact bytes
    GitHub sent (API Gateway's base64 decoded, never re-serialised JSON)."""
    now = now or datetime.now(timezone.utc)
    lowered = {key.lower(): value for key, value in headers.items()}
    delivery_id = (lowered.get(DELIVERY_HEADER) or "").strip() or None
    if not secret:
        return _refused(500, "the webhook secret is empty: put the secret you set in GitHub's webhook settings in "
                             "the GitHub webhook secret (GITHUB_WEBHOOK_SECRET_ARN)", delivery_id)
    sent = (lowered.get(SIGNATURE_HEADER) or "").strip()
    if not sent:
        return _refused(401, "unsigned delivery (no X-Hub-Signature-256 header): set a secret on the webhook in "
                             "GitHub (Settings > Webhooks > Secret) equal to the GitHub webhook secret in Secrets "
                             "Manager", delivery_id)
    if not sent.startswith("sha256=") or len(sent) != 71:
        return _refused(401, "malformed X-Hub-Signature-256 header (expected sha256= and 64 hex digits): the "
                             "delivery did not come from GitHub as sent", delivery_id)
    if not hmac.compare_digest(sent.encode(), signature(secret, body).encode()):
        return _refused(401, "bad signature: X-Hub-Signature-256 does not match the body under the configured "
                             "secret; the secret in GitHub's webhook settings differs from the one in Secrets "
                             "Manager, or the body was changed on the way", delivery_id)
    if delivery_id is None or len(delivery_id) > 100:
        return _refused(400, "no usable X-GitHub-Delivery header (GitHub sends a GUID): without it a replay cannot "
                             "be told apart", None)
    event = (lowered.get(EVENT_HEADER) or "").strip()
    if event == "ping":
        return _ignored("ping received: the webhook reaches the responder and its signature verifies", delivery_id,
                        status=200)
    if event != "workflow_run":
        return _ignored(f"event '{event or '(no X-GitHub-Event)'}' is not handled: subscribe the webhook to "
                        "'Workflow runs' only", delivery_id)
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _refused(415, "the body is not JSON: set the webhook's Content type to application/json in GitHub "
                             "(application/x-www-form-urlencoded is not accepted)", delivery_id)
    try:
        payload = WorkflowRunDelivery.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                             for e in exc.errors()[:5])
        return _refused(400, f"not a workflow_run payload GitHub documents ({problems}); nothing was triaged",
                        delivery_id)
    run = payload.workflow_run
    repository = payload.repository.full_name
    if payload.action != "completed":
        return _ignored(f"workflow_run action '{payload.action}': only 'completed' runs are triaged", delivery_id)
    if run.conclusion not in TRIAGED_CONCLUSIONS:
        return _ignored(f"{repository} run {run.id} concluded '{run.conclusion}': only "
                        f"{' and '.join(TRIAGED_CONCLUSIONS)} are triaged", delivery_id)
    if repository.lower() not in config.repositories:
        configured = ", ".join(sorted(config.repositories)) or "none"
        return _refused(403, f"repository {repository} is not configured (allowed: {configured}): add it to the "
                             "GitHubRepositories parameter (GITHUB_REPOSITORIES), or remove this webhook from "
                             "the repository", delivery_id)
    if "*" not in config.workflows and run.path not in config.workflows:
        configured = ", ".join(sorted(config.workflows)) or "none"
        return _refused(403, f"workflow {run.path} of {repository} is not configured (allowed: {configured}): add "
                             "its path to the GitHubWorkflows parameter (GITHUB_WORKFLOWS), or '*' for every "
                             "workflow", delivery_id)
    updated = run.updated_at if run.updated_at.tzinfo else run.updated_at.replace(tzinfo=timezone.utc)
    age = now - updated
    if age > timedelta(seconds=config.max_age_seconds):
        return _refused(400, f"stale delivery: run {run.id} was last updated {updated:%Y-%m-%dT%H:%M:%SZ}, "
                             f"{int(age.total_seconds())} s ago, more than the {config.max_age_seconds} s accepted "
                             "(GitHub sends no timestamp header, so the run's updated_at dates the delivery); "
                             "re-run the workflow, or raise GITHUB_MAX_DELIVERY_AGE_SECONDS to redeliver old "
                             "deliveries", delivery_id)
    if -age > FUTURE_SKEW:
        return _refused(400, f"run {run.id} claims to be updated at {updated:%Y-%m-%dT%H:%M:%SZ}, "
                             f"{int(-age.total_seconds())} s in the future: check this host's clock", delivery_id)
    owner, _, name = repository.partition("/")
    return FailureEvent(
        source="github",
        event_id=delivery_id,
        region=config.region,
        time=updated,
        status=run.conclusion or "failure",
        repository=repository,
        workflow_path=run.path,
        workflow_name=run.name,
        run_id=run.id,
        run_attempt=run.run_attempt,
        run_url=run.html_url or f"https://github.com/{owner}/{name}/actions/runs/{run.id}",
        head_sha=run.head_sha,
        head_branch=run.head_branch,
    )
