"""The incident record in DynamoDB: dedup, deliveries per sink, audit trail, rejected events.
(The known-good ledger shares the table: rollback/ledger.py.)

One table, partition key `id`; item kinds are told apart by the key's prefix. Powertools'
idempotency records share the table under their own keys. Every write that can be repeated by a
retry is conditional or idempotent (SET of a map entry, ADD to a set), so a retry never undoes or
doubles what an earlier attempt recorded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .models import Incident, IntakeError, Notification

INTAKE_ERROR_TTL = timedelta(days=30)
# A sink claimed by an invocation that then died is free again after this long (longer than the
# function's timeout, so a live invocation never loses its claim).
CLAIM_STALE_AFTER = timedelta(minutes=15)
ATTEMPT_TTL = timedelta(days=2)
# A DynamoDB item holds 400 KB (names and values); the incident's JSON is kept well under it.
RECORD_MAX_BYTES = 300_000
_MIN_STRING_CHARS = 64


class StoreUnavailable(RuntimeError):
    """The incident table could not be read or written (throttled, missing, no permission)."""


@dataclass(frozen=True)
class OpenedIncident:
    """What the record said when an incident was opened."""

    created: bool
    incident: Incident
    delivered: dict[str, Notification] = field(default_factory=dict)
    follow_ups: frozenset[str] = frozenset()
    version: int = 1


def _unavailable(action: str, exc: Exception) -> StoreUnavailable:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
    return StoreUnavailable(f"incident table {action} failed ({code})")


def _conditional(action: str, write: Any) -> bool:
    """Run a conditional write: True when it was applied, False when its condition did not hold;
    any other failure is the store being unavailable."""
    try:
        write()
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise _unavailable(action, exc) from None
    except BotoCoreError as exc:
        raise _unavailable(action, exc) from None


class IncidentStore:
    def __init__(self, dynamodb: Any, table_name: str, *, now: Any = None) -> None:
        self._db = dynamodb
        self._table = table_name
        self._now = now or (lambda: datetime.now(timezone.utc))

    # ------------------------------------------------------------ incidents

    def open(self, incident: Incident) -> OpenedIncident:
        """Create the incident's record, or return the existing one with what it has delivered."""
        key = self._key(incident.key)
        created = _conditional("PutItem", lambda: self._db.put_item(
            TableName=self._table,
            Item={
                "id": key,
                "kind": {"S": "incident"},
                "created_at": {"S": incident.created_at.isoformat()},
                "category": {"S": incident.diagnosis.category.value},
                "cause": {"S": incident.diagnosis.cause},
                "event_ids": {"SS": [incident.event.event_id]},
                "incident": {"S": record_json(incident)},
                "deliveries": {"M": {}},
                "follow_ups": {"M": {}},
                "claims": {"M": {}},
                "claimed_at": {"M": {}},
                "version": {"N": "1"},
            },
            ConditionExpression="attribute_not_exists(id)",
        ))
        if created:
            return OpenedIncident(created=True, incident=incident)
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key={"id": key},
                UpdateExpression="ADD event_ids :e",
                ExpressionAttributeValues={":e": {"SS": [incident.event.event_id]}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("UpdateItem", exc) from None
        stored = Incident.model_validate_json(item["incident"]["S"])
        delivered = {
            sink: Notification.model_validate_json(value["S"])
            for sink, value in item.get("deliveries", {}).get("M", {}).items()
        }
        return OpenedIncident(created=False, incident=stored, delivered=delivered,
                              follow_ups=frozenset(item.get("follow_ups", {}).get("M", {})),
                              version=int(item.get("version", {}).get("N", "1")))

    def claim(self, incident_key: str, entry: str, *, owner: str) -> bool:
        """Claim the right to deliver ``entry`` (a sink, or a follow-up's key) before sending, so
        that two invocations handling the same incident at once never both send. True: ours to send.
        A claim is ours again on a retry of the same event (``owner``), and anyone's once stale."""
        now = self._now()
        attribute = "follow_ups" if "|" in entry else "deliveries"
        return _conditional("UpdateItem", lambda: self._db.update_item(
            TableName=self._table,
            Key={"id": self._key(incident_key)},
            UpdateExpression="SET claims.#e = :me, claimed_at.#e = :now",
            ConditionExpression=(f"attribute_exists(id) AND attribute_not_exists({attribute}.#e) AND "
                                 "(attribute_not_exists(claims.#e) OR claims.#e = :me OR claimed_at.#e < :stale)"),
            ExpressionAttributeNames={"#e": entry},
            ExpressionAttributeValues={":me": {"S": owner}, ":now": {"N": str(int(now.timestamp()))},
                                       ":stale": {"N": str(int((now - CLAIM_STALE_AFTER).timestamp()))}},
        ))

    def release(self, incident_key: str, entry: str, *, owner: str) -> None:
        """Give a claim back after a failed send, so that the next attempt by anyone may deliver."""
        _conditional("UpdateItem", lambda: self._db.update_item(
            TableName=self._table,
            Key={"id": self._key(incident_key)},
            UpdateExpression="REMOVE claims.#e, claimed_at.#e",
            ConditionExpression="claims.#e = :me",
            ExpressionAttributeNames={"#e": entry},
            ExpressionAttributeValues={":me": {"S": owner}},
        ))

    def record_delivery(self, incident_key: str, notification: Notification, *, event_id: str) -> None:
        """Record one sink's successful alert (or follow-up for ``event_id``). Idempotent."""
        if notification.kind == "follow_up":
            attribute, entry = "follow_ups", follow_up_key(event_id, notification.sink)
        else:
            attribute, entry = "deliveries", notification.sink
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"id": self._key(incident_key)},
                UpdateExpression="SET #a.#s = :n",
                ExpressionAttributeNames={"#a": attribute, "#s": entry},
                ExpressionAttributeValues={":n": {"S": notification.model_dump_json()}},
                ConditionExpression="attribute_exists(id)",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("UpdateItem", exc) from None

    def update_incident(self, incident: Incident, *, version: int) -> bool:
        """Replace the stored incident (an enrichment) if it is still at ``version``; its deliveries
        are kept. False: another invocation enriched it first (read it again and merge)."""
        return _conditional("UpdateItem", lambda: self._db.update_item(
            TableName=self._table,
            Key={"id": self._key(incident.key)},
            UpdateExpression="SET incident = :i, version = :next ADD event_ids :e",
            ExpressionAttributeValues={":i": {"S": record_json(incident)},
                                       ":e": {"SS": list(incident.linked_event_ids)},
                                       ":v": {"N": str(version)}, ":next": {"N": str(version + 1)}},
            ConditionExpression="attribute_exists(id) AND version = :v",
        ))

    def count_attempt(self, event_id: str) -> int:
        """How many times this event has been handled, this time included (for bounded waits on a join)."""
        key = "attempt#" + hashlib.sha256(event_id.encode()).hexdigest()
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression="ADD attempts :one SET expiration = if_not_exists(expiration, :t)",
                ExpressionAttributeValues={":one": {"N": "1"},
                                           ":t": {"N": str(int((self._now() + ATTEMPT_TTL).timestamp()))}},
                ReturnValues="UPDATED_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("UpdateItem", exc) from None
        return int(item["Attributes"]["attempts"]["N"])

    # ------------------------------------------------------------ other items

    def record_intake_error(self, error: IntakeError) -> str:
        # The IntakeError is redacted at intake, its event id included.
        identity = error.event_id or hashlib.sha256(error.raw_excerpt.encode()).hexdigest()[:32]
        key = f"intake-error#{identity}"
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": key},
                    "kind": {"S": "intake_error"},
                    "error": {"S": bounded_json(error)},
                    "expiration": {"N": str(int((self._now() + INTAKE_ERROR_TTL).timestamp()))},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("PutItem", exc) from None
        return key

    @staticmethod
    def _key(incident_key: str) -> dict[str, str]:
        return {"S": f"incident#{incident_key}"}


def follow_up_key(event_id: str, sink: str) -> str:
    return f"{event_id}|{sink}"


def record_json(incident: Incident) -> str:
    """The incident as the record keeps it: without the log tails' lines (they stay in CloudWatch;
    the diagnosis keeps the lines that decided it), and bounded in size whatever the input."""
    return bounded_json(incident.without_log_lines())


def bounded_json(model: Any, limit: int = RECORD_MAX_BYTES) -> str:
    """``model`` as JSON of at most ``limit`` bytes: its longest strings are cut (saying so) until it
    fits. Control characters count six bytes each once JSON-escaped, so the cut is by encoded size."""
    text = model.model_dump_json()
    if len(text.encode()) <= limit:
        return text
    data = model.model_dump(mode="json")
    cap = max(_MIN_STRING_CHARS, limit // 8)
    while cap >= _MIN_STRING_CHARS:
        text = json.dumps(_cut_strings(data, cap))
        if len(text.encode()) <= limit:
            return type(model).model_validate_json(text).model_dump_json()
        cap //= 2
    raise ValueError(f"{type(model).__name__} does not fit in {limit} bytes even with every string cut")


def _cut_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return value[:cap] + f" … [cut: {len(value)} chars]"
    if isinstance(value, list):
        return [_cut_strings(item, cap) for item in value]
    if isinstance(value, dict):
        return {key: _cut_strings(item, cap) for key, item in value.items()}
    return value
