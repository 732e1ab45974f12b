"""The `github` fixture: the GitHub REST API stand-in on loopback, with a token generated per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from incident_responder.demo.github_standin import GitHubStandIn, StandInJob, StandInStep

__all__ = ["GitHubStandIn", "StandInJob", "StandInStep", "github"]


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(token="ghs_" + secrets.token_hex(18)) as standin:
        yield standin
