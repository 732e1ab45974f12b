"""Every event in events/ parses into the outcome its name promises; bad ones name the field."""

from __future__ import annotations

import json

import pytest

from incident_responder.intake import Ignored, KnownGoodImage, parse_event
from incident_responder.models import Evidence, FailureEvent, IntakeError, Subject
from incident_responder.triage import finish
from tests.support.events import load_event, pipeline_event_files

EXPECTED_KIND = {
    "sagemaker-training-job-failed-": FailureEvent,
    "stepfunctions-execution-": FailureEvent,
    "aws-sample-stepfunctions-execution-status-change-failed": FailureEvent,
    "sagemaker-training-job-completed": KnownGoodImage,
    "aws-sample-sagemaker-training-job-state-change": KnownGoodImage,
    "malformed-": IntakeError,
    "unrelated-": IntakeError,
    # A GitHub delivery is not an EventBridge event: the webhook endpoint takes it (github/) and hands the
    # verified failure to triage on the event bus.
    "github-run-handed-to-triage": FailureEvent,
    "github-workflow-run-": IntakeError,
    "codebuild-build-failed": FailureEvent,
    "codebuild-build-stopped": Ignored,
    "cloudformation-stack-status-change-failed": FailureEvent,
    "cloudformation-stack-status-change-rollback-in-progress": FailureEvent,
    "cloudformation-stack-status-change-update-complete": Ignored,
}


def _expected_kind(name: str) -> type:
    for prefix, kind in EXPECTED_KIND.items():
        if name.startswith(prefix):
            return kind
    raise AssertionError(f"events/{name}: add its expected outcome to EXPECTED_KIND in this test")


@pytest.mark.parametrize("path", pipeline_event_files(), ids=lambda p: p.stem)
def test_every_sample_event_parses_to_its_kind(path):
    result = parse_event(json.loads(path.read_text()))
    assert isinstance(result, _expected_kind(path.stem)), result


@pytest.mark.parametrize(
    "name, field",
    [
        ("malformed-sagemaker-missing-job-name.json", "detail.TrainingJobName"),
        ("malformed-stepfunctions-unknown-status.json", "detail.status"),
        ("malformed-codebuild-missing-build-id.json", "detail.build-id"),
        ("unrelated-ec2-state-change.json", "detail-type"),
        ("malformed-not-eventbridge.json", "detail-type"),
    ],
)
def test_a_bad_event_names_the_field_and_what_to_do(name, field):
    error = parse_event(load_event(name))
    assert isinstance(error, IntakeError)
    assert error.errors and error.errors[0].startswith(field + ":")
    assert "check" in error.errors[0].lower()
    assert error.raw_excerpt


@pytest.mark.parametrize("raw", [None, [], "text", 42, {"detail-type": 7}])
def test_non_object_or_nonsense_input_is_an_intake_error_not_a_crash(raw):
    assert isinstance(parse_event(raw), IntakeError)


def test_failed_training_job_event_carries_what_triage_needs():
    event = parse_event(load_event("sagemaker-training-job-failed-train-argument.json"))
    assert event.training_job_name == "3dgs-prod-validation-1764378390"
    assert event.image_uri.endswith("spaceport/3dgs:latest")
    assert 'exec: "train"' in event.failure_reason
    assert event.region == "us-west-2" and event.account == "123456789012"


def test_pipeline_failure_keeps_error_and_cause():
    event = parse_event(load_event("stepfunctions-execution-failed.json"))
    assert event.source == "stepfunctions"
    assert event.failure_reason.startswith("SageMaker.AmazonSageMakerException: Training job")
    assert event.execution_arn.endswith(":prod-validation-1764378390")


def test_timestamps_in_epoch_milliseconds_become_datetimes():
    known_good = parse_event(load_event("sagemaker-training-job-completed.json"))
    assert known_good.completed_at.year == 2025


def test_succeeded_execution_is_ignored():
    raw = load_event("stepfunctions-execution-failed.json")
    raw["detail"]["status"] = "SUCCEEDED"
    assert isinstance(parse_event(raw), Ignored)


def test_the_responders_own_state_machine_is_never_triaged():
    raw = load_event("stepfunctions-execution-failed.json")
    own = raw["detail"]["stateMachineArn"]
    result = parse_event(raw, ignore_state_machines=frozenset({own}))
    assert isinstance(result, Ignored) and "own" in result.reason


def test_secrets_in_a_malformed_event_are_redacted_in_the_record():
    raw = load_event("malformed-sagemaker-missing-job-name.json")
    secret = "AKIA" + "Q" * 16
    raw["detail"]["HyperParameters"]["aws_key"] = secret
    error = parse_event(raw)
    assert secret not in error.raw_excerpt


def test_a_secret_in_the_event_never_leaves_triage_boundary():
    raw = load_event("sagemaker-training-job-failed-train-argument.json")
    secret = "AKIA" + "Q" * 16
    raw["detail"]["FailureReason"] += f" (key {secret})"
    raw["detail"]["TrainingJobName"] = f"3dgs-{secret}"
    event = parse_event(raw)
    incident = finish(event, Evidence(subject=Subject(region=event.region, training_job_name=event.training_job_name)))
    dumped = incident.model_dump_json()
    assert secret not in dumped and "REDACTED" in incident.event.failure_reason
    # The key never carries the secret, and two such names stay two incidents.
    assert secret not in incident.key and incident.key.startswith("training-job:sha256-")


def _huge_phase_context(raw):
    raw["detail"]["additional-information"]["phases"][2]["phase-context"] = ["\x01" * 10_000_000]


def _huge_stack_reason(raw):
    raw["detail"]["status-details"]["status-reason"] = "\x01" * 10_000_000


@pytest.mark.parametrize("name, enlarge", [
    ("sagemaker-training-job-failed-train-argument.json",
     lambda raw: raw["detail"].__setitem__("FailureReason", "\x01" * 10_000_000)),
    ("codebuild-build-failed.json", _huge_phase_context),
    ("cloudformation-stack-status-change-failed.json", _huge_stack_reason),
], ids=["sagemaker-failure-reason", "codebuild-phase-context", "cloudformation-status-reason"])
def test_a_failure_reason_larger_than_aws_allows_is_cut_at_intake(name, enlarge):
    raw = load_event(name)
    enlarge(raw)
    event = parse_event(raw)
    assert len(event.failure_reason) < 40_000 and event.failure_reason.endswith(" chars]")
    assert "[cut: 100000" in event.failure_reason


def test_a_bad_field_excerpt_is_redacted_before_it_is_cut():
    raw = load_event("sagemaker-training-job-failed-train-argument.json")
    secret = "AKIA" + "Z" * 16
    raw["detail"]["TrainingJobArn"] = "x" * 60 + secret  # the secret straddles the 80-character excerpt
    error = parse_event(raw)
    assert isinstance(error, IntakeError)
    assert "AKIA" not in error.model_dump_json() and "ZZZZ" not in error.model_dump_json()


def test_a_deeply_nested_event_is_an_intake_error_not_a_crash():
    raw = load_event("sagemaker-training-job-failed-train-argument.json")
    nested: dict = {}
    for _ in range(5000):
        nested = {"a": nested}
    raw["detail"]["HyperParameters"] = nested
    error = parse_event(raw)
    assert isinstance(error, IntakeError) and error.errors


def test_a_secret_in_a_completed_jobs_name_never_reaches_the_known_good_ledger():
    raw = load_event("sagemaker-training-job-completed.json")
    secret = "AKIA" + "K" * 16
    raw["detail"]["TrainingJobName"] = f"3dgs-{secret}"
    image = parse_event(raw)
    assert isinstance(image, KnownGoodImage) and secret not in image.model_dump_json()
