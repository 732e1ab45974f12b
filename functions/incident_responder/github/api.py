"""A small GitHub REST client for the evidence: a run attempt's jobs, its log archive, one job's log,
and a workflow file at a commit. urllib3 (botocore's own HTTP library) only; no SDK.

What it guarantees, whatever GitHub answers:
- Downloads are bounded: bodies are streamed and never more than ``max_download_bytes`` is read; a cut
  is reported (Download.cut), never hidden.
- Log downloads answer with a redirect to a short-lived signed URL on another host: the redirect is
  followed by hand, without the Authorization header (the token never leaves api.github.com).
- Rate limits are honoured (docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api): after
  a response with `x-ratelimit-remaining: 0` no request is made before `x-ratelimit-reset`, and a 403/429
  that says so (or carries `retry-after`) is retried after the wait, but only when the wait is within
  ``max_rate_limit_wait``; otherwise GitHubError says until when.
- One delivery's reads share a time budget (``begin(seconds)``): past it no request starts, so a slow
  GitHub never holds the report past the function's timeout.
- Every failure is a GitHubError whose ``note`` says what is missing and what to do (401: the token;
  403: its permissions; 404: the run or the repository's visibility to the token).
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, urlencode, urlsplit

API_VERSION = "2022-11-28"
USER_AGENT = "3dgs-incident-responder"
MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_PAGES = 10
_CHUNK = 64 * 1024
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(Exception):
    """A GitHub request that gave no usable answer; ``note`` is the missing-evidence sentence."""

    def __init__(self, note: str, *, status: int | None = None) -> None:
        super().__init__(note)
        self.note = note
        self.status = status


@dataclass(frozen=True)
class Download:
    data: bytes
    cut: bool = False
    bytes_read: int = 0
    file: Any = None  # the whole body in a temporary file (the log archive), rewound; the caller closes it


class GitHubApi:
    def __init__(
        self,
        token: str | Callable[[], str | None] | None,
        *,
        base_url: str = "https://api.github.com",
        max_download_bytes: int = 32 * 1024 * 1024,
        max_rate_limit_wait: float = 5.0,
        timeout: float = 10.0,
        time_budget: float = 25.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        pool: Any = None,
    ) -> None:
        import urllib3

        self._token = token
        self.base_url = base_url.rstrip("/")
        self._host = urlsplit(self.base_url).netloc
        self.max_download_bytes = max_download_bytes
        self.max_rate_limit_wait = max_rate_limit_wait
        self.time_budget = time_budget
        self._timeout = urllib3.Timeout(connect=min(3.0, timeout), read=timeout)
        self._sleep = sleep
        self._clock = clock
        self._pool = pool or urllib3.PoolManager(retries=urllib3.Retry(total=2, connect=2, read=0, redirect=0,
                                                                       status=0, raise_on_status=False))
        self._blocked_until = 0.0
        self._deadline: float | None = None
        self._budget = 0.0
        self.requests = 0

    def begin(self, seconds: float | None = None) -> None:
        """Start one delivery's reads: none starts more than ``seconds`` (default: the client's
        ``time_budget``) from now. The client outlives deliveries in a warm Lambda: each begins its own."""
        self._budget = self.time_budget if seconds is None else seconds
        self._deadline = self._clock() + self._budget

    def _left(self) -> float | None:
        return None if self._deadline is None else self._deadline - self._clock()

    def _request_timeout(self) -> Any:
        """The connect and per-read timeouts, never past the delivery's budget."""
        left = self._left()
        if left is None:
            return self._timeout
        cap = max(left, 0.1)
        return type(self._timeout)(connect=min(self._timeout.connect_timeout, cap),
                                   read=min(self._timeout.read_timeout, cap))

    # ------------------------------------------------------------ endpoints

    def jobs(self, repository: str, run_id: int, attempt: int) -> list[dict[str, Any]]:
        """The run attempt's jobs with their steps, every page (`GET .../runs/{id}/attempts/{n}/jobs`)."""
        url: str | None = self._url(f"/repos/{repository}/actions/runs/{run_id}/attempts/{attempt}/jobs",
                                    {"per_page": 100})
        jobs: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response, data = self._json(url, what=f"the jobs of run {run_id} attempt {attempt} in {repository}",
                                        permission="actions:read")
            jobs.extend(data.get("jobs") or [])
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            url = match.group(1) if match else None
        return jobs

    def run_logs(self, repository: str, run_id: int, attempt: int) -> Download:
        """The attempt's log archive (a zip of per-job and per-step logs), at most max_download_bytes, in
        ``Download.file``: a temporary file past 1 MiB (Lambda's /tmp), so memory stays flat whatever the cap."""
        return self._download(self._url(f"/repos/{repository}/actions/runs/{run_id}/attempts/{attempt}/logs"),
                              what=f"the log archive of run {run_id} attempt {attempt} in {repository}", to_file=True)

    def job_log(self, repository: str, job_id: int, *, keep_tail: int) -> Download:
        """One job's plain-text log; of what is read (at most max_download_bytes), the last ``keep_tail`` bytes."""
        return self._download(self._url(f"/repos/{repository}/actions/jobs/{job_id}/logs"),
                              what=f"the log of job {job_id} in {repository}", keep_tail=keep_tail)

    def workflow_file(self, repository: str, path: str, ref: str) -> str:
        """The workflow file as it was at ``ref`` (the contents API, base64 in JSON)."""
        url = self._url(f"/repos/{repository}/contents/{quote(path)}", {"ref": ref})
        _, data = self._json(url, what=f"{path} at {ref[:12]} in {repository}", permission="contents:read")
        if not isinstance(data, dict) or data.get("type") != "file":
            raise GitHubError(f"{path} at {ref[:12]} in {repository} is not a file")
        if data.get("encoding") != "base64":
            raise GitHubError(f"{path} at {ref[:12]} in {repository} is too large for the contents API "
                              f"({data.get('size')} bytes)")
        try:
            return base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")
        except ValueError as exc:
            raise GitHubError(f"{path} at {ref[:12]} in {repository}: undecodable content ({exc})") from None

    # ------------------------------------------------------------ plumbing

    def _url(self, path: str, query: dict[str, Any] | None = None) -> str:
        return self.base_url + path + (f"?{urlencode(query)}" if query else "")

    def _headers(self, url: str, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT, "X-GitHub-Api-Version": API_VERSION}
        # Only ever to the API's own host: a redirect elsewhere (the signed log URL) gets no token.
        if urlsplit(url).netloc == self._host:
            try:
                token = self._token() if callable(self._token) else self._token
            except Exception as exc:  # a Secrets Manager fault, a malformed secret: missing evidence, said
                raise GitHubError(f"the GitHub token could not be read ({type(exc).__name__}): fix "
                                  "GITHUB_TOKEN_SECRET_ARN or the function's permission to read it") from None
            if token:
                headers["Authorization"] = f"Bearer {token}"
        return headers

    def _wait_for_rate_limit(self, what: str) -> None:
        left = self._left()
        if left is not None and left <= 0:
            raise GitHubError(f"{what}: not read, the {self._budget:.0f} s given to GitHub's API for this delivery "
                              "were used up (GitHub answered slowly); the report went out without it")
        wait = self._blocked_until - self._clock()
        if wait <= 0:
            return
        if wait > self.max_rate_limit_wait or (left is not None and wait >= left):
            raise GitHubError(self._rate_note(what, wait), status=429)
        self._sleep(wait)

    def _rate_note(self, what: str, wait: float) -> str:
        until = time.strftime("%H:%M:%SZ", time.gmtime(self._clock() + wait))
        return (f"{what}: not read, GitHub's API rate limit for the token is exhausted until {until} "
                f"({wait:.0f} s; the responder waits at most {self.max_rate_limit_wait:.0f} s); open the run on "
                "github.com, or use a token with its own limit (a GitHub App's)")

    def _request(self, url: str, *, what: str, accept: str, permission: str) -> Any:
        """One GET (the redirect, when there is one, is the caller's): rate limits waited for once."""
        for attempt in range(2):
            self._wait_for_rate_limit(what)
            try:
                response = self._pool.request("GET", url, headers=self._headers(url, accept), redirect=False,
                                              preload_content=False, timeout=self._request_timeout())
            except GitHubError:
                raise
            except Exception as exc:  # urllib3's errors: a network failure is missing evidence, never a crash
                raise GitHubError(f"{what}: GitHub could not be reached ({type(exc).__name__}: {exc})") from None
            self.requests += 1
            remaining, reset = response.headers.get("x-ratelimit-remaining"), response.headers.get("x-ratelimit-reset")
            if remaining == "0" and reset and reset.isdigit():
                self._blocked_until = max(self._blocked_until, float(reset))
            if response.status in (403, 429) and self._rate_limited(response):
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    self._blocked_until = max(self._blocked_until, self._clock() + int(retry_after))
                elif self._blocked_until <= self._clock():
                    # Neither header: GitHub's guidance is to wait at least a minute.
                    self._blocked_until = self._clock() + 60
                _discard(response)
                if attempt == 0:
                    continue
                raise GitHubError(self._rate_note(what, max(self._blocked_until - self._clock(), 0)), status=429)
            if response.status >= 400:
                message = self._message(response)
                _discard(response)
                raise GitHubError(self._status_note(what, response.status, message, permission), status=response.status)
            return response
        raise AssertionError("unreachable")

    @staticmethod
    def _rate_limited(response: Any) -> bool:
        if response.headers.get("x-ratelimit-remaining") == "0" or response.headers.get("retry-after"):
            return True
        return response.status == 429

    @staticmethod
    def _message(response: Any) -> str:
        try:
            body = response.read(4096, decode_content=True)
            return str(json.loads(body).get("message", ""))[:200]
        except Exception:
            return ""

    @staticmethod
    def _status_note(what: str, status: int, message: str, permission: str) -> str:
        said = f": {message}" if message else ""
        if status == 401:
            return (f"{what}: GitHub refused the token (401{said}): put a valid token in the GitHub token secret "
                    "(GITHUB_TOKEN_SECRET_ARN)")
        if status == 403:
            return (f"{what}: GitHub denied access (403{said}): the token lacks {permission} on the repository "
                    "(a fine-grained token needs actions:read and contents:read)")
        if status == 404:
            return (f"{what}: not found (404{said}): it no longer exists, or the token cannot see the repository "
                    f"(a fine-grained token must include the repository, with {permission})")
        if status == 410:
            return f"{what}: gone (410{said}): GitHub no longer keeps it (log retention)"
        return f"{what}: GitHub answered {status}{said}"

    def _json(self, url: str, *, what: str, permission: str) -> tuple[Any, Any]:
        response = self._request(url, what=what, accept="application/vnd.github+json", permission=permission)
        if response.status in (301, 302, 307, 308):
            location = response.headers.get("location")
            _discard(response)
            if not location:
                raise GitHubError(f"{what}: GitHub answered {response.status} without a Location")
            response = self._request(location, what=what, accept="application/vnd.github+json", permission=permission)
        body, cut, _ = self._read(response, MAX_JSON_BYTES, keep_tail=None)
        if cut:
            raise GitHubError(f"{what}: the answer is larger than {MAX_JSON_BYTES} bytes; not read")
        try:
            return response, json.loads(body)
        except ValueError:
            raise GitHubError(f"{what}: GitHub's answer is not JSON") from None

    def _download(self, url: str, *, what: str, keep_tail: int | None = None, to_file: bool = False) -> Download:
        response = self._request(url, what=what, accept="application/vnd.github+json", permission="actions:read")
        for _ in range(3):
            if response.status not in (301, 302, 303, 307, 308):
                break
            location = response.headers.get("location")
            _discard(response)
            if not location:
                raise GitHubError(f"{what}: GitHub answered {response.status} without a Location")
            response = self._request(location, what=what, accept="*/*", permission="actions:read")
        else:
            raise GitHubError(f"{what}: too many redirects")
        if not to_file:
            data, cut, read = self._read(response, self.max_download_bytes, keep_tail=keep_tail)
            return Download(data=data, cut=cut, bytes_read=read)
        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
        try:
            _, cut, read = self._read(response, self.max_download_bytes, keep_tail=None, sink=spool)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return Download(data=b"", cut=cut, bytes_read=read, file=spool)

    def _read(self, response: Any, limit: int, *, keep_tail: int | None,
              sink: Any = None) -> tuple[bytes, bool, int]:
        """At most ``limit`` bytes of the body, streamed; with ``keep_tail``, only the last that many are kept;
        with ``sink``, every byte read is written there instead."""
        kept = bytearray()
        read = 0
        cut = False
        try:
            for chunk in response.stream(_CHUNK, decode_content=True):
                if read + len(chunk) > limit:
                    chunk = chunk[: limit - read]
                    cut = True
                read += len(chunk)
                if sink is not None:
                    sink.write(chunk)
                else:
                    kept += chunk
                if keep_tail is not None and len(kept) > 2 * keep_tail:
                    del kept[: len(kept) - keep_tail]
                if cut:
                    break
        except Exception as exc:
            raise GitHubError(f"the download broke off after {read} bytes ({type(exc).__name__})") from None
        finally:
            if cut:
                _discard(response)
            else:
                response.release_conn()
        if keep_tail is not None and len(kept) > keep_tail:
            del kept[: len(kept) - keep_tail]
        return bytes(kept), cut, read


def _discard(response: Any) -> None:
    """Give the connection back without reading the rest of an unread body: it is closed, so the pool
    opens a new one instead of reusing one with bytes still in flight."""
    response.close()
    response.release_conn()
