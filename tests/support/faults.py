"""AWS faults moto cannot produce (throttling, a service error on one call), injected where botocore
sends a request: a `before-send` handler that answers with the HTTP response AWS would send. The
client's own parsing and retry logic then run as they would against AWS."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

# (HTTP status, body) per fault, in the JSON protocol's shape (DynamoDB, Step Functions, Secrets Manager).
FAULTS: dict[str, tuple[int, dict[str, str]]] = {
    "throttled": (400, {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                        "message": "The level of configured provisioned throughput for the table was exceeded."}),
    "access_denied": (400, {"__type": "AccessDeniedException", "message": "User is not authorized to perform this action"}),
    "internal_error": (500, {"__type": "InternalFailure", "message": "The request processing has failed."}),
}


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any):
        yield self._data


@dataclass
class FaultInjector:
    """Fails calls to ``operation`` (botocore's event name, e.g. "dynamodb.PutItem" or "dynamodb.*"):
    the next ``times`` calls, or each call with probability ``rate``. Counts what it injected."""

    fault: str
    operation: str
    times: int | None = None
    rate: float = 0.0
    seed: int = 0
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def attach(self, client: Any) -> "FaultInjector":
        client.meta.events.register_first(f"before-send.{self.operation}", self._before_send)
        return self

    def _before_send(self, request: Any, **_kwargs: Any) -> AWSResponse | None:
        with self._lock:
            if self.times is not None:
                if self.injected >= self.times:
                    return None
            elif self._random.random() >= self.rate:
                return None
            self.injected += 1
        status, body = FAULTS[self.fault]
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.0"},
                           _Body(json.dumps(body).encode()))
