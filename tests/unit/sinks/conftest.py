"""The sink tests reuse the report tests' incident fixtures."""

from tests.unit.report.conftest import incident, intake_error, leaky_incident  # noqa: F401
