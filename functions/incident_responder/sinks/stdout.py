"""Stdout sink: the terminal report (the CLI, and `sam local invoke` output)."""

from __future__ import annotations

import sys
from typing import TextIO

from pydantic import BaseModel, ConfigDict

from ..models import Incident, IntakeError, Notification
from ..report.text import render_follow_up_text, render_intake_error_text, render_text
from .base import Kind, failed


class StdoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    color: bool = False


class StdoutSink:
    name = "stdout"

    def __init__(self, params: StdoutParams | None = None, stream: TextIO | None = None) -> None:
        self.params = params or StdoutParams()
        # Resolved now, not at import, so that a replaced sys.stdout (tests, CLI pipes) is used.
        self.stream = stream if stream is not None else sys.stdout

    def send(self, incident: Incident, *, deadline: float | None = None) -> Notification:
        return self._write(render_text(incident, color=self.params.color), "alert")

    def send_follow_up(self, incident: Incident, added: list[str], *, deadline: float | None = None) -> Notification:
        return self._write(render_follow_up_text(incident, added, color=self.params.color), "follow_up")

    def send_intake_error(self, err: IntakeError, *, deadline: float | None = None) -> Notification:
        return self._write(render_intake_error_text(err, color=self.params.color), "intake_error")

    def _write(self, text: str, kind: Kind) -> Notification:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as error:  # closed pipe or closed file
            return failed(self.name, "write failed", error, kind=kind)
        return Notification(sink=self.name, ok=True, detail=f"{len(text)} characters written", kind=kind)
