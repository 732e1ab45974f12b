"""The webhook handler's two adapters: the bytes GitHub signed out of an HTTP API event, and the secrets
as the console stores them."""

from __future__ import annotations

import base64
import json

import pytest

from incident_responder.github.webhook import signature
from incident_responder.handlers.github_webhook import raw_body, secret_text

BODY = json.dumps({"action": "completed", "workflow_run": {"name": "Build – naïve ✓"}}, ensure_ascii=False)


@pytest.mark.parametrize("event", [
    {"body": BODY, "isBase64Encoded": False},
    {"body": base64.b64encode(BODY.encode()).decode(), "isBase64Encoded": True},
], ids=["text", "base64"])
def test_the_body_is_the_exact_bytes_github_signed(event) -> None:
    assert raw_body(event) == BODY.encode("utf-8")
    assert signature("s", raw_body(event)) == signature("s", BODY.encode())


def test_an_empty_body_is_empty_bytes() -> None:
    assert raw_body({"body": None, "isBase64Encoded": False}) == b""


@pytest.mark.parametrize("stored, key, expected", [
    ("plain-value\n", "secret", "plain-value"),
    ('{"secret": "from-json"}', "secret", "from-json"),
    ('{"token": "ghs_x"}', "token", "ghs_x"),
    ("{not json", "secret", "{not json"),
    (None, "secret", None),
])
def test_a_secret_is_read_plain_or_from_its_json_key(stored, key, expected) -> None:
    assert secret_text(stored, key) == expected


def test_json_without_the_key_is_an_error_that_names_the_key() -> None:
    with pytest.raises(ValueError, match='"secret"'):
        secret_text('{"webhook": "x"}', "secret")
