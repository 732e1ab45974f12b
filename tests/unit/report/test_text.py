import pytest

from incident_responder.models import EvidenceLine, ExecutionEvidence
from incident_responder.report import render_intake_error_text, render_text
from tests.unit.report.samples import (
    JOB, LOG_STREAM, all_secret_substrings, make_diagnosis, make_event, make_evidence, make_incident, make_intake_error,
    make_leaky_incident,
)


def test_first_line_says_what_failed_and_the_verdict(incident) -> None:
    first = render_text(incident).splitlines()[0]
    assert first == (f"FAILED SageMaker training job {JOB} -> entry_point/train_argument_replaces_cmd"
                     " (confidence 92%)")


SFN = "arn:aws:states:us-west-2:123456789012:execution:SpaceportMLPipeline:prod-validation-9"


NO_JOB = {"training_job": None, "logs": None, "image": None,
          "execution": ExecutionEvidence(execution_arn=SFN, status="FAILED")}


@pytest.mark.parametrize(("event_overrides", "evidence_overrides", "what"), [
    ({}, {}, f"FAILED SageMaker training job {JOB}"),
    ({"source": "stepfunctions", "status": "FAILED", "execution_arn": SFN, "training_job_name": None,
      "image_uri": None}, NO_JOB, "FAILED Step Functions execution prod-validation-9"),
    ({"source": "stepfunctions", "status": "TIMED_OUT", "execution_arn": SFN}, {},
     f"TIMED OUT Step Functions execution prod-validation-9 (training job {JOB})"),
    ({"source": "stepfunctions", "status": "FAILED", "execution_arn": SFN, "training_job_name": None}, {},
     f"FAILED Step Functions execution prod-validation-9 (training job {JOB})"),
    ({"source": "stepfunctions", "status": "ABORTED", "execution_arn": SFN, "training_job_name": None,
      "image_uri": None}, NO_JOB, "ABORTED Step Functions execution prod-validation-9"),
])
def test_first_line_names_the_failed_thing_for_each_source(event_overrides, evidence_overrides, what) -> None:
    event = make_event(**event_overrides)
    incident = make_incident(event=event, evidence=make_evidence(event=event, **evidence_overrides))
    first = render_text(incident).splitlines()[0]
    assert first.startswith(f"{what} -> entry_point/")


def test_sections_read_in_order_evidence_remediation_commands_links_missing(incident) -> None:
    text = render_text(incident)
    headings = ["Failure reason", "Evidence", "Remediation", "Commands (ready to paste)", "Links", "Missing evidence"]
    positions = [text.index(f"\n{heading}\n") for heading in headings]
    assert positions == sorted(positions)
    assert f'  L1  exec: "train": executable file not found in $PATH [log:{LOG_STREAM}]' in text
    assert "  1. Use an exec-form ENTRYPOINT" in text and "  2. Rebuild and push" in text
    assert f"\n  aws sagemaker describe-training-job --training-job-name {JOB}\n" in text
    assert "  - logs: only 1 of 2 log streams readable (algo-2 not found)" in text
    assert f"#/jobs/{JOB}" in text


def test_evidence_numbers_are_aligned_and_continuations_indented() -> None:
    diagnosis = make_diagnosis(evidence=[EvidenceLine(line=7, text="first"),
                                         EvidenceLine(line=1234, text="multi\nline")])
    text = render_text(make_incident(diagnosis=diagnosis))
    assert "  L7     first\n" in text
    assert "  L1234  multi\n         line\n" in text


@pytest.mark.parametrize(("evidence_overrides", "present"), [
    ({}, True),
    ({"missing": []}, False),
])
def test_missing_evidence_section_only_when_something_is_missing(evidence_overrides, present) -> None:
    text = render_text(make_incident(evidence=make_evidence(**evidence_overrides)))
    assert ("\nMissing evidence\n" in text) is present


@pytest.mark.parametrize(("color", "has_escapes"), [(False, False), (True, True)])
def test_color_is_opt_in(incident, color, has_escapes) -> None:
    assert ("\033[" in render_text(incident, color=color)) is has_escapes


def test_no_evidence_is_said_plainly() -> None:
    text = render_text(make_incident(diagnosis=make_diagnosis(evidence=[])))
    assert "(no line decided this diagnosis)" in text


def test_renderings_redact_before_layout(leaky_incident) -> None:
    text = render_text(leaky_incident) + render_intake_error_text(
        make_intake_error(raw_excerpt=make_leaky_incident().event.failure_reason))
    assert [s for s in all_secret_substrings() if s in text] == []
    assert "[REDACTED:private_key]" in text


def test_intake_error_names_each_problem_and_what_to_do(intake_error) -> None:
    text = render_intake_error_text(intake_error)
    assert text.startswith("INTAKE ERROR Responder could not use SageMaker Training Job State Change")
    assert "  - detail.TrainingJobName: missing; send the full SageMaker event" in text
    assert "resend" in text
