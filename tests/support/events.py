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
