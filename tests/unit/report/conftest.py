"""Incident fixtures for the report and sink tests; the data lives in samples.py."""

import pytest

from incident_responder.models import Incident, IntakeError
from tests.unit.report.samples import make_incident, make_intake_error, make_leaky_incident


@pytest.fixture
def incident() -> Incident:
    return make_incident()


@pytest.fixture
def leaky_incident() -> Incident:
    return make_leaky_incident()


@pytest.fixture
def intake_error() -> IntakeError:
    return make_intake_error()
