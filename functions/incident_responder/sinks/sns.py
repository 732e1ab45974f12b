"""SNS sink: one publish per incident, with attributes subscribers can filter on."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ..models import Incident, IntakeError, Notification
from ..report.sns import SnsMessage, render_follow_up_sns, render_intake_error_sns, render_sns
from .base import Kind, failed

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


class SnsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic_arn: str

    @field_validator("topic_arn")
    @classmethod
    def _is_a_topic_arn(cls, topic_arn: str) -> str:
        if not _TOPIC_ARN.match(topic_arn):
            raise ValueError(
                "topic_arn must be an SNS topic ARN like arn:aws:sns:us-west-2:123456789012:incidents "
                "(set the stack's topic ARN, not its name or URL)"
            )
        return topic_arn


class SnsSink:
    name = "sns"

    def __init__(self, params: SnsParams, sns_client: Any) -> None:
        self.params = params
        self.client = sns_client

    def send(self, incident: Incident, *, deadline: float | None = None) -> Notification:
        return self._publish(render_sns(incident), group=incident.key, dedup=f"{incident.key}|alert", kind="alert")

    def send_follow_up(self, incident: Incident, added: list[str], *, deadline: float | None = None) -> Notification:
        return self._publish(render_follow_up_sns(incident, added), group=incident.key,
                             dedup=f"{incident.key}|follow-up|{incident.linked_event_ids[-1]}", kind="follow_up")

    def send_intake_error(self, err: IntakeError, *, deadline: float | None = None) -> Notification:
        return self._publish(render_intake_error_sns(err), group="intake-errors",
                             dedup=f"intake|{err.event_id or err.raw_excerpt}", kind="intake_error")

    def _publish(self, message: SnsMessage, *, group: str, dedup: str, kind: Kind) -> Notification:
        kwargs: dict[str, Any] = message.publish_kwargs()
        kwargs["TopicArn"] = self.params.topic_arn
        if self.params.topic_arn.endswith(".fifo"):
            kwargs["MessageGroupId"] = hashlib.sha256(group.encode()).hexdigest()
            kwargs["MessageDeduplicationId"] = hashlib.sha256(dedup.encode()).hexdigest()
        try:
            response = self.client.publish(**kwargs)
        except Exception as error:  # botocore ClientError, endpoint/connection errors alike
            return failed(self.name, f"publish to {self.params.topic_arn} failed", error, kind=kind)
        return Notification(sink=self.name, ok=True, message_id=response.get("MessageId"),
                            detail=f"published to {self.params.topic_arn}", kind=kind)
