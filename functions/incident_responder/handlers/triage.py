"""TriageFunction: an EventBridge event in, one redacted report out (incident_responder.respond)."""

from __future__ import annotations

import os

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from ..classify import load_catalog
from ..classify.fallback import load_model as load_fallback_model
from ..delivery import DeliveryIncomplete, JoinPending, monotonic_deadline
from ..redact import RedactingFormatter
from ..respond import Runtime, handle_event
from ..runtime import ResponderSettings, build_runtime

logger = Logger(logger_formatter=RedactingFormatter())
# Every AWS call goes through botocore; patching only it keeps the X-Ray set-up small.
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics()
settings = ResponderSettings.from_env()


class FailOpenPersistenceLayer(DynamoDBPersistenceLayer):
    """Idempotency is an optimisation here (the incident record is what prevents a second alert):
    when its table cannot be written, the event is handled anyway instead of failing before any sink
    runs. A record that already exists still answers the repeat as Powertools does."""

    def _put_record(self, data_record: Any) -> None:
        try:
            super()._put_record(data_record)
        except IdempotencyItemAlreadyExistsError:
            raise
        except (ClientError, BotoCoreError) as error:
            logger.warning("idempotency record not written; handling the event anyway", extra={"error": str(error)})

    def _update_record(self, data_record: Any) -> None:
        try:
            super()._update_record(data_record)
        except (ClientError, BotoCoreError) as error:
            logger.warning("idempotency record not updated", extra={"error": str(error)})

    def _delete_record(self, data_record: Any) -> None:
        try:
            super()._delete_record(data_record)
        except (ClientError, BotoCoreError) as error:
            logger.warning("idempotency record not deleted", extra={"error": str(error)})


# EventBridge retries delivery for up to 24 h: remember handled events for longer than that.
_idempotency = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=settings.idempotency_ttl_seconds)
_persistence = FailOpenPersistenceLayer(table_name=settings.incident_table or "incidents")
_runtime: Runtime | None = None
_context: LambdaContext | None = None
# Parsing and compiling the rules (~100 ms) and the fallback model (~3 ms): paid in Lambda's init
# phase, not in the first incident.
load_catalog()
load_fallback_model()


def _seconds_left() -> float | None:
    return _context.get_remaining_time_in_millis() / 1000 if _context is not None else None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = build_runtime(settings, deadline=monotonic_deadline(_seconds_left))
        if os.environ.get("GITHUB_TOKEN_SECRET_ARN"):
            # GitHub failures handed over by the webhook endpoint are read through GitHub's API here.
            from ..github.endpoint import GitHubSettings

            github = GitHubSettings.model_validate(dict(os.environ))
            _runtime.clients.github = github.client(_runtime.clients.secretsmanager)
    return _runtime


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent(config=_idempotency, persistence_store=_persistence)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _context
    _context = context
    try:
        outcome = handle_event(event, runtime())
    except (DeliveryIncomplete, JoinPending) as error:
        # Failing the invocation is the point: Lambda retries it, then sends it to the DLQ (alarmed).
        metrics.add_metric(name="Events_retried", unit=MetricUnit.Count, value=1)
        notifications = [n.model_dump(mode="json") for n in getattr(error, "notifications", [])]
        logger.error("event not finished; failing the invocation so that it is retried",
                     extra={"reason": str(error), "notifications": notifications})
        raise
    metrics.add_metric(name=f"Events_{outcome.outcome}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="AwsApiCalls", unit=MetricUnit.Count, value=outcome.api_calls)
    summary = outcome.model_dump(mode="json", exclude={"incident", "intake_error"})
    if outcome.outcome == "intake_error":
        logger.error("event rejected", extra={"outcome": summary})
    else:
        logger.info("event handled", extra={"outcome": summary})
    return summary
