"""moto in server mode on loopback, one per test session (per xdist worker)."""

from __future__ import annotations

import pytest

from incident_responder.clients import AwsClients, make_clients
from incident_responder.demo.emulator import EMULATOR_CREDENTIALS, Emulator, start_emulator

REGION = "us-west-2"


@pytest.fixture(scope="session")
def emulator() -> Emulator:
    with start_emulator() as running:
        running.enable_state_machine_execution()
        yield running


@pytest.fixture(scope="session")
def moto_endpoint(emulator: Emulator) -> str:
    return emulator.url


@pytest.fixture
def aws_clients(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> AwsClients:
    """Clients pointed at the emulator; env credentials are fake so nothing can reach AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)


@pytest.fixture
def step_functions(aws_clients: AwsClients, emulator: Emulator):
    """The Step Functions client on a backend with no earlier executions (see reset_step_functions)."""
    emulator.reset_step_functions()
    return aws_clients.stepfunctions
