"""The sample events in events/ are the one set of fixtures for tests and `sam local invoke`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def event_files(pattern: str = "*.json") -> list[Path]:
    return sorted(EVENTS_DIR.glob(pattern))


def load_event(name: str) -> Any:
    return json.loads((EVENTS_DIR / name).read_text())


def pipeline_event_files() -> list[Path]:
    """Events of the two kinds the TriageFunction receives (not the classify-* inputs)."""
    return [p for p in event_files() if not p.name.startswith("classify-")]


def with_field(event: Any, dotted: str, value: Any) -> Any:
    """A deep copy of ``event`` with the field at ``dotted`` (e.g. "workflow_run.conclusion") set."""
    import copy

    event = copy.deepcopy(event)
    *parents, last = dotted.split(".")
    target = event
    for key in parents:
        target = target[key]
    target[last] = value
    return event
