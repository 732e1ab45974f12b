import pytest
from pydantic import ValidationError

from incident_responder.models import Category
from incident_responder.report import SnsMessage, render_intake_error_sns, render_sns
from incident_responder.report.sns import SNS_MAX_BYTES, SUBJECT_MAX_CHARS, sns_subject
from tests.unit.report.samples import (
    JOB, all_secret_substrings, make_diagnosis, make_evidence, make_event, make_incident,
)


def test_subject_names_verdict_and_job(incident) -> None:
    assert render_sns(incident).subject == f"[3DGS] entry_point/train_argument_replaces_cmd: {JOB}"


@pytest.mark.parametrize("event_overrides", [
    pytest.param({"training_job_name": "j" * 63 + "-" + "x" * 200}, id="very-long-job-name"),
    pytest.param({"training_job_name": "3dgs-ünïcödé-ジョブ-run"}, id="non-ascii-job-name"),
    pytest.param({"training_job_name": "line\nbreak\tand\x00control"}, id="control-characters"),
    pytest.param({"training_job_name": None, "source": "stepfunctions",
                  "execution_arn": "arn:aws:states:us-west-2:123456789012:execution:P:" + "r" * 80},
                 id="execution-name"),
])
def test_subject_always_fits_sns(event_overrides) -> None:
    diagnosis = make_diagnosis(cause="c" * 120, category=Category.python_dependencies)
    message = render_sns(make_incident(event=make_event(**event_overrides), diagnosis=diagnosis))
    assert len(message.subject) <= SUBJECT_MAX_CHARS
    assert message.subject.isascii() and message.subject.isprintable()
    assert message.subject.startswith("[3DGS] python_dependencies/")


@pytest.mark.parametrize(("text", "expected"), [
    ("[3DGS] a/b: job-1", "[3DGS] a/b: job-1"),
    ("  leading\nand\r\ntrailing  ", "leading and trailing"),
    ("café", "cafe"),
    ("x" * 150, "x" * 97 + "..."),
    ("\n\n", "[3DGS] incident"),
])
def test_sns_subject_cleans_text(text, expected) -> None:
    assert sns_subject(text) == expected


@pytest.mark.parametrize(("subject", "complaint"), [
    ("two\nlines", "printable ASCII"),
    ("caf\u00e9", "printable ASCII"),
    ("x" * 101, "at most 100 characters"),
    (" leading space", "not a space"),
])
def test_sns_message_rejects_subjects_sns_would_reject(subject, complaint) -> None:
    with pytest.raises(ValidationError, match=complaint):
        SnsMessage(subject=subject, message="body")


@pytest.mark.parametrize(("attributes", "complaint"), [
    ({"AWS.reserved": {"DataType": "String", "StringValue": "x"}}, "not allowed by SNS"),
    ({"category": {"DataType": "Binary", "StringValue": "x"}}, "must be"),
    ({"category": {"DataType": "String", "StringValue": ""}}, "must be"),
])
def test_sns_message_rejects_bad_attributes(attributes, complaint) -> None:
    with pytest.raises(ValidationError, match=complaint):
        SnsMessage(subject="s", message="body", attributes=attributes)


def test_sns_message_rejects_oversized_body() -> None:
    with pytest.raises(ValidationError, match="SNS accepts at most"):
        SnsMessage(subject="s", message="x" * (SNS_MAX_BYTES + 1))


def test_attributes_for_filter_policies(incident) -> None:
    assert render_sns(incident).attributes == {
        "kind": {"DataType": "String", "StringValue": "incident"},
        "category": {"DataType": "String", "StringValue": "entry_point"},
        "cause": {"DataType": "String", "StringValue": "train_argument_replaces_cmd"},
        "source": {"DataType": "String", "StringValue": "sagemaker"},
        "severity": {"DataType": "String", "StringValue": "high"},
        "confidence": {"DataType": "Number", "StringValue": "0.92"},
    }


@pytest.mark.parametrize(("status", "severity"), [("Failed", "high"), ("TIMED_OUT", "high"), ("ABORTED", "low")])
def test_severity_follows_status(status, severity) -> None:
    message = render_sns(make_incident(event=make_event(status=status)))
    assert message.attributes["severity"]["StringValue"] == severity


def test_huge_report_is_cut_to_fit_with_a_note() -> None:
    huge_tail = ["Step %d loss=0.1 " % n + "é" * 500 for n in range(1000)]
    diagnosis = make_diagnosis(evidence=[], commands=["echo " + "y" * 300_000])
    message = render_sns(make_incident(evidence=make_evidence(log_lines=huge_tail), diagnosis=diagnosis))
    assert len(message.message.encode()) < SNS_MAX_BYTES
    assert "[truncated: the full report was" in message.message


def test_body_is_plain_text_report_without_secrets(leaky_incident) -> None:
    message = render_sns(leaky_incident)
    assert "\033[" not in message.message
    assert message.message.startswith("FAILED SageMaker training job")
    flat = message.subject + message.message + repr(message.attributes)
    assert [s for s in all_secret_substrings() if s in flat] == []


def test_intake_error_message(intake_error) -> None:
    message = render_intake_error_sns(intake_error)
    assert message.subject == "[3DGS] Responder could not use SageMaker Training Job State Change"
    assert message.attributes["kind"]["StringValue"] == "intake_error"
    assert "detail.TrainingJobName" in message.message
