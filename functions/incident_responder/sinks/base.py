"""What every sink promises: redact right before sending, and report failure instead of raising."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..models import Incident, IntakeError, Notification
from ..redact import redact

DETAIL_MAX = 500


class SinkConfigError(ValueError):
    """A sink cannot be built from its configuration (the message says what to fix)."""


@runtime_checkable
class Sink(Protocol):
    name: str

    def send(self, incident: Incident) -> Notification: ...

    def send_intake_error(self, err: IntakeError) -> Notification: ...


def failed(sink: str, what: str, error: BaseException | str) -> Notification:
    """A failed delivery as a Notification; exception text is redacted (it may echo a URL)."""
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Notification(sink=sink, ok=False, detail=redact(f"{what}: {reason}")[:DETAIL_MAX])


def notify(sinks: list[Sink], incident: Incident) -> list[Notification]:
    """Send to every sink; one sink's failure never stops the others."""
    return [_guarded(sink, lambda s=sink: s.send(incident)) for sink in sinks]


def notify_intake_error(sinks: list[Sink], err: IntakeError) -> list[Notification]:
    return [_guarded(sink, lambda s=sink: s.send_intake_error(err)) for sink in sinks]


def _guarded(sink: Sink, send) -> Notification:
    try:
        return send()
    except Exception as error:  # a sink that breaks its promise still must not stop the rest
        return failed(getattr(sink, "name", type(sink).__name__), "sink raised", error)
