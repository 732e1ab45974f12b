"""Builds the triage Runtime from configuration (Lambda environment or CLI flags)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field

from .clients import make_clients
from .evidence import GatherSettings
from .models import Notification
from .redact import redact
from .sinks import SlackWebhookSink, SnsParams, SnsSink, StdoutParams, StdoutSink
from .store import IncidentStore
from .triage import Runtime


class ResponderSettings(BaseModel):
    """The responder's configuration; in Lambda it comes from the template's environment."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    region: str | None = None
    endpoint_url: str | None = None
    incident_table: str | None = None
    sns_topic_arn: str | None = None
    slack_webhook_secret_arn: str | None = None
    log_tail_bytes: int = Field(65_536, ge=1_024, le=1_048_576)
    log_wait_seconds: float = Field(60.0, ge=0, le=600)
    ignore_state_machines: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ResponderSettings":
        values: dict[str, Any] = {
            "region": environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"),
            "endpoint_url": environ.get("AWS_ENDPOINT_URL") or None,
            "incident_table": environ.get("INCIDENT_TABLE") or None,
            "sns_topic_arn": environ.get("SNS_TOPIC_ARN") or None,
            "slack_webhook_secret_arn": environ.get("SLACK_WEBHOOK_SECRET_ARN") or None,
            "ignore_state_machines": frozenset(
                arn for arn in environ.get("IGNORE_STATE_MACHINE_ARNS", "").split(",") if arn
            ),
        }
        for key, env in (("log_tail_bytes", "LOG_TAIL_BYTES"), ("log_wait_seconds", "LOG_WAIT_SECONDS")):
            if environ.get(env):
                values[key] = environ[env]
        return cls.model_validate(values)

    def gather_settings(self) -> GatherSettings:
        return GatherSettings(
            log_tail_bytes=self.log_tail_bytes,
            log_wait_seconds=self.log_wait_seconds,
            log_poll_seconds=min(2.0, max(self.log_wait_seconds / 8, 0.05)),
        )


class UnavailableSink:
    """Stands in for a sink that could not be configured, so the failure is on the record."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, _incident: Any) -> Notification:
        return Notification(sink=self.name, ok=False, detail=self.reason)

    send_intake_error = send


def build_sinks(settings: ResponderSettings, clients: Any, *, stdout: bool = False) -> list[Any]:
    sinks: list[Any] = []
    if settings.slack_webhook_secret_arn:
        try:
            sinks.append(SlackWebhookSink.from_secret(clients.secretsmanager, settings.slack_webhook_secret_arn))
        except Exception as exc:  # noqa: BLE001 - Slack down must not stop the SNS report
            sinks.append(UnavailableSink("slack", redact(f"Slack webhook secret unusable: {exc}")[:500]))
    if settings.sns_topic_arn:
        sinks.append(SnsSink(SnsParams(topic_arn=settings.sns_topic_arn), clients.sns))
    if stdout:
        sinks.append(StdoutSink(StdoutParams()))
    return sinks


def build_runtime(settings: ResponderSettings, *, clients: Any = None, stdout: bool = False, **overrides: Any):
    clients = clients or make_clients(region=settings.region, endpoint_url=settings.endpoint_url)
    store = IncidentStore(clients.dynamodb, settings.incident_table) if settings.incident_table else None
    return Runtime(
        clients=clients,
        gather_settings=settings.gather_settings(),
        store=store,
        sinks=build_sinks(settings, clients, stdout=stdout),
        ignore_state_machines=settings.ignore_state_machines,
        **overrides,
    )
