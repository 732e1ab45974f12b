"""Replay dedupe on X-GitHub-Delivery: one TTL'd item per delivery in the incident table.

GitHub gives every event one GUID, shared by all its deliveries and redeliveries, and never redelivers
on its own (a person redelivers from the webhook's "Recent Deliveries", up to 3 days later). So a second
delivery with a GUID we have handled is a replay: it is refused and makes no second report. A delivery
whose handling failed is released, so that a redelivery may try again; a claim left by a function that
was killed mid-way is free again after CLAIM_STALE_AFTER.

The item outlives the webhook's maximum accepted age, so a replay is always caught by one of the two
checks: inside the age by this ledger, after it by the age check (webhook.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Literal

from botocore.exceptions import BotoCoreError, ClientError

from ..store import StoreUnavailable

CLAIM_STALE_AFTER = timedelta(minutes=15)
# Beyond the webhook's maximum age, so that no replay falls between the two checks.
TTL_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class Claim:
    outcome: Literal["claimed", "replay"]
    reason: str = ""


def delivery_key(delivery_id: str) -> str:
    # Hashed: the header is attacker-chosen text until the signature is checked, and keys stay short.
    return "github-delivery#" + hashlib.sha256(delivery_id.encode()).hexdigest()


class DeliveryLedger:
    def __init__(self, dynamodb: Any, table: str, *, max_age: timedelta,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._db = dynamodb
        self._table = table
        self._ttl = max_age + TTL_MARGIN
        self._now = now

    def claim(self, delivery_id: str) -> Claim:
        """Claim the delivery for handling, or say why it is a replay. Raises StoreUnavailable."""
        now = self._now()
        key = {"id": {"S": delivery_key(delivery_id)}}
        try:
            self._db.put_item(
                TableName=self._table,
                Item={**key, "kind": {"S": "github_delivery"}, "state": {"S": "handling"},
                      "claimed_at": {"N": str(int(now.timestamp()))},
                      "expiration": {"N": str(int((now + self._ttl).timestamp()))}},
                ConditionExpression="attribute_not_exists(id) OR (#s = :handling AND claimed_at < :stale)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":handling": {"S": "handling"},
                                           ":stale": {"N": str(int((now - CLAIM_STALE_AFTER).timestamp()))}},
            )
            return Claim("claimed")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _unavailable("PutItem", exc) from None
        except BotoCoreError as exc:
            raise _unavailable("PutItem", exc) from None
        return Claim("replay", self._why_replay(key, delivery_id))

    def _why_replay(self, key: dict[str, Any], delivery_id: str) -> str:
        try:
            item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item", {})
        except (ClientError, BotoCoreError):
            item = {}
        state = item.get("state", {}).get("S")
        if state == "handled":
            at = datetime.fromtimestamp(int(item.get("handled_at", {}).get("N", "0")), timezone.utc)
            detail = item.get("outcome", {}).get("S", "")
            return (f"replayed delivery {delivery_id}: already handled at {at:%Y-%m-%dT%H:%M:%SZ}"
                    + (f" ({detail})" if detail else "") + "; no second report")
        return (f"replayed delivery {delivery_id}: it is being handled by another invocation; no second report "
                f"(if that one fails, a redelivery after {int(CLAIM_STALE_AFTER.total_seconds() // 60)} min is "
                "handled)")

    def done(self, delivery_id: str, outcome: str) -> None:
        """Mark the delivery handled (best effort: the claim already stops replays)."""
        try:
            self._db.update_item(
                TableName=self._table, Key={"id": {"S": delivery_key(delivery_id)}},
                UpdateExpression="SET #s = :handled, handled_at = :now, outcome = :o",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":handled": {"S": "handled"}, ":o": {"S": outcome[:500]},
                                           ":now": {"N": str(int(self._now().timestamp()))}},
            )
        except (ClientError, BotoCoreError):
            pass

    def release(self, delivery_id: str) -> None:
        """Forget a claim whose handling failed, so that GitHub's redelivery is handled (best effort)."""
        try:
            self._db.delete_item(TableName=self._table, Key={"id": {"S": delivery_key(delivery_id)}},
                                 ConditionExpression="#s = :handling", ExpressionAttributeNames={"#s": "state"},
                                 ExpressionAttributeValues={":handling": {"S": "handling"}})
        except (ClientError, BotoCoreError):
            pass


def _unavailable(action: str, exc: Exception) -> StoreUnavailable:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
    return StoreUnavailable(f"incident table {action} failed ({code}): the delivery was not handled; redeliver it "
                            "from the webhook's Recent Deliveries in GitHub")
