"""SNS rendering: a subject SNS accepts, a plain-text body, attributes to filter on."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..models import Incident, IntakeError
from . import common
from .text import render_follow_up_text, render_intake_error_text, render_text

SUBJECT_MAX_CHARS = 100
SNS_MAX_BYTES = 262_144  # message body plus attribute names, types and values
MESSAGE_BUDGET_BYTES = 250_000  # leaves room for the attributes
_ATTRIBUTE_NAME = re.compile(r"^(?!AWS\.|Amazon\.)(?!.*\.\.)[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,255}(?<!\.)$")
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]+$")


class SnsMessage(BaseModel):
    """One SNS publish, checked against SNS's limits before it is sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(max_length=SUBJECT_MAX_CHARS)
    message: str = Field(min_length=1)
    attributes: dict[str, dict[str, str]] = {}

    @field_validator("subject")
    @classmethod
    def _subject_is_sns_safe(cls, subject: str) -> str:
        if not _PRINTABLE_ASCII.match(subject):
            raise ValueError("subject must be printable ASCII without line breaks; build it with sns_subject()")
        if subject[0] == " ":
            raise ValueError("subject must begin with a letter, number or punctuation mark, not a space")
        return subject

    @field_validator("attributes")
    @classmethod
    def _attributes_are_sns_message_attributes(cls, attributes: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, attribute in attributes.items():
            if not _ATTRIBUTE_NAME.match(name):
                raise ValueError(f"message attribute name {name!r} is not allowed by SNS: use letters, digits, _ - .")
            if attribute.get("DataType") not in ("String", "Number") or not attribute.get("StringValue"):
                raise ValueError(
                    f"message attribute {name!r} must be {{'DataType': 'String'|'Number', 'StringValue': <non-empty>}}"
                )
        return attributes

    @model_validator(mode="after")
    def _fits_in_one_sns_message(self) -> SnsMessage:
        size = len(self.message.encode()) + sum(
            len(name.encode()) + sum(len(v.encode()) for v in attribute.values())
            for name, attribute in self.attributes.items()
        )
        if size > SNS_MAX_BYTES:
            raise ValueError(f"message and attributes take {size} bytes; SNS accepts at most {SNS_MAX_BYTES}")
        return self

    def publish_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``sns_client.publish`` (TopicArn aside)."""
        return {"Subject": self.subject, "Message": self.message, "MessageAttributes": self.attributes}


def sns_subject(text: str) -> str:
    """``text`` made acceptable as an SNS subject: ASCII, one line, at most 100 chars."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    one_line = " ".join(re.sub(r"[^\x20-\x7e]", " ", ascii_text).split())
    if not one_line:
        one_line = "[3DGS] incident"
    if len(one_line) > SUBJECT_MAX_CHARS:
        one_line = one_line[: SUBJECT_MAX_CHARS - 3].rstrip() + "..."
    return one_line


def fit_message(text: str, budget_bytes: int = MESSAGE_BUDGET_BYTES) -> str:
    """Cut a body to ``budget_bytes`` of UTF-8, saying so at the end."""
    encoded = text.encode()
    if len(encoded) <= budget_bytes:
        return text
    note = f"\n... [truncated: the full report was {len(encoded)} bytes; SNS allows {SNS_MAX_BYTES}]\n"
    return encoded[: budget_bytes - len(note.encode())].decode(errors="ignore") + note


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def render_sns(incident: Incident) -> SnsMessage:
    diagnosis = incident.diagnosis
    return SnsMessage(
        subject=sns_subject(f"[3DGS] {common.verdict(incident)}: {common.subject_name(incident)}"),
        message=fit_message(render_text(incident, color=False)),
        attributes={
            "kind": _string("incident"),
            "category": _string(diagnosis.category.value),
            "cause": _string(diagnosis.cause),
            "source": _string(incident.event.source),
            "severity": _string(common.severity(incident)),
            # Number, so that subscription filter policies can say {"numeric": [">=", 0.8]}.
            "confidence": {"DataType": "Number", "StringValue": f"{diagnosis.confidence:.2f}"},
        },
    )


def render_follow_up_sns(incident: Incident, added: list[str]) -> SnsMessage:
    return SnsMessage(
        subject=sns_subject(f"[3DGS] update: {common.subject_name(incident)}"),
        message=fit_message(render_follow_up_text(incident, added)),
        attributes={
            "kind": _string("follow_up"),
            "category": _string(incident.diagnosis.category.value),
            "cause": _string(incident.diagnosis.cause),
            "source": _string(incident.event.source),
            "severity": _string("info"),
        },
    )


def render_intake_error_sns(err: IntakeError) -> SnsMessage:
    attributes = {"kind": _string("intake_error"), "severity": _string("medium")}
    if err.source:
        attributes["source"] = _string(err.source)
    return SnsMessage(
        subject=sns_subject(f"[3DGS] {common.intake_error_title(err)}"),
        message=fit_message(render_intake_error_text(err)),
        attributes=attributes,
    )
