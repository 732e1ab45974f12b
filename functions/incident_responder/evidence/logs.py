"""The tail of a training job's CloudWatch log streams, bounded in bytes.

Streams are named `<job>/algo-<n>-<epoch>`. They can appear a minute or more after the job
fails, so a missing stream is polled for a while and then reported as missing, never fatal.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import LogEvidence, LogStreamTail
from .base import GatherState, aws_error


_PAGE = 1000
# One log event (a JSON blob, a dumped tensor) can be larger than the whole budget; it is cut to
# its head, never dropped with everything older than it.
MAX_EVENT_BYTES = 8_192


def gather_logs(state: GatherState, clients: Any) -> None:
    if state.event.source == "codebuild":
        _gather_build_log(state, clients)
        return
    name = state.training_job_name
    settings = state.settings
    if not name:
        return
    try:
        streams = _find_streams(state, clients, name)
    except (ClientError, BotoCoreError) as exc:
        state.note_aws_failure("logs", f"DescribeLogStreams({settings.log_group}) failed: {aws_error(exc)}")
        return
    if not streams:
        state.note_missing(
            "logs",
            f"log stream not found: no stream '{name}/algo-*' in {settings.log_group} after "
            f"{settings.log_wait_seconds:.0f}s (the job may have failed before its container started)",
        )
        return
    budget = settings.log_tail_bytes
    tails = []
    for stream in streams[: settings.max_log_streams]:
        share = budget // (settings.max_log_streams if len(streams) > 1 else 1)
        try:
            tails.append(_tail(clients.logs, settings.log_group, stream, share))
        except (ClientError, BotoCoreError) as exc:
            state.note_aws_failure("logs", f"GetLogEvents({stream}) failed: {aws_error(exc)}")
    for tail in tails:
        if tail.cut_events:
            state.note_missing("logs", f"{tail.stream}: {tail.cut_events} log event(s) larger than "
                                       f"{MAX_EVENT_BYTES} bytes were cut to their first {MAX_EVENT_BYTES} bytes")
    state.logs = LogEvidence(group=settings.log_group, streams=tails)


def _gather_build_log(state: GatherState, clients: Any) -> None:
    """A CodeBuild build writes one stream, named in its event and in BatchGetBuilds."""
    build = state.build
    group = (build.log_group if build else None) or state.event.log_group
    stream = (build.log_stream if build else None) or state.event.log_stream
    if not (group and stream):
        state.note_missing("logs", "the build names no CloudWatch log stream (its project's CloudWatch logging "
                                   "may be off, or the build failed before it started)")
        return
    try:
        tail = _tail(clients.logs, group, stream, state.settings.log_tail_bytes)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            state.note_missing("logs", f"log stream {group}/{stream} not found (expired by the group's retention, "
                                       "or the build failed before it wrote a line)")
        else:
            state.note_aws_failure("logs", f"GetLogEvents({group}/{stream}) failed: {aws_error(exc)}")
        return
    except BotoCoreError as exc:
        state.note_aws_failure("logs", f"GetLogEvents({group}/{stream}) failed: {aws_error(exc)}")
        return
    if tail.cut_events:
        state.note_missing("logs", f"{stream}: {tail.cut_events} log event(s) larger than {MAX_EVENT_BYTES} bytes "
                                   f"were cut to their first {MAX_EVENT_BYTES} bytes")
    state.logs = LogEvidence(group=group, streams=[tail])


def _find_streams(state: GatherState, clients: Any, name: str) -> list[str]:
    """Polls with doubling waits, so a minute of waiting costs a handful of calls, not dozens."""
    settings = state.settings
    waited, delay = 0.0, settings.log_poll_seconds
    while True:
        try:
            response = clients.logs.describe_log_streams(
                logGroupName=settings.log_group, logStreamNamePrefix=f"{name}/"
            )
            streams = sorted(s["logStreamName"] for s in response.get("logStreams", []))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            streams = []
        if streams or waited >= settings.log_wait_seconds:
            return streams
        step = min(delay, settings.log_wait_seconds - waited)
        state.sleep(step)
        waited += step
        delay *= 2


def _tail(logs: Any, group: str, stream: str, budget: int) -> LogStreamTail:
    """Newest events first, paging backwards until the byte budget or the stream's start."""
    pages: list[list[str]] = []
    used = 0
    token = None
    truncated = False
    cut = 0
    while True:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": False, "limit": _PAGE}
        if token:
            kwargs["nextToken"] = token
        response = logs.get_log_events(**kwargs)
        messages = [e.get("message", "") for e in response.get("events", [])]
        kept: list[str] = []
        for message in reversed(messages):
            size = len(message.encode()) + 1
            if size > MAX_EVENT_BYTES:
                head = message.encode()[:MAX_EVENT_BYTES].decode(errors="ignore")
                message = f"{head} … [log event cut: {size - 1} bytes]"
                size = len(message.encode()) + 1
                cut += 1
            if used + size > budget:
                truncated = True
                break
            kept.append(message)
            used += size
        pages.append(list(reversed(kept)))
        next_token = response.get("nextBackwardToken")
        # A short page, or a repeated backward token, means the start of the stream was reached.
        if truncated or len(messages) < _PAGE or not next_token or next_token == token:
            break
        token = next_token
    lines = [line for page in reversed(pages) for message in page for line in message.splitlines()]
    return LogStreamTail(stream=stream, lines=lines, truncated=truncated, cut_events=cut)
