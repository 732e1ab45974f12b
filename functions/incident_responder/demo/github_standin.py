"""A GitHub REST API stand-in on loopback, for the demo and the tests: real HTTP, GitHub's documented
shapes (docs.github.com/rest/actions/workflow-jobs, /rest/actions/workflow-runs#download-workflow-run-
attempt-logs, /rest/repos/contents), and the behaviours a client must survive:

- the jobs of a run attempt with their steps, paginated with a `Link: <...>; rel="next"` header;
- log downloads answered with a 302 to a signed URL on another host (a second server here, so a
  client that forwards its Authorization header there is seen doing it: ``blob_requests``);
- the log archive as GitHub builds it: `<k>_<job>.txt` per job and `<job>/<n>_<step>.txt` per step
  (``step_files=False`` leaves the step files out, as some of GitHub's archives do);
- rate-limit headers on every answer, and, on demand, answers with `x-ratelimit-remaining: 0` (a 200
  that exhausts the limit, or a 403 "API rate limit exceeded" with `x-ratelimit-reset`/`retry-after`);
- 401 for a wrong token, 404 for what it does not hold, the contents API for workflow files.

    with GitHubStandIn(token="...") as github:
        github.add_run("octo/repo", 42, jobs=[StandInJob(...)])
        GitHubApi("...", base_url=github.url)
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_TIME = "2026-11-20T17:45:01Z"


@dataclass(frozen=True)
class StandInStep:
    name: str
    conclusion: str = "success"
    log: str = ""


@dataclass(frozen=True)
class StandInJob:
    id: int
    name: str
    conclusion: str
    steps: tuple[StandInStep, ...] = ()


@dataclass
class _Run:
    repository: str
    run_id: int
    attempt: int
    jobs: list[StandInJob]
    step_files: bool = True
    archive_bytes: bytes | None = None


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]


@dataclass
class _RateLimit:
    status: int  # 200: an answer that exhausts the limit; 403/429: refused
    reset_in: int
    retry_after: int | None


def _stamped(text: str) -> str:
    return "".join(f"2026-11-20T17:45:01.0000000Z {line}\n" for line in text.splitlines())


def log_archive(jobs: list[StandInJob], *, step_files: bool = True) -> bytes:
    """The zip GitHub serves for a run attempt's logs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for k, job in enumerate(jobs, start=1):
            archive.writestr(f"{k}_{job.name}.txt", "".join(_stamped(s.log) for s in job.steps))
            if step_files:
                for number, step in enumerate(job.steps, start=1):
                    archive.writestr(f"{job.name}/{number}_{step.name}.txt", _stamped(step.log))
    return buffer.getvalue()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading at its byte cap closes the connection mid-answer: expected here.
        pass


class GitHubStandIn:
    def __init__(self, *, token: str | None = None, page_size: int = 100) -> None:
        self.token = token
        self.page_size = page_size
        self._runs: dict[tuple[str, int, int], _Run] = {}
        self._files: dict[tuple[str, str, str], str] = {}
        self._blobs: dict[str, tuple[str, bytes]] = {}
        self._rate_limits: list[_RateLimit] = []
        self._used = 0
        self._lock = threading.Lock()
        self.api_requests: list[SeenRequest] = []
        self.blob_requests: list[SeenRequest] = []
        self._api = _QuietServer(("127.0.0.1", 0), self._handler(self._answer_api, self.api_requests))
        self._blob = _QuietServer(("127.0.0.1", 0), self._handler(self._answer_blob, self.blob_requests))
        for server in (self._api, self._blob):
            server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._api.server_address[1]}"

    @property
    def blob_url(self) -> str:
        # "localhost", not 127.0.0.1: another host name, as GitHub's signed log URLs are on another host.
        return f"http://localhost:{self._blob.server_address[1]}"

    # ------------------------------------------------------------ what it holds

    def add_run(self, repository: str, run_id: int, *, attempt: int = 1, jobs: list[StandInJob],
                step_files: bool = True, archive_bytes: bytes | None = None) -> None:
        self._runs[(repository.lower(), run_id, attempt)] = _Run(repository, run_id, attempt, list(jobs),
                                                                 step_files, archive_bytes)

    def add_file(self, repository: str, path: str, ref: str, text: str) -> None:
        self._files[(repository.lower(), path, ref)] = text

    def rate_limit_next(self, count: int = 1, *, status: int = 403, reset_in: int = 30,
                        retry_after: int | None = None) -> None:
        """The next ``count`` API answers exhaust the rate limit (status 200) or are refused by it (403/429)."""
        with self._lock:
            self._rate_limits.extend(_RateLimit(status, reset_in, retry_after) for _ in range(count))

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> "GitHubStandIn":
        for server in (self._api, self._blob):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self._api, self._blob):
            server.shutdown()
            server.server_close()

    # ------------------------------------------------------------ HTTP

    @staticmethod
    def _handler(answer: Any, seen: list[SeenRequest]) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                seen.append(SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = answer(self.path, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(data).encode()

    def _not_found(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return self._json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest",
                                "status": "404"}, headers)

    def _rate_headers(self) -> tuple[dict[str, str], _RateLimit | None]:
        with self._lock:
            limit = self._rate_limits.pop(0) if self._rate_limits else None
            self._used += 1
        remaining = 0 if limit else max(5000 - self._used, 1)
        reset = int(time.time()) + (limit.reset_in if limit else 3600)
        headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(remaining),
                   "x-ratelimit-used": str(5000 - remaining), "x-ratelimit-reset": str(reset),
                   "x-ratelimit-resource": "core"}
        if limit and limit.retry_after is not None:
            headers["retry-after"] = str(limit.retry_after)
        return headers, limit

    def _answer_api(self, raw_path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        rate, limit = self._rate_headers()
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return self._json(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                                    "status": "401"}, rate)
        if limit and limit.status in (403, 429):
            return self._json(limit.status, {"message": "API rate limit exceeded for installation. If you reach out "
                                                        "to GitHub Support for help, please include the request ID.",
                                             "documentation_url": "https://docs.github.com/rest/overview/"
                                                                  "rate-limits-for-the-rest-api"}, rate)
        url = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = unquote(url.path)
        if match := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)/attempts/(\d+)/jobs", path):
            run = self._runs.get((match.group(1).lower(), int(match.group(2)), int(match.group(3))))
            if run is None:
                return self._not_found(rate)
            return self._jobs_page(run, int(query.get("page", "1")), int(query.get("per_page", "30")), url.path, rate)
        if match := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)/attempts/(\d+)/logs", path):
            run = self._runs.get((match.group(1).lower(), int(match.group(2)), int(match.group(3))))
            if run is None:
                return self._not_found(rate)
            data = run.archive_bytes if run.archive_bytes is not None else log_archive(run.jobs, step_files=run.step_files)
            return 302, {**rate, "Location": self._signed("application/zip", data)}, b""
        if match := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/jobs/(\d+)/logs", path):
            job = next((j for r in self._runs.values() if r.repository.lower() == match.group(1).lower()
                        for j in r.jobs if j.id == int(match.group(2))), None)
            if job is None:
                return self._not_found(rate)
            text = "".join(_stamped(s.log) for s in job.steps).encode()
            return 302, {**rate, "Location": self._signed("text/plain", text)}, b""
        if match := re.fullmatch(r"/repos/([^/]+/[^/]+)/contents/(.+)", path):
            text = self._files.get((match.group(1).lower(), match.group(2), query.get("ref", "")))
            if text is None:
                return self._not_found(rate)
            content = base64.encodebytes(text.encode()).decode()
            name = match.group(2).rsplit("/", 1)[-1]
            return self._json(200, {"type": "file", "encoding": "base64", "size": len(text.encode()), "name": name,
                                    "path": match.group(2), "content": content, "sha": "0" * 40,
                                    "url": f"{self.url}{url.path}", "html_url": None, "git_url": None,
                                    "download_url": None, "_links": {}}, rate)
        return self._not_found(rate)

    def _jobs_page(self, run: _Run, page: int, per_page: int, path: str,
                   rate: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        size = min(per_page, self.page_size)
        chosen = run.jobs[(page - 1) * size: page * size]
        headers = dict(rate)
        if page * size < len(run.jobs):
            headers["Link"] = f'<{self.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"'
        html = f"https://github.com/{run.repository}/actions/runs/{run.run_id}"
        jobs = [{
            "id": job.id, "run_id": run.run_id, "run_attempt": run.attempt, "node_id": f"CR_{job.id}",
            "head_sha": "0" * 40, "url": f"{self.url}/repos/{run.repository}/actions/jobs/{job.id}",
            "html_url": f"{html}/job/{job.id}", "run_url": f"{self.url}/repos/{run.repository}/actions/runs/{run.run_id}",
            "status": "completed", "conclusion": job.conclusion, "created_at": _TIME, "started_at": _TIME,
            "completed_at": _TIME, "name": job.name, "workflow_name": None, "head_branch": "main",
            "labels": ["ubuntu-latest"], "runner_id": 1, "runner_name": "GitHub Actions 1", "runner_group_id": 2,
            "runner_group_name": "GitHub Actions", "check_run_url": None,
            "steps": [{"name": step.name, "status": "completed", "conclusion": step.conclusion, "number": number,
                       "started_at": _TIME, "completed_at": _TIME}
                      for number, step in enumerate(job.steps, start=1)],
        } for job in chosen]
        return self._json(200, {"total_count": len(run.jobs), "jobs": jobs}, headers)

    def _signed(self, content_type: str, data: bytes) -> str:
        name = secrets.token_hex(8)
        with self._lock:
            self._blobs[name] = (content_type, data)
        return f"{self.blob_url}/blob/{name}?sig={secrets.token_hex(8)}&se=2026-11-20T17%3A46%3A01Z"

    def _answer_blob(self, raw_path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        name = urlsplit(raw_path).path.rsplit("/", 1)[-1]
        with self._lock:
            blob = self._blobs.get(name)
        if blob is None:
            return 404, {"Content-Type": "text/plain"}, b"BlobNotFound"
        return 200, {"Content-Type": blob[0]}, blob[1]
