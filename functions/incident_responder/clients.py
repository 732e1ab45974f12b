"""AWS clients for the core, with botocore's retry modes and a per-incident call counter.

The core never creates clients; handlers and the CLI do, here, and pass them in.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

SERVICES = ("sagemaker", "logs", "stepfunctions", "ecr", "sns", "secretsmanager", "dynamodb", "codebuild",
            "cloudformation", "events")


class CallCounter:
    """Counts API operations (not retry attempts) made through the clients.

    ``count`` is the total. ``scope()`` counts one unit of work on its own: calls made in that
    context (and in threads started with a copy of it, as the sinks are) go to the scope's list,
    so two incidents handled at once in one process never mix their counts.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._scopes: contextvars.ContextVar[tuple[list[str], ...]] = contextvars.ContextVar("api_calls", default=())

    def __call__(self, model: Any = None, **kwargs: Any) -> None:
        name = f"{model.service_model.service_name}:{model.name}" if model else "?"
        with self._lock:
            self.calls.append(name)
        for scoped in self._scopes.get():
            scoped.append(name)

    @contextmanager
    def scope(self) -> Iterator[list[str]]:
        """Nested scopes each see their own calls and their inner scopes' calls."""
        calls: list[str] = []
        token = self._scopes.set((*self._scopes.get(), calls))
        try:
            yield calls
        finally:
            self._scopes.reset(token)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    @property
    def count(self) -> int:
        return len(self.calls)


class AwsClients:
    """One client per service, created on first use: a SageMaker failure never pays for the
    Step Functions client, and the large service models load only when needed."""

    # The GitHub REST client (github.api.GitHubApi) where a token is configured; set by the webhook handler.
    github: Any = None

    def __init__(self, factory: Callable[[str], Any], counter: CallCounter, region: str | None = None) -> None:
        self._factory = factory
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.counter = counter
        self.region = region

    def __getattr__(self, service: str) -> Any:
        if service not in SERVICES:
            raise AttributeError(service)
        with self._lock:  # sinks run on threads; one client per service
            if service not in self._clients:
                client = self._factory(service)
                client.meta.events.register("before-call", self.counter)
                self._clients[service] = client
            return self._clients[service]


def make_clients(
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    session: Any = None,
    credentials: dict[str, str] | None = None,
) -> AwsClients:
    import boto3
    from botocore.config import Config

    session = session or boto3.session.Session(region_name=region, **(credentials or {}))
    standard = Config(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=15
    )
    # CloudWatch Logs read APIs have low per-account rate limits: adaptive mode backs off client-side.
    adaptive = Config(
        retries={"mode": "adaptive", "max_attempts": 6}, connect_timeout=3, read_timeout=15
    )

    def create(service: str) -> Any:
        return session.client(
            service,
            region_name=region or session.region_name,
            endpoint_url=endpoint_url,
            config=adaptive if service == "logs" else standard,
        )

    return AwsClients(create, CallCounter(), region=region or session.region_name)
