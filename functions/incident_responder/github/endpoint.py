"""The webhook endpoint's logic, without Lambda: verify, dedupe, triage and report, answer GitHub.

One delivery in, one reply out (an HTTP status and a JSON body whose `reason` is one line saying what
happened and, when something is wrong, what to do). GitHub shows both under the webhook's "Recent
Deliveries", so that is where an operator reads why a delivery was refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from ..delivery import DeliveryIncomplete, JoinPending
from ..models import FailureEvent
from ..respond import Runtime, handle_failure
from ..store import StoreUnavailable
from .deliveries import DeliveryLedger
from .webhook import Verdict, WebhookConfig, verify_delivery

def _env(name: str, field_name: str) -> AliasChoices:
    return AliasChoices(field_name, name)


class GitHubSettings(BaseModel):
    """The webhook function's GitHub configuration (template.yaml sets every variable)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    webhook_secret_arn: str | None = Field(None, validation_alias=_env("GITHUB_WEBHOOK_SECRET_ARN", "webhook_secret_arn"))
    token_secret_arn: str | None = Field(None, validation_alias=_env("GITHUB_TOKEN_SECRET_ARN", "token_secret_arn"))
    repositories: str = Field("", validation_alias=_env("GITHUB_REPOSITORIES", "repositories"))
    workflows: str = Field("", validation_alias=_env("GITHUB_WORKFLOWS", "workflows"))
    max_delivery_age_seconds: int = Field(
        21_600, ge=60, le=259_200, validation_alias=_env("GITHUB_MAX_DELIVERY_AGE_SECONDS", "max_delivery_age_seconds"))
    api_url: str = Field("https://api.github.com", validation_alias=_env("GITHUB_API_URL", "api_url"))
    max_download_bytes: int = Field(
        33_554_432, ge=65_536, le=268_435_456, validation_alias=_env("GITHUB_MAX_DOWNLOAD_BYTES", "max_download_bytes"))
    # Where the endpoint hands a verified failure to triage; unset: it triages in the request itself.
    triage_event_bus: str | None = Field(None, validation_alias=_env("TRIAGE_EVENT_BUS", "triage_event_bus"))

    @field_validator("webhook_secret_arn", "token_secret_arn", "triage_event_bus", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return value or None

    def config(self, region: str) -> WebhookConfig:
        return WebhookConfig(repositories=self.repositories, workflows=self.workflows,
                             max_age_seconds=self.max_delivery_age_seconds, region=region)

    def client(self, secretsmanager: Any) -> Any:
        """The GitHub REST client, its token read from Secrets Manager on first use; None without a token."""
        if not self.token_secret_arn:
            return None
        from ..rollback.service import SecretValue
        from .api import GitHubApi

        token = SecretValue(secretsmanager, self.token_secret_arn)
        return GitHubApi(lambda: secret_text(token.get(), "token"), base_url=self.api_url,
                         max_download_bytes=self.max_download_bytes)


def secret_text(value: str | None, key: str) -> str | None:
    """A secret stored plain, or as JSON {"<key>": "..."} (the console's key/value form)."""
    if value is None:
        return None
    stripped = value.strip()
    if stripped.startswith("{"):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return stripped
        if isinstance(parsed, dict) and isinstance(parsed.get(key), str):
            return parsed[key].strip()
        raise ValueError(f'the secret is JSON without a "{key}" string')
    return stripped


@dataclass(frozen=True)
class WebhookReply:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    outcome: Any = field(default=None, compare=False, repr=False)  # respond.Outcome, when triage ran

    @property
    def text(self) -> str:
        return json.dumps(self.body)


@dataclass
class GitHubWebhookEndpoint:
    config: WebhookConfig
    secret: Callable[[], str | None]
    runtime: Runtime
    ledger: DeliveryLedger | None
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    # Hands the failure to the TriageFunction (EventBusHandoff); None: triage runs in this request.
    handoff: Callable[[FailureEvent], None] | None = None
    # The handler passes its Powertools Logger, whose formatter redacts; a plain logger elsewhere.
    log: Any = field(default_factory=lambda: logging.getLogger(__name__))

    @classmethod
    def build(cls, *, config: WebhookConfig, secret: Callable[[], str | None], runtime: Runtime,
              table: str | None, now: Callable[[], datetime] | None = None, log: Any = None,
              handoff: Callable[[FailureEvent], None] | None = None) -> "GitHubWebhookEndpoint":
        now = now or (lambda: datetime.now(timezone.utc))
        ledger = (DeliveryLedger(runtime.clients.dynamodb, table, max_age=timedelta(seconds=config.max_age_seconds),
                                 now=now) if table else None)
        return cls(config=config, secret=secret, runtime=runtime, ledger=ledger, now=now,
                   log=log or logging.getLogger(__name__), handoff=handoff)

    def handle(self, headers: Mapping[str, str], body: bytes) -> WebhookReply:
        try:
            secret = self.secret()
        except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
            return _reply(503, "error", f"the GitHub webhook secret could not be read ({type(exc).__name__}); nothing "
                                        "was handled: fix GITHUB_WEBHOOK_SECRET_ARN or the function's permission, then "
                                        "redeliver from the webhook's Recent Deliveries")
        if not secret:
            return _reply(503, "error", "no GitHub webhook secret is configured (template parameter "
                                        "GitHubWebhookSecretArn, GITHUB_WEBHOOK_SECRET_ARN): every delivery is refused "
                                        "until it is")
        verdict = verify_delivery(headers, body, secret=secret, config=self.config, now=self.now())
        if isinstance(verdict, Verdict):
            self.log.info(f"delivery {verdict.kind}: {verdict.reason}")
            return _reply(verdict.status, verdict.kind, verdict.reason, delivery=verdict.delivery_id)
        event = verdict
        if self.ledger is not None:
            try:
                claim = self.ledger.claim(event.event_id)
            except StoreUnavailable as exc:
                return _reply(503, "error", str(exc), delivery=event.event_id)
            if claim.outcome == "replay":
                return _reply(409, "refused", claim.reason, delivery=event.event_id)
        if self.handoff is not None:
            return self._hand_off(event)
        try:
            outcome = handle_failure(event, self.runtime)
        except (DeliveryIncomplete, JoinPending, StoreUnavailable) as exc:
            self._release(event.event_id)
            # The details (a sink's error) go to the function's redacting log; GitHub's page gets the gist.
            self.log.warning(f"delivery {event.event_id} not finished: {exc}")
            failed = sorted({n.sink for n in getattr(exc, "notifications", []) if not n.ok})
            what = (f"the report did not reach {', '.join(failed)}" if failed else
                    "the incident table could not be written" if isinstance(exc, StoreUnavailable) else str(exc))
            return _reply(503, "error", f"not finished: {what}; what was delivered is recorded, so a redelivery from "
                                        "the webhook's Recent Deliveries sends only what is missing",
                          delivery=event.event_id)
        except Exception as exc:  # the claim must not outlive a crash: GitHub's redelivery must be handled
            self._release(event.event_id)
            self.log.exception(f"delivery {event.event_id} failed")
            return _reply(500, "error", f"triage failed ({type(exc).__name__}); redeliver from the webhook's Recent "
                                        "Deliveries once the function's log explains it", delivery=event.event_id)
        summary = f"{outcome.outcome}: {outcome.incident_key} {outcome.category}/{outcome.cause}"
        if self.ledger is not None:
            self.ledger.done(event.event_id, summary)
        reason = {"reported": "reported once", "duplicate": "this run's incident was already reported; linked",
                  "enriched": "this run's incident was already reported; follow-up sent"}.get(outcome.outcome,
                                                                                             outcome.outcome)
        reply = _reply(200, outcome.outcome, reason, delivery=event.event_id, incident_key=outcome.incident_key,
                       category=outcome.category, cause=outcome.cause)
        return WebhookReply(reply.status, reply.body, outcome)

    def _hand_off(self, event: FailureEvent) -> WebhookReply:
        try:
            self.handoff(event)
        except Exception as exc:  # the claim must not outlive a failed hand-off: GitHub's redelivery must work
            self._release(event.event_id)
            self.log.warning(f"delivery {event.event_id} not handed to triage: {exc}")
            return _reply(503, "error", f"the run could not be handed to triage ({type(exc).__name__}); nothing was "
                                        "reported: redeliver from the webhook's Recent Deliveries",
                          delivery=event.event_id)
        if self.ledger is not None:
            self.ledger.done(event.event_id, "handed to triage")
        return _reply(202, "accepted", "verified and handed to triage: the report follows in Slack/SNS (a failed "
                                       "report is retried there, then kept in the dead-letter queue)",
                      delivery=event.event_id)

    def _release(self, delivery_id: str) -> None:
        if self.ledger is not None:
            self.ledger.release(delivery_id)


def _reply(status: int, outcome: str, reason: str, **extra: Any) -> WebhookReply:
    return WebhookReply(status, {"outcome": outcome, "reason": reason, **{k: v for k, v in extra.items() if v}})
