"""The incident record in DynamoDB: dedup, audit trail, rejected events, known-good images.

One table, partition key `id`; the item kinds are told apart by the key's prefix. Powertools'
idempotency records share the table under their own keys.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from .intake import KnownGoodImage
from .models import Incident, IntakeError, Notification

INTAKE_ERROR_TTL = timedelta(days=30)


class IncidentStore:
    def __init__(self, dynamodb: Any, table_name: str, *, now: Any = None) -> None:
        self._db = dynamodb
        self._table = table_name
        self._now = now or (lambda: datetime.now(timezone.utc))

    def open_incident(self, incident: Incident) -> bool:
        """Record a new incident; False (and the event linked) when it was already open."""
        key = f"incident#{incident.key}"
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": key},
                    "kind": {"S": "incident"},
                    "created_at": {"S": incident.created_at.isoformat()},
                    "category": {"S": incident.diagnosis.category.value},
                    "cause": {"S": incident.diagnosis.cause},
                    "event_ids": {"SS": [incident.event.event_id]},
                    "incident": {"S": incident.without_log_lines().model_dump_json()},
                },
                ConditionExpression="attribute_not_exists(id)",
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        self._db.update_item(
            TableName=self._table,
            Key={"id": {"S": key}},
            UpdateExpression="ADD event_ids :e",
            ExpressionAttributeValues={":e": {"SS": [incident.event.event_id]}},
        )
        return False

    def record_notifications(self, incident_key: str, notifications: list[Notification]) -> None:
        self._db.update_item(
            TableName=self._table,
            Key={"id": {"S": f"incident#{incident_key}"}},
            UpdateExpression="SET notifications = :n",
            ExpressionAttributeValues={
                ":n": {"S": json.dumps([n.model_dump(mode="json") for n in notifications])}
            },
        )

    def get_incident(self, incident_key: str) -> dict[str, Any] | None:
        item = self._db.get_item(TableName=self._table, Key={"id": {"S": f"incident#{incident_key}"}})
        return item.get("Item")

    def record_intake_error(self, error: IntakeError) -> str:
        identity = error.event_id or hashlib.sha256(error.raw_excerpt.encode()).hexdigest()[:32]
        key = f"intake-error#{identity}"
        self._db.put_item(
            TableName=self._table,
            Item={
                "id": {"S": key},
                "kind": {"S": "intake_error"},
                "error": {"S": error.model_dump_json()},
                "expiration": {"N": str(int((self._now() + INTAKE_ERROR_TTL).timestamp()))},
            },
        )
        return key

    def record_known_good(self, image: KnownGoodImage) -> None:
        """The newest completed image per repository: the rollback target of a later issue."""
        from .evidence import parse_ecr_uri

        repository = (parse_ecr_uri(image.image_uri) or {}).get("repository") or image.image_uri
        try:
            self._put_known_good(image, repository)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _put_known_good(self, image: KnownGoodImage, repository: str) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "id": {"S": f"known-good#{image.region}#{repository}"},
                "kind": {"S": "known_good"},
                "image_uri": {"S": image.image_uri},
                "training_job_name": {"S": image.training_job_name},
                "completed_at": {"S": image.completed_at.isoformat()},
            },
            # Events can arrive out of order: never replace a newer known-good image.
            ConditionExpression="attribute_not_exists(id) OR completed_at < :t",
            ExpressionAttributeValues={":t": {"S": image.completed_at.isoformat()}},
        )
