"""Terminal rendering: what the CLI prints, and the plain-text body of SNS messages.

Written to be read half-awake: the first line says what failed and the verdict, the
rest is evidence, then what to do, then where to look.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

from ..models import Incident, IntakeError
from . import common

M = TypeVar("M", bound=BaseModel)

FAILURE_REASON_MAX = 4000
FACTS_LINE_WIDTH = 100

# ANSI/VT escape sequences (CSI, OSC, and two-character ESC sequences) and the other C0/C1
# control characters: text from logs must never move the cursor, retitle or recolour a terminal.
# Python's re is linear here (each branch opens with its own literal and its classes are disjoint, so
# nothing backtracks: 1 MB in about 60 ms), and unlike RE2's wrapper it pays no Python call per match.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_RESET = "\033[0m"
_STYLES = {"alert": "\033[1;31m", "verdict": "\033[1;33m", "heading": "\033[1;36m", "dim": "\033[2m"}


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, style: str, text: str) -> str:
        return f"{_STYLES[style]}{text}{_RESET}" if self.color else text


def _indent(text: str, prefix: str = "  ", hanging: str | None = None) -> list[str]:
    lines = text.splitlines() or [""]
    rest = hanging if hanging is not None else prefix
    return [prefix + lines[0], *(rest + line for line in lines[1:])]


def _wrap_facts(facts: list[tuple[str, str]]) -> list[str]:
    lines: list[str] = []
    for label, value in facts:
        item = f"{label}: {value}"
        if lines and len(lines[-1]) + 3 + len(item) <= FACTS_LINE_WIDTH:
            lines[-1] += " | " + item
        else:
            lines.append(item)
    return lines


def printable(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (tabs and newlines kept)."""
    return _ESCAPES.sub("", text)


def _printable_data(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [_printable_data(item) for item in value]
    if isinstance(value, dict):
        return {_printable_data(key): _printable_data(item) for key, item in value.items()}
    return value


def _printable_model(model: M) -> M:
    return type(model).model_validate(_printable_data(model.model_dump(mode="python")))


def render_text(incident: Incident, *, color: bool = False) -> str:
    """The CLI's report. The Incident is redacted by construction; here text from logs loses its
    control and escape sequences before anything is laid out (our own colours come after)."""
    incident = _printable_model(incident.without_log_lines())
    paint = _Painter(color)
    diagnosis = incident.diagnosis
    out: list[str] = [
        paint("alert", f"{common.outcome(incident)} {common.what_failed(incident)}")
        + " -> "
        + paint("verdict", common.verdict(incident))
        + f" (confidence {common.confidence_pct(incident)})",
        f"  {diagnosis.title}",
    ]
    out += ["  " + paint("dim", line) for line in _wrap_facts(common.facts(incident))]

    reason = common.failure_reason(incident)
    if reason:
        out += ["", paint("heading", "Failure reason"), *_indent(common.truncate(reason, FAILURE_REASON_MAX))]

    out += ["", paint("heading", "Evidence")]
    if diagnosis.evidence:
        width = max(len(str(line.line)) for line in diagnosis.evidence) + 1
        for line in diagnosis.evidence:
            number = f"L{line.line}".ljust(width + 1)
            location = paint("dim", common.evidence_location(line.source)) if line.source else ""
            out += _indent(line.text + location, prefix=f"  {number} ", hanging=" " * (width + 4))
    else:
        out.append("  (no line decided this diagnosis)")

    if diagnosis.remediation:
        out += ["", paint("heading", "Remediation")]
        for number, step in enumerate(diagnosis.remediation, start=1):
            out += _indent(step, prefix=f"  {number}. ", hanging="     ")

    if diagnosis.commands:
        out += ["", paint("heading", "Commands (ready to paste)")]
        for command in diagnosis.commands:
            out += _indent(command)

    links = incident.links
    if links:
        out += ["", paint("heading", "Links")]
        width = max(len(common.link_label(key)) for key in links)
        out += [f"  {common.link_label(key).ljust(width)}  {url}" for key, url in links.items()]

    rollback = common.rollback_lines(incident)
    if rollback:
        out += ["", paint("heading", "Rollback"), *(line for text in rollback for line in _indent(text))]

    if incident.evidence.missing:
        out += ["", paint("heading", "Missing evidence")]
        out += [f"  - {item.source}: {item.reason}" for item in incident.evidence.missing]

    out += ["", paint("dim", f"incident {incident.key} | event {incident.event.event_id}"
                             f" | {incident.evidence.api_calls} AWS calls")]
    return "\n".join(out) + "\n"


def render_follow_up_text(incident: Incident, added: list[str], *, color: bool = False) -> str:
    """The short message sent when a later event adds to an incident already reported."""
    incident = _printable_model(incident.without_log_lines())
    paint = _Painter(color)
    out = [paint("heading", common.follow_up_title(incident)),
           f"  still {common.verdict(incident)} (confidence {common.confidence_pct(incident)}); this event added:"]
    out += [f"  - {printable(item)}" for item in added]
    for key in ("execution", "state_machine"):
        if key in incident.links:
            out.append(f"  {common.link_label(key)}: {incident.links[key]}")
    return "\n".join(out) + "\n"


def render_intake_error_text(err: IntakeError, *, color: bool = False) -> str:
    err = _printable_model(err)
    paint = _Painter(color)
    out = [paint("alert", f"INTAKE ERROR {common.intake_error_title(err)}"
                          f" (event {err.event_id or 'without id'})")]
    out += [f"  - {problem}" for problem in err.errors]
    details = [f"source: {err.source}" if err.source else None,
               f"detail-type: {err.detail_type}" if err.detail_type else None,
               f"received: {err.received_at.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}"]
    out.append("  " + paint("dim", "  ".join(d for d in details if d)))
    if err.raw_excerpt:
        out += ["", paint("heading", "Event excerpt"), *_indent(err.raw_excerpt)]
    out += ["", "Nothing was retried: fix the event's producer (or the rule that routed it) and resend."]
    return "\n".join(out) + "\n"
