"""Signed, expiring decision links: HMAC-SHA256 over approval id, decision and expiry, with a key
kept in Secrets Manager. A GET only shows a confirmation page (Slack and mail scanners fetch every
link); the page's POST decides."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

DECISIONS = ("approve", "reject")


def _message(approval_id: str, decision: str, expires: int) -> bytes:
    return f"v1|{approval_id}|{decision}|{expires}".encode()


def sign(key: bytes, approval_id: str, decision: str, expires: int) -> str:
    return hmac.new(key, _message(approval_id, decision, expires), hashlib.sha256).hexdigest()


def link(base_url: str, key: bytes, approval_id: str, decision: str, expires: int) -> str:
    query = urlencode({"approval": approval_id, "decision": decision, "expires": expires,
                       "sig": sign(key, approval_id, decision, expires)})
    return f"{base_url.rstrip('/')}/decide?{query}"


def check(key: bytes, params: dict[str, Any], now: float) -> str | None:
    """None when the link is genuine and current, else the reason it is refused."""
    approval_id, decision = str(params.get("approval") or ""), str(params.get("decision") or "")
    signature, expires_text = str(params.get("sig") or ""), str(params.get("expires") or "")
    if decision not in DECISIONS or not approval_id or not expires_text.isdigit() or not signature:
        return "malformed link (approval, decision, expires and sig are required)"
    expires = int(expires_text)
    if not hmac.compare_digest(sign(key, approval_id, decision, expires), signature):
        return "link signature invalid (forged or altered link)"
    if now > expires:
        return "link expired"
    return None


def key_from_secret(secret_string: str) -> bytes:
    """The secret is the key itself (template: GenerateSecretString) or JSON {"key": ...}."""
    try:
        value = json.loads(secret_string)
    except ValueError:
        value = secret_string
    if isinstance(value, dict):
        value = value.get("key") or value.get("signing_secret") or ""
    if not isinstance(value, str) or len(value) < 16:
        raise ValueError("the signing key secret must hold at least 16 characters")
    return value.encode()
