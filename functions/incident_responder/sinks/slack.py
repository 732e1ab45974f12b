"""Slack incoming-webhook sink. slack_sdk is imported when a sink is built, not at import."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..models import Incident, IntakeError, Notification
from ..redact import redact, redact_data
from .base import DETAIL_MAX, SinkConfigError, failed

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SlackWebhookParams(BaseModel):
    # The URL is the credential: never echo it in a validation error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    webhook_url: SecretStr
    timeout_s: int = Field(5, ge=1, le=30)
    max_retries: int = Field(2, ge=0, le=10)

    @field_validator("webhook_url")
    @classmethod
    def _is_a_webhook_url(cls, webhook_url: SecretStr) -> SecretStr:
        parts = urlsplit(webhook_url.get_secret_value().strip())
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ValueError("webhook_url must be an https:// URL like https://hooks.slack.com/services/...")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError("webhook_url must use https:// (plain http is accepted only for a local test receiver)")
        return webhook_url


class SlackWebhookSink:
    name = "slack"

    def __init__(self, params: SlackWebhookParams) -> None:
        from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
        from slack_sdk.webhook import WebhookClient

        self.params = params
        self._client = WebhookClient(
            url=params.webhook_url.get_secret_value().strip(),
            timeout=params.timeout_s,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=params.max_retries),
                RateLimitErrorRetryHandler(max_retry_count=params.max_retries),
            ],
        )

    @classmethod
    def from_secret(cls, secretsmanager_client: Any, secret_id: str, **params: Any) -> SlackWebhookSink:
        """Build from a Secrets Manager secret holding the URL, or JSON {"webhook_url": ...}."""
        shape = 'either the webhook URL or JSON {"webhook_url": "https://hooks.slack.com/services/..."}'
        try:
            secret = secretsmanager_client.get_secret_value(SecretId=secret_id)
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
            raise SinkConfigError(
                f"Slack webhook secret {secret_id!r} could not be read ({code}): check the secret id and "
                "that the function may call secretsmanager:GetSecretValue on it"
            ) from None
        value = (secret.get("SecretString") or "").strip()
        if not value:
            raise SinkConfigError(f"Slack webhook secret {secret_id!r} has no SecretString: store {shape}")
        if value.startswith("{"):
            try:
                document = json.loads(value)
            except ValueError:
                raise SinkConfigError(f"Slack webhook secret {secret_id!r} starts like JSON but does not parse: "
                                      f"store {shape}") from None
            url = document.get("webhook_url") if isinstance(document, dict) else None
            if not isinstance(url, str) or not url:
                keys = sorted(document) if isinstance(document, dict) else []
                raise SinkConfigError(f"Slack webhook secret {secret_id!r} is JSON without a \"webhook_url\" "
                                      f"string (keys found: {keys}): store {shape}")
        elif value.startswith(("https://", "http://")):
            url = value
        else:
            raise SinkConfigError(f"Slack webhook secret {secret_id!r} holds neither a URL nor JSON: store {shape}")
        try:
            return cls(SlackWebhookParams(webhook_url=url, **params))
        except ValidationError as error:
            raise SinkConfigError(f"Slack webhook secret {secret_id!r}: {error}") from None

    def send(self, incident: Incident) -> Notification:
        from ..report.slack import render_slack

        try:
            payload = render_slack(incident)
        except Exception as error:
            return failed(self.name, "rendering failed", error)
        return self._post(payload)

    def send_intake_error(self, err: IntakeError) -> Notification:
        from ..report.slack import render_intake_error_slack

        try:
            payload = render_intake_error_slack(err)
        except Exception as error:
            return failed(self.name, "rendering failed", error)
        return self._post(payload)

    def _post(self, payload: dict[str, Any]) -> Notification:
        # Console links need a signed-in browser; Slack's unfurl bot would only fetch a login page.
        payload = {**payload, "unfurl_links": False, "unfurl_media": False}
        try:
            response = self._client.send_dict(redact_data(payload))
        except Exception as error:  # connection errors once the retry handler gave up
            return failed(self.name, "webhook post failed", error)
        # WebhookClient returns Slack's error statuses (429 after retries, 4xx, 5xx) instead of raising.
        if response.status_code != 200:
            return failed(self.name, "webhook answered", f"HTTP {response.status_code}: {response.body}")
        return Notification(sink=self.name, ok=True, detail=redact(f"HTTP 200: {response.body}")[:DETAIL_MAX])
