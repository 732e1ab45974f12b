"""The GitHub analyzer: a failed workflow run's failed jobs and steps and their log tails, or, for a
`startup_failure`, why GitHub could not use the workflow file.

Logs: the attempt's log archive (a zip with `<job>/<n>_<step>.txt` per step and `<k>_<job>.txt` per job)
gives each failed step's own log. Some archives hold no step files (GitHub's newer log service, see
github.com/cli/cli/pull/10740): then the job's file, and without an archive the job's log from
`/actions/jobs/{id}/logs`. Each stream is bounded like the CloudWatch tails (evidence/logs.py).

Startup failures: the REST API does not give GitHub's message (it is only on the run's page), so the
workflow file is read at the run's head_sha and parsed with PyYAML. A syntax error becomes the two lines
GitHub shows, in its words ("Invalid workflow file: <path>#L<n>", "You have an error in your yaml syntax
on line <n>", as quoted in e.g. github.com/mindersec/minder-rules-and-profiles/pull/205 and
github.com/link-assistant/hive-mind/issues/884), plus the parser's own problem. The line is where
PyYAML's parser stopped; GitHub's parser (a different implementation) may name a neighbouring line.
"""

from __future__ import annotations

import re
import zipfile
from typing import TYPE_CHECKING, Any

import yaml

from ..models import FailedJob, FailureEvent, LogEvidence, LogStreamTail, WorkflowRunEvidence
from .api import GitHubApi, GitHubError

if TYPE_CHECKING:  # evidence/__init__.py imports this module: no import back at run time
    from ..evidence.base import GatherState

# A line longer than this is cut to its head, as evidence/logs.py cuts a CloudWatch event.
MAX_EVENT_BYTES = 8_192
# How deep into a log's end is read for a tail of ``budget`` bytes: room for long lines cut to their head.
WINDOW = 4
FAILED = ("failure", "timed_out", "startup_failure")
# A job log line starts with its timestamp: 2026-11-20T17:45:01.1234567Z
_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ")
_UNSAFE_IN_ZIP_NAMES = re.compile(r'[\\/:*?"<>|]')
_STEP_FILE = re.compile(r"^(\d+)_")
_JOB_FILE = re.compile(r"^\d+_(.+)\.txt$")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
_BLOCK_SCALAR = re.compile(r"^(\s*)(?:-\s+)?run:\s*[|>][-+0-9]*\s*(?:#.*)?$")


def gather_workflow_run(state: GatherState, clients: Any) -> None:
    event = state.event
    if event.source != "github" or not event.repository or not event.run_id:
        return
    run = WorkflowRunEvidence(
        repository=event.repository, run_id=event.run_id, run_attempt=event.run_attempt or 1,
        workflow_path=event.workflow_path, workflow_name=event.workflow_name, conclusion=event.status,
        html_url=event.run_url,
    )
    api: GitHubApi | None = getattr(clients, "github", None)
    if api is None:
        state.note_missing("github", "no GitHub token is configured (GITHUB_TOKEN_SECRET_ARN): the run's jobs, logs "
                                     "and workflow file were not read")
    else:
        try:
            api.begin()
            if event.status == "startup_failure":
                run = run.model_copy(update={"startup_error": _startup_error(state, api, event)})
            else:
                run = run.model_copy(update={"failed_jobs": _failed_jobs(state, api, event)})
        except GitHubError as exc:
            state.note_missing("github", exc.note)
        except Exception as exc:  # never raise out of an analyzer: the report goes out with what we have
            state.note_missing("github", f"reading the run from GitHub failed: {type(exc).__name__}: {exc}")
    state.workflow_run = run


# ---------------------------------------------------------------- failed jobs and their logs


def _failed_jobs(state: GatherState, api: GitHubApi, event: FailureEvent) -> list[FailedJob]:
    repository, run_id, attempt = event.repository or "", event.run_id or 0, event.run_attempt or 1
    failed: list[FailedJob] = []
    for job in api.jobs(repository, run_id, attempt):
        if job.get("conclusion") not in FAILED:
            continue
        step = next((s for s in job.get("steps") or [] if s.get("conclusion") in FAILED), None)
        failed.append(FailedJob(id=int(job["id"]), name=str(job.get("name") or job["id"]),
                                html_url=job.get("html_url"),
                                failed_step=step.get("name") if step else None,
                                failed_step_number=int(step["number"]) if step and step.get("number") else None))
    if not failed:
        state.note_missing("github", f"run {run_id} attempt {attempt} lists no failed job")
        return failed
    settings = state.settings
    chosen = failed[: settings.max_log_streams]
    if len(failed) > len(chosen):
        state.note_missing("github", f"{len(failed) - len(chosen)} more failed job(s) not read (at most "
                                     f"{settings.max_log_streams} log tails per incident)")
    budget = settings.log_tail_bytes // len(chosen)
    state.logs = LogEvidence(group=f"github:{repository}/actions/runs/{run_id}",
                             streams=_tails(state, api, event, chosen, budget))
    return failed


def _tails(state: GatherState, api: GitHubApi, event: FailureEvent, jobs: list[FailedJob],
           budget: int) -> list[LogStreamTail]:
    repository, run_id, attempt = event.repository or "", event.run_id or 0, event.run_attempt or 1
    archive: zipfile.ZipFile | None = None
    try:
        download = api.run_logs(repository, run_id, attempt)
        if download.cut:
            state.note_missing("github", f"the log archive of run {run_id} is larger than {api.max_download_bytes} "
                                         "bytes: not read; each failed job's own log was read instead")
            download.file.close()
        else:
            archive = zipfile.ZipFile(download.file)
    except GitHubError as exc:
        state.note_missing("github", exc.note + "; each failed job's own log was read instead")
    except zipfile.BadZipFile:
        download.file.close()
        state.note_missing("github", f"the log archive of run {run_id} is not a readable zip; each failed job's "
                                     "own log was read instead")
    try:
        return _job_tails(state, api, event, jobs, budget, archive)
    finally:
        if archive is not None:
            archive.close()
            download.file.close()


def _job_tails(state: GatherState, api: GitHubApi, event: FailureEvent, jobs: list[FailedJob], budget: int,
               archive: zipfile.ZipFile | None) -> list[LogStreamTail]:
    repository = event.repository or ""
    tails = []
    for job in jobs:
        stream = f"{job.name}/{job.failed_step}" if job.failed_step else job.name
        found = _from_archive(archive, job, stream, budget, api.max_download_bytes) if archive else None
        if found is None:
            try:
                download = api.job_log(repository, job.id, keep_tail=budget * WINDOW)
            except GitHubError as exc:
                state.note_missing("github", exc.note)
                continue
            tail = _tail_lines(stream, download.data, budget=budget,
                               cut=download.cut or download.bytes_read > len(download.data))
            if download.cut:
                state.note_missing("github", f"{job.name}: its log is larger than {api.max_download_bytes} bytes; "
                                             "only the start was read, so its last lines are missing")
        else:
            tail, from_step, complete = found
            if job.failed_step and not from_step:
                state.note_missing("github", f"{job.name}: the log archive has no file for step "
                                             f"'{job.failed_step}'; the job's whole log tail is shown")
            if not complete:
                state.note_missing("github", f"{tail.stream}: its log inflates to more than {api.max_download_bytes} "
                                             "bytes; only the start was read, so its last lines are missing")
        if tail.cut_events:
            state.note_missing("github", f"{tail.stream}: {tail.cut_events} log line(s) longer than "
                                         f"{MAX_EVENT_BYTES} bytes were cut to their first {MAX_EVENT_BYTES} bytes")
        tails.append(tail)
    return tails


def _safe(name: str) -> str:
    return _UNSAFE_IN_ZIP_NAMES.sub("", name).strip()


def _from_archive(archive: zipfile.ZipFile, job: FailedJob, stream: str, budget: int,
                  max_bytes: int) -> tuple[LogStreamTail, bool, bool] | None:
    """The failed step's file, else the job's: (its tail, from the step's file, read to its end); None
    when the archive has neither."""
    wanted = _safe(job.name)
    step_file = job_file = None
    for info in archive.infolist():
        folder, _, base = info.filename.rpartition("/")
        if folder and _safe(folder) == wanted and job.failed_step_number is not None:
            number = _STEP_FILE.match(base)
            if number and int(number.group(1)) == job.failed_step_number:
                step_file = info
        elif not folder:
            match = _JOB_FILE.match(base)
            if match and _safe(match.group(1)) == wanted:
                job_file = info
    chosen, name = (step_file, stream) if step_file else (job_file, job.name)
    if chosen is None:
        return None
    window = budget * WINDOW
    kept = bytearray()
    read = 0
    with archive.open(chosen) as member:
        # Decompressed bytes are bounded too (a small zip can inflate to gigabytes).
        while read < max_bytes:
            chunk = member.read(min(64 * 1024, max_bytes - read))
            if not chunk:
                break
            read += len(chunk)
            kept += chunk
            if len(kept) > 2 * window:
                del kept[: len(kept) - window]
    # Inflated past the cap (a log of gigabytes, or a zip bomb): what was read is not the log's end.
    complete = chosen.file_size <= read
    return _tail_lines(name, bytes(kept[-window:]), budget=budget, cut=read > window), step_file is not None, complete


def _tail_lines(stream: str, data: bytes, *, budget: int, cut: bool) -> LogStreamTail:
    """The last lines of ``data`` (the end of a log, read ``WINDOW`` times the budget deep) that fit in
    ``budget`` bytes, each cut to MAX_EVENT_BYTES first: one huge line never pushes out every other."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if cut and lines:
        lines = lines[1:]  # the window starts inside this line
    kept: list[str] = []
    used = long_lines = 0
    for line in reversed(lines):
        line = _TIMESTAMP.sub("", line, count=1)
        size = len(line.encode())
        if size > MAX_EVENT_BYTES:
            head = line.encode()[:MAX_EVENT_BYTES].decode(errors="ignore")
            line = f"{head} … [log line cut: {size} bytes]"
            size = len(line.encode())
            long_lines += 1
        if used + size + 1 > budget:
            cut = True
            break
        kept.append(line)
        used += size + 1
    return LogStreamTail(stream=stream, lines=kept[::-1], truncated=cut, cut_events=long_lines)


# ---------------------------------------------------------------- startup failures


def _startup_error(state: GatherState, api: GitHubApi, event: FailureEvent) -> list[str]:
    path = event.workflow_path or ""
    if not (event.repository and path and event.head_sha):
        state.note_missing("github", "the delivery names no workflow file or commit: the workflow file was not read")
        return []
    text = api.workflow_file(event.repository, path, event.head_sha)
    problem = yaml_problem(path, text)
    if not problem:
        state.note_missing("github", f"{path} at {event.head_sha[:12]} parses as YAML: GitHub's reason for the "
                                     f"startup failure is shown only on the run's page ({event.run_url}/workflow); "
                                     "the REST API does not give it")
    return problem


def yaml_problem(path: str, text: str) -> list[str]:
    """GitHub's two lines for a workflow file that is not YAML, the parser's problem and, when the line
    cuts a `run: |` block short (a heredoc's body or delimiter), that; [] when the file parses."""
    try:
        # compose, not load: the structure is enough, and aliases are never expanded (no alias bombs).
        yaml.compose(text, Loader=yaml.SafeLoader)
        return []
    except yaml.MarkedYAMLError as exc:
        # A key without its ':' is found only lines later (or at the end of the file): the key's own line
        # is where the broken construct starts, and the line a person must fix.
        simple_key = exc.context == "while scanning a simple key" and exc.context_mark is not None
        mark = exc.context_mark if simple_key else (exc.problem_mark or exc.context_mark)
        line = mark.line + 1 if mark else 1
        lines = [f"Invalid workflow file: {path}#L{line}", f"You have an error in your yaml syntax on line {line}"]
        said = "; ".join(part for part in (exc.context, exc.problem) if part)
        if said:
            lines.append(f"{path}#L{line}: {said}")
        hint = _block_cut_short(text.splitlines(), line)
        if hint:
            lines.append(f"{path}#L{hint[1]}: this line is less indented than the `run: |` block that starts on "
                         f"line {hint[0]}, so YAML ends the script there (a heredoc's body and delimiter must keep "
                         "the block's indentation)")
        return lines
    except yaml.YAMLError as exc:
        return [f"Invalid workflow file: {path}#L1", f"You have an error in your yaml syntax on line 1",
                f"{path}: {exc}"]


def _block_cut_short(lines: list[str], error_line: int) -> tuple[int, int] | None:
    """(the `run: |` line, the first line less indented than its script) when that line is at or just
    before the error and the script opens a heredoc before it."""
    start = None
    for number in range(min(error_line, len(lines)), 0, -1):
        if _BLOCK_SCALAR.match(lines[number - 1]):
            start = number
            break
    if start is None:
        return None
    indent = None
    delimiter = None  # the open heredoc's closing word
    for number in range(start + 1, min(error_line, len(lines)) + 1):
        text = lines[number - 1]
        if not text.strip():
            continue
        width = len(text) - len(text.lstrip())
        if indent is None:
            indent = width
        elif width < indent:
            return (start, number) if delimiter else None
        if delimiter and text.strip() == delimiter:
            delimiter = None
        else:
            opened = _HEREDOC.search(text)
            delimiter = opened.group(1) if opened else delimiter
    return None
