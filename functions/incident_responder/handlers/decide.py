"""DecisionFunction: the HTTP API behind the Slack buttons and the signed decision links."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from ..clients import make_clients
from ..redact import RedactingFormatter
from ..rollback.endpoint import DecisionEndpoint, HttpReply, SlackGroups
from ..rollback.service import SecretValue
from ..runtime import ResponderSettings, build_rollback

logger = Logger(logger_formatter=RedactingFormatter())
app = APIGatewayHttpResolver()
settings = ResponderSettings.from_env()
_endpoint: DecisionEndpoint | None = None


def endpoint() -> DecisionEndpoint:
    global _endpoint
    if _endpoint is None:
        clients = make_clients(region=settings.region, endpoint_url=settings.endpoint_url)
        secret = SecretValue(clients.secretsmanager, settings.slack_signing_secret_arn)
        bot_token = SecretValue(clients.secretsmanager, settings.slack_bot_token_secret_arn)
        _endpoint = DecisionEndpoint(
            service=build_rollback(settings, clients), slack_signing_secret=secret.get,
            allowed_slack_users=settings.allowed_slack_users,
            slack_groups=SlackGroups(settings.allowed_slack_groups, bot_token.get, settings.slack_api_url))
    return _endpoint


def _response(reply: HttpReply) -> Response:
    return Response(status_code=reply.status, content_type=reply.content_type, body=reply.body)


@app.post("/slack/actions")
def slack_actions() -> Response:
    # The raw body exactly as Slack signed it (API Gateway may base64-encode it).
    return _response(endpoint().slack(app.current_event.decoded_body or "", dict(app.current_event.headers)))


@app.get("/decide")
def decision_page() -> Response:
    return _response(endpoint().link_page(dict(app.current_event.query_string_parameters or {})))


@app.post("/decide")
def decision_post() -> Response:
    return _response(endpoint().link_decide(app.current_event.decoded_body or ""))


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
