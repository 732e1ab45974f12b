"""Approval items in the incident table (`approval#<id>`): what the workflow recorded, the task token
it waits on (never leaves the table), who decided, and every refusal (also on the incident)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from ..store import IncidentStore

APPROVAL_KEY_PREFIX = "approval#"
MAX_REFUSALS = 50  # per item: a forger cannot grow a record without bound


class ApprovalStoreError(RuntimeError):
    pass


def approval_item_key(approval_id: str) -> str:
    return APPROVAL_KEY_PREFIX + approval_id


def incident_item_key(incident_key: str) -> str:
    return IncidentStore._key(incident_key)["S"]


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values (S, N, BOOL, L of M, M)."""
    def value(v: dict[str, Any]) -> Any:
        (kind, inner), = v.items()
        if kind == "S":
            return inner
        if kind == "N":
            return float(inner) if "." in inner else int(inner)
        if kind == "BOOL":
            return inner
        if kind == "L":
            return [value(x) for x in inner]
        if kind == "M":
            return {k: value(x) for k, x in inner.items()}
        if kind in ("SS", "NS"):
            return list(inner)
        return None
    return {k: value(v) for k, v in item.items()}


class Approvals:
    def __init__(self, dynamodb: Any, table: str, *, now: Callable[[], datetime] | None = None) -> None:
        self._db = dynamodb
        self._table = table
        self._now = now or (lambda: datetime.now(timezone.utc))

    def get(self, approval_id: str) -> dict[str, Any] | None:
        try:
            item = self._db.get_item(TableName=self._table, Key={"id": {"S": approval_item_key(approval_id)}},
                                     ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise ApprovalStoreError(f"incident table GetItem failed ({_code(exc)})") from None
        return plain(item) if item else None

    def incident_item(self, incident_key: str) -> dict[str, Any] | None:
        try:
            item = self._db.get_item(TableName=self._table, Key={"id": {"S": incident_item_key(incident_key)}},
                                     ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise ApprovalStoreError(f"incident table GetItem failed ({_code(exc)})") from None
        return plain(item) if item else None

    def claim(self, approval_id: str, token: str, decision: str, actor: dict[str, str]) -> bool:
        """pending -> approved/rejected, once: a double click or a replay finds it decided."""
        status = "approved" if decision == "approve" else "rejected"
        try:
            self._db.update_item(
                TableName=self._table, Key={"id": {"S": approval_item_key(approval_id)}},
                UpdateExpression="SET #s = :s, decided_by = :by, decided_via = :via, decided_at = :at",
                ConditionExpression="#s = :pending AND task_token = :token",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": status}, ":by": {"S": actor["name"]},
                                           ":via": {"S": actor["via"]}, ":at": {"S": self._now().isoformat()},
                                           ":pending": {"S": "pending"}, ":token": {"S": token}})
            return True
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise ApprovalStoreError(f"incident table UpdateItem failed ({_code(exc)})") from None
        except BotoCoreError as exc:
            raise ApprovalStoreError(f"incident table UpdateItem failed ({_code(exc)})") from None

    def mark(self, approval_id: str, status: str) -> None:
        try:
            self._db.update_item(TableName=self._table, Key={"id": {"S": approval_item_key(approval_id)}},
                                 UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues={":s": {"S": status}},
                                 ConditionExpression="attribute_exists(id)")
        except (ClientError, BotoCoreError) as exc:
            raise ApprovalStoreError(f"incident table UpdateItem failed ({_code(exc)})") from None

    def record_refusal(self, approval_id: str | None, incident_key: str | None, reason: str,
                       actor: dict[str, str]) -> list[str]:
        """Append the refusal to the approval item and to its incident; returns where it was recorded."""
        entry = {"M": {"at": {"S": self._now().isoformat()}, "reason": {"S": reason[:500]},
                       "by": {"S": actor.get("name", "?")[:200]}, "via": {"S": actor.get("via", "?")},
                       "approval_id": {"S": (approval_id or "")[:64]}}}
        recorded = []
        keys = []
        if approval_id:
            keys.append(approval_item_key(approval_id))
        if incident_key:
            keys.append(incident_item_key(incident_key))
        for key in keys:
            try:
                self._db.update_item(
                    TableName=self._table, Key={"id": {"S": key}},
                    UpdateExpression="SET refusals = list_append(if_not_exists(refusals, :empty), :r)",
                    ConditionExpression="attribute_exists(id) AND (attribute_not_exists(refusals) OR size(refusals) < :max)",
                    ExpressionAttributeValues={":empty": {"L": []}, ":r": {"L": [entry]},
                                               ":max": {"N": str(MAX_REFUSALS)}})
                recorded.append(key)
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise ApprovalStoreError(f"incident table UpdateItem failed ({_code(exc)})") from None
            except BotoCoreError as exc:
                raise ApprovalStoreError(f"incident table UpdateItem failed ({_code(exc)})") from None
        return recorded


def outcome_of(item: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(item.get("outcome") or "{}")
    except ValueError:
        return {}
