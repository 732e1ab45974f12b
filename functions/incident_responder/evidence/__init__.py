"""Evidence gathering: analyzers behind one small interface, registered in one plain dict.

Order matters: the execution history can name the training job, whose description names the
image and whose name locates the logs.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..models import Evidence, FailureEvent
from .base import Analyzer, GatherSettings, GatherState
from .execution import gather_execution
from .image import gather_image, parse_ecr_uri
from .logs import gather_logs
from .training_job import gather_training_job

ANALYZERS: dict[str, Analyzer] = {
    "execution": gather_execution,
    "training_job": gather_training_job,
    "logs": gather_logs,
    "image": gather_image,
}

__all__ = ["ANALYZERS", "GatherSettings", "gather", "parse_ecr_uri"]


def gather(
    event: FailureEvent,
    clients: Any,
    settings: GatherSettings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Evidence:
    state = GatherState(
        event=event,
        settings=settings or GatherSettings(),
        sleep=sleep,
        training_job_name=event.training_job_name,
        image_uri=event.image_uri,
    )
    before = clients.counter.count
    for analyzer in ANALYZERS.values():
        analyzer(state, clients)
    return Evidence(
        training_job=state.training_job,
        logs=state.logs,
        execution=state.execution,
        image=state.image,
        missing=state.missing,
        api_calls=clients.counter.count - before,
    )
