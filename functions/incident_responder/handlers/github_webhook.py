"""GitHubWebhookFunction: GitHub's `workflow_run` webhook (HTTP API, payload v2) in, one report out.

Thin: the secrets are read on first use and kept (a failed read is retried on the next delivery), and
everything else is incident_responder.github.endpoint.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from ..delivery import monotonic_deadline
from ..github.endpoint import GitHubSettings, GitHubWebhookEndpoint, secret_text
from ..github.handoff import EventBusHandoff
from ..redact import RedactingFormatter
from ..rollback.service import SecretValue
from ..runtime import ResponderSettings, build_runtime

logger = Logger(logger_formatter=RedactingFormatter())
app = APIGatewayHttpResolver()
settings = ResponderSettings.from_env()
github_settings = GitHubSettings.model_validate(dict(os.environ))
_endpoint: GitHubWebhookEndpoint | None = None
_context: Any = None


def endpoint() -> GitHubWebhookEndpoint:
    global _endpoint
    if _endpoint is None:
        runtime = build_runtime(settings, deadline=monotonic_deadline(
            lambda: _context.get_remaining_time_in_millis() / 1000 if _context is not None else None))
        secretsmanager = runtime.clients.secretsmanager
        webhook_secret = SecretValue(secretsmanager, github_settings.webhook_secret_arn)
        runtime.clients.github = github_settings.client(secretsmanager)
        bus = github_settings.triage_event_bus
        _endpoint = GitHubWebhookEndpoint.build(
            config=github_settings.config(settings.region or "us-east-1"),
            secret=lambda: secret_text(webhook_secret.get(), "secret"),
            runtime=runtime, table=settings.incident_table, log=logger,
            handoff=EventBusHandoff(runtime.clients.events, bus) if bus else None)
    return _endpoint


def raw_body(event: dict[str, Any]) -> bytes:
    """The bytes GitHub signed: API Gateway passes a JSON body as text, anything else base64-encoded."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


@app.post("/github/webhook")
def github_webhook() -> Response:
    reply = endpoint().handle(dict(app.current_event.headers or {}), raw_body(app.current_event.raw_event))
    logger.info("github delivery", extra={"status": reply.status, **reply.body})
    return Response(status_code=reply.status, content_type="application/json", body=reply.text)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _context
    _context = context
    return app.resolve(event, context)
