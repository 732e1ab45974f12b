"""The responder's configuration (one settings model, read once) and the Runtime built from it."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Literal, Mapping

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from .clients import make_clients
from .delivery import Delivery
from .evidence import GatherSettings
from .models import Incident, IntakeError, Notification
from .respond import Runtime
from .sinks import SinkConfigError, SlackWebhookSink, SnsParams, SnsSink, StdoutParams, StdoutSink
from .sinks.base import failed
from .store import IncidentStore


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(field, name)


class ResponderSettings(BaseModel):
    """The responder's configuration. In Lambda every value comes from the template's environment
    (the variable names below); the CLI passes the same fields by name. One default per variable."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True, populate_by_name=True)

    region: str | None = Field(None, validation_alias=AliasChoices("region", "AWS_REGION", "AWS_DEFAULT_REGION"))
    endpoint_url: str | None = Field(None, validation_alias=_env("AWS_ENDPOINT_URL", "endpoint_url"))
    incident_table: str | None = Field(None, validation_alias=_env("INCIDENT_TABLE", "incident_table"))
    sns_topic_arn: str | None = Field(None, validation_alias=_env("SNS_TOPIC_ARN", "sns_topic_arn"))
    slack_webhook_secret_arn: str | None = Field(
        None, validation_alias=_env("SLACK_WEBHOOK_SECRET_ARN", "slack_webhook_secret_arn"))
    log_tail_bytes: int = Field(65_536, ge=1_024, le=1_048_576, validation_alias=_env("LOG_TAIL_BYTES", "log_tail_bytes"))
    log_wait_seconds: float = Field(60.0, ge=0, le=600, validation_alias=_env("LOG_WAIT_SECONDS", "log_wait_seconds"))
    idempotency_ttl_seconds: int = Field(
        90_000, ge=3_600, description="longer than EventBridge's 24 h of retries",
        validation_alias=_env("IDEMPOTENCY_TTL_SECONDS", "idempotency_ttl_seconds"))
    join_attempts: int = Field(
        1, ge=1, le=10, description="attempts an unresolved subject waits for (Lambda: 1 + its retries)",
        validation_alias=_env("JOIN_ATTEMPTS", "join_attempts"))
    ignore_state_machines: frozenset[str] = Field(
        frozenset(), validation_alias=_env("IGNORE_STATE_MACHINE_ARNS", "ignore_state_machines"))
    # Rollback (docs/rollback.md). Mode and names come from the template's parameters.
    rollback_mode: Literal["ecr-retag", "parameter", "disabled"] = Field(
        "disabled", validation_alias=_env("ROLLBACK_MODE", "rollback_mode"))
    rollback_state_machine_arn: str | None = Field(
        None, validation_alias=_env("ROLLBACK_STATE_MACHINE_ARN", "rollback_state_machine_arn"))
    rollback_categories: tuple[str, ...] = Field(
        ("entry_point", "cuda_gpu", "python_dependencies"),
        validation_alias=_env("ROLLBACK_CATEGORIES", "rollback_categories"))
    pipeline_repository: str | None = Field(None, validation_alias=_env("PIPELINE_REPOSITORY", "pipeline_repository"))
    approval_timeout_seconds: int = Field(
        86_400, ge=60, le=604_800, validation_alias=_env("APPROVAL_TIMEOUT_SECONDS", "approval_timeout_seconds"))
    decision_url: str | None = Field(None, validation_alias=_env("DECISION_URL", "decision_url"))
    link_key_secret_arn: str | None = Field(None, validation_alias=_env("LINK_KEY_SECRET_ARN", "link_key_secret_arn"))
    slack_signing_secret_arn: str | None = Field(
        None, validation_alias=_env("SLACK_SIGNING_SECRET_ARN", "slack_signing_secret_arn"))
    allowed_slack_users: frozenset[str] = Field(
        frozenset(), validation_alias=_env("ALLOWED_SLACK_USERS", "allowed_slack_users"))
    allowed_slack_groups: frozenset[str] = Field(
        frozenset(), validation_alias=_env("ALLOWED_SLACK_GROUPS", "allowed_slack_groups"))
    slack_bot_token_secret_arn: str | None = Field(
        None, validation_alias=_env("SLACK_BOT_TOKEN_SECRET_ARN", "slack_bot_token_secret_arn"))
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("SLACK_API_URL", "slack_api_url"))

    @field_validator("region", "endpoint_url", "incident_table", "sns_topic_arn", "slack_webhook_secret_arn",
                     "rollback_state_machine_arn", "pipeline_repository", "decision_url", "link_key_secret_arn",
                     "slack_signing_secret_arn", "slack_bot_token_secret_arn", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return value or None

    @field_validator("sns_topic_arn")
    @classmethod
    def _is_a_topic_arn(cls, value: str | None) -> str | None:
        return SnsParams(topic_arn=value).topic_arn if value else None

    @field_validator("rollback_categories", mode="before")
    @classmethod
    def _categories(cls, value: Any) -> Any:
        from .models import Category

        if isinstance(value, str):
            value = tuple(c.strip() for c in value.split(",") if c.strip())
        unknown = [c for c in value if c not in {m.value for m in Category}]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; use the guide's ids (docs/architecture.md)")
        return value

    @field_validator("ignore_state_machines", "allowed_slack_users", "allowed_slack_groups", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return frozenset(arn.strip() for arn in value.split(",") if arn.strip()) if isinstance(value, str) else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ResponderSettings":
        return cls.model_validate(dict(environ))

    def gather_settings(self) -> GatherSettings:
        return GatherSettings(
            log_tail_bytes=self.log_tail_bytes,
            log_wait_seconds=self.log_wait_seconds,
            log_poll_seconds=min(2.0, max(self.log_wait_seconds / 8, 0.05)),
        )


class SlackFromSecret:
    """The Slack sink, built from its secret on first use. A secret that cannot be read fails that
    delivery (so the event is retried) and is read again next time: a passing Secrets Manager fault
    never disables Slack for the container's life."""

    name = "slack"

    def __init__(self, secretsmanager: Any, secret_id: str) -> None:
        self._secretsmanager = secretsmanager
        self._secret_id = secret_id
        self._sink: SlackWebhookSink | None = None
        self._lock = threading.Lock()

    def _built(self) -> SlackWebhookSink:
        with self._lock:
            if self._sink is None:
                self._sink = SlackWebhookSink.from_secret(self._secretsmanager, self._secret_id)
            return self._sink

    def _deliver(self, kind: str, send: Callable[[SlackWebhookSink], Notification]) -> Notification:
        try:
            sink = self._built()
        except SinkConfigError as error:
            return failed(self.name, "Slack webhook secret unusable", error, kind=kind)  # type: ignore[arg-type]
        return send(sink)

    def send(self, incident: Incident, *, deadline: float | None = None) -> Notification:
        return self._deliver("alert", lambda sink: sink.send(incident, deadline=deadline))

    def send_follow_up(self, incident: Incident, added: list[str], *, deadline: float | None = None) -> Notification:
        return self._deliver("follow_up", lambda sink: sink.send_follow_up(incident, added, deadline=deadline))

    def send_intake_error(self, err: IntakeError, *, deadline: float | None = None) -> Notification:
        return self._deliver("intake_error", lambda sink: sink.send_intake_error(err, deadline=deadline))


def build_sinks(settings: ResponderSettings, clients: Any, *, stdout: bool = False) -> list[Any]:
    sinks: list[Any] = []
    if settings.slack_webhook_secret_arn:
        sinks.append(SlackFromSecret(clients.secretsmanager, settings.slack_webhook_secret_arn))
    if settings.sns_topic_arn:
        sinks.append(SnsSink(SnsParams(topic_arn=settings.sns_topic_arn), clients.sns))
    if stdout:
        sinks.append(StdoutSink(StdoutParams()))
    return sinks


def build_runtime(
    settings: ResponderSettings,
    *,
    clients: Any = None,
    stdout: bool = False,
    deadline: Callable[[], float | None] = lambda: None,
    **overrides: Any,
) -> Runtime:
    clients = clients or make_clients(region=settings.region, endpoint_url=settings.endpoint_url)
    store = IncidentStore(clients.dynamodb, settings.incident_table) if settings.incident_table else None
    delivery = Delivery(store=store, sinks=build_sinks(settings, clients, stdout=stdout), deadline=deadline,
                        join_attempts=settings.join_attempts)
    return Runtime(
        clients=clients,
        delivery=delivery,
        rollback=build_rollback(settings, clients),
        gather_settings=settings.gather_settings(),
        ignore_state_machines=settings.ignore_state_machines,
        **overrides,
    )


def build_rollback(settings: ResponderSettings, clients: Any) -> Any:
    """The rollback adapter (ledger, proposal, workflow, decisions); None without an incident table."""
    if not settings.incident_table:
        return None
    from .rollback.service import RollbackService

    return RollbackService(
        clients=clients, table=settings.incident_table, mode=settings.rollback_mode,
        categories=settings.rollback_categories, repository=settings.pipeline_repository,
        state_machine_arn=settings.rollback_state_machine_arn, decision_url=settings.decision_url,
        link_key_secret_arn=settings.link_key_secret_arn, approval_timeout_seconds=settings.approval_timeout_seconds)
