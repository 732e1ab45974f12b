"""The GitHub run analyzer, imported on first use: only a GitHub failure needs the REST client, the zip
reader and the YAML parser, so a SageMaker failure's cold start does not pay for them (about 25 ms)."""

from __future__ import annotations

from typing import Any

from .base import GatherState


def gather_workflow_run(state: GatherState, clients: Any) -> None:
    if state.event.source != "github":
        return
    from ..github.evidence import gather_workflow_run as gather

    gather(state, clients)
