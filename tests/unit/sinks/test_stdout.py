import io

import pytest
from pydantic import ValidationError

from incident_responder.sinks import StdoutParams, StdoutSink
from tests.unit.report.samples import JOB, all_secret_substrings, make_incident, make_intake_error, make_leaky_incident


def test_writes_the_terminal_report() -> None:
    incident = make_incident()
    stream = io.StringIO()
    notification = StdoutSink(StdoutParams(), stream=stream).send(incident)
    assert notification.ok and notification.sink == "stdout"
    assert stream.getvalue().startswith(f"FAILED SageMaker training job {JOB}")
    assert "\033[" not in stream.getvalue()


def test_color_when_asked() -> None:
    incident = make_incident()
    stream = io.StringIO()
    StdoutSink(StdoutParams(color=True), stream=stream).send(incident)
    assert "\033[1;31m" in stream.getvalue()


def test_defaults_to_the_current_sys_stdout(capsys) -> None:
    incident = make_incident()
    StdoutSink().send(incident)
    assert JOB in capsys.readouterr().out


def test_leaky_incident_is_redacted() -> None:
    intake_error = make_intake_error()
    leaky_incident = make_leaky_incident()
    stream = io.StringIO()
    sink = StdoutSink(stream=stream)
    assert sink.send(leaky_incident).ok
    assert sink.send_intake_error(intake_error.model_copy(update={"raw_excerpt": leaky_incident.event.failure_reason})).ok
    assert [s for s in all_secret_substrings() if s in stream.getvalue()] == []


def test_closed_stream_is_a_failed_notification_not_an_exception() -> None:
    incident = make_incident()
    stream = io.StringIO()
    stream.close()
    notification = StdoutSink(stream=stream).send(incident)
    assert not notification.ok
    assert "write failed: ValueError" in notification.detail


def test_unknown_params_are_rejected() -> None:
    with pytest.raises(ValidationError, match="colour"):
        StdoutParams(colour=True)
