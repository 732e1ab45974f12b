"""What every sink promises, and the one guard that keeps a failing sink from stopping the others.

Sinks receive redacted data only (the Incident is redacted by construction, at triage's
boundary) and do not redact again.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Literal, Protocol, runtime_checkable

from ..models import Incident, IntakeError, Notification
from ..redact import redact

DETAIL_MAX = 500
Kind = Literal["alert", "follow_up", "intake_error"]


class SinkConfigError(ValueError):
    """A sink cannot be built from its configuration (the message says what to fix)."""


@runtime_checkable
class Sink(Protocol):
    name: str

    def send(self, incident: Incident, *, deadline: float | None = None) -> Notification: ...

    def send_follow_up(self, incident: Incident, added: list[str], *, deadline: float | None = None
                       ) -> Notification: ...

    def send_intake_error(self, err: IntakeError, *, deadline: float | None = None) -> Notification: ...


def failed(sink: str, what: str, error: BaseException | str, *, kind: Kind = "alert") -> Notification:
    """A failed delivery as a Notification. The error text enters here from outside the incident (a
    connection error can echo the webhook URL), so this is where it is redacted."""
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Notification(sink=sink, ok=False, detail=redact(f"{what}: {reason}")[:DETAIL_MAX], kind=kind)


def seconds_left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def run_guarded(jobs: list[tuple[Sink, Kind, Callable[[], Notification]]]) -> list[Notification]:
    """Run each sink's delivery on its own thread (a slow sink never delays another) and turn a
    sink that raises into a failed Notification. Results keep the jobs' order."""
    if not jobs:
        return []

    def guarded(sink: Sink, kind: Kind, send: Callable[[], Notification]) -> Notification:
        try:
            return send()
        except Exception as error:  # noqa: BLE001 - a sink that breaks its promise must not stop the rest
            return failed(getattr(sink, "name", type(sink).__name__), "sink raised", error, kind=kind)

    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="sink") as pool:
        futures = [pool.submit(contextvars.copy_context().run, guarded, sink, kind, send)
                   for sink, kind, send in jobs]
        return [future.result() for future in futures]
