"""SNS sink: one publish per incident, with attributes subscribers can filter on."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ..models import Incident, IntakeError, Notification
from ..redact import redact, redact_data
from ..report.sns import SnsMessage, render_intake_error_sns, render_sns, sns_subject
from .base import failed

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

    def send(self, incident: Incident) -> Notification:
        try:
            message = render_sns(incident)
        except Exception as error:
            return failed(self.name, "rendering failed", error)
        return self._publish(message, group=incident.key, dedup=f"{incident.key}|{incident.event.event_id}")

    def send_intake_error(self, err: IntakeError) -> Notification:
        try:
            message = render_intake_error_sns(err)
        except Exception as error:
            return failed(self.name, "rendering failed", error)
        return self._publish(message, group="intake-errors", dedup=f"intake|{err.event_id or err.raw_excerpt}")

    def _publish(self, message: SnsMessage, *, group: str, dedup: str) -> Notification:
        kwargs: dict[str, Any] = redact_data(message.publish_kwargs())
        kwargs["Subject"] = sns_subject(redact(kwargs["Subject"]))
        kwargs["TopicArn"] = self.params.topic_arn
        if self.params.topic_arn.endswith(".fifo"):
            kwargs["MessageGroupId"] = hashlib.sha256(group.encode()).hexdigest()
            kwargs["MessageDeduplicationId"] = hashlib.sha256(dedup.encode()).hexdigest()
        try:
            response = self.client.publish(**kwargs)
        except Exception as error:  # botocore ClientError, endpoint/connection errors alike
            return failed(self.name, f"publish to {self.params.topic_arn} failed", error)
        return Notification(sink=self.name, ok=True, message_id=response.get("MessageId"),
                            detail=f"published to {self.params.topic_arn}")
