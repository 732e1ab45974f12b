"""TriageFunction: an EventBridge event in, one redacted report out (incident_responder.triage)."""

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
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..classify import load_catalog
from ..redact import RedactingFormatter
from ..runtime import ResponderSettings, build_runtime
from ..triage import Runtime, handle_event

logger = Logger(logger_formatter=RedactingFormatter())
# Every AWS call goes through botocore; patching only it keeps the X-Ray set-up small.
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics()
# EventBridge retries delivery for up to 24 h: remember handled events for longer than that.
_idempotency = IdempotencyConfig(
    event_key_jmespath="id",
    expires_after_seconds=int(os.environ.get("IDEMPOTENCY_TTL_SECONDS", "90000")),
)
_persistence = DynamoDBPersistenceLayer(table_name=os.environ.get("INCIDENT_TABLE", "incidents"))
_runtime: Runtime | None = None
# Parsing and compiling the rules takes ~150 ms: pay it in Lambda's init phase, not in the first incident.
load_catalog()


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = build_runtime(ResponderSettings.from_env())
    return _runtime


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent(config=_idempotency, persistence_store=_persistence)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = handle_event(event, runtime())
    metrics.add_metric(name=f"Events_{outcome.outcome}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="AwsApiCalls", unit=MetricUnit.Count, value=outcome.api_calls)
    summary = outcome.model_dump(mode="json", exclude={"incident", "intake_error"})
    if outcome.outcome == "intake_error":
        logger.error("event rejected", extra={"outcome": summary})
    else:
        logger.info("event handled", extra={"outcome": summary})
    return summary
