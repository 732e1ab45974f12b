"""Slack incoming-webhook sink. slack_sdk is imported when a sink is built, not at import."""

from __future__ import annotations

import json
import random
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..models import Incident, IntakeError, Notification
from .base import DETAIL_MAX, Kind, SinkConfigError, failed, seconds_left

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SlackWebhookParams(BaseModel):
    # The URL is the credential: never echo it in a validation error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    webhook_url: SecretStr
    timeout_s: int = Field(5, ge=1, le=30)
    max_retries: int = Field(2, ge=0, le=10)
    max_retry_after_s: float = Field(
        10.0, ge=0, le=300, description="a 429's Retry-After longer than this is not waited for (the "
                                        "delivery fails and the event's retry delivers it later)")

    @field_validator("webhook_url")
    @classmethod
    def _is_a_webhook_url(cls, webhook_url: SecretStr) -> SecretStr:
        parts = urlsplit(webhook_url.get_secret_value().strip())
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ValueError("webhook_url must be an https:// URL like https://hooks.slack.com/services/...")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError("webhook_url must use https:// (plain http is accepted only for a local test receiver)")
        return webhook_url


def _bounded_rate_limit_handler(max_retries: int, cap_s: float, time_left: Callable[[], float | None]):
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
        """Honours Retry-After only while it is short and the function has the time for it."""

        @staticmethod
        def _retry_after(response: Any) -> float:
            for name, values in (response.headers or {}).items():
                if name.lower() == "retry-after":
                    try:
                        return float(values[0] if isinstance(values, list) else values)
                    except (TypeError, ValueError):
                        return 1.0
            return 1.0

        def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            wait = self._retry_after(response)
            left = time_left()
            return wait <= cap_s and (left is None or wait + 1 < left)

        def prepare_for_next_attempt(self, *, state: Any, request: Any, response: Any = None,
                                     error: Any = None) -> None:
            state.next_attempt_requested = True
            time.sleep(self._retry_after(response) + random.random() / 4)
            state.increment_current_attempt()

    return BoundedRateLimitRetryHandler(max_retry_count=max_retries)


class SlackWebhookSink:
    name = "slack"

    def __init__(self, params: SlackWebhookParams) -> None:
        self.params = params

    def _client(self, deadline: float | None) -> Any:
        from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, ServerErrorRetryHandler
        from slack_sdk.webhook import WebhookClient

        left = seconds_left(deadline)
        timeout = self.params.timeout_s if left is None else max(1, min(self.params.timeout_s, int(left) - 1))
        return WebhookClient(
            url=self.params.webhook_url.get_secret_value().strip(),
            timeout=timeout,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=self.params.max_retries),
                ServerErrorRetryHandler(max_retry_count=self.params.max_retries),
                _bounded_rate_limit_handler(self.params.max_retries, self.params.max_retry_after_s,
                                            lambda: seconds_left(deadline)),
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

    def send(self, incident: Incident, *, deadline: float | None = None) -> Notification:
        from ..report.slack import render_slack

        return self._post(render_slack(incident), deadline, "alert")

    def send_follow_up(self, incident: Incident, added: list[str], *, deadline: float | None = None) -> Notification:
        from ..report.slack import render_follow_up_slack

        return self._post(render_follow_up_slack(incident, added), deadline, "follow_up")

    def send_intake_error(self, err: IntakeError, *, deadline: float | None = None) -> Notification:
        from ..report.slack import render_intake_error_slack

        return self._post(render_intake_error_slack(err), deadline, "intake_error")

    def _post(self, payload: dict[str, Any], deadline: float | None, kind: Kind) -> Notification:
        # Console links need a signed-in browser; Slack's unfurl bot would only fetch a login page.
        payload = {**payload, "unfurl_links": False, "unfurl_media": False}
        try:
            response = self._client(deadline).send_dict(payload)
        except Exception as error:  # connection errors once the retry handler gave up
            return failed(self.name, "webhook post failed", error, kind=kind)
        # WebhookClient returns Slack's error statuses (429 after retries, 4xx, 5xx) instead of raising.
        if response.status_code != 200:
            return failed(self.name, "webhook answered", f"HTTP {response.status_code}: {response.body}", kind=kind)
        return Notification(sink=self.name, ok=True, detail=f"HTTP 200: {response.body}"[:DETAIL_MAX], kind=kind)
