"""The TriageFunction handler with every sample event, as Lambda invokes it."""

from __future__ import annotations

import json

import pytest

from incident_responder.delivery import DeliveryIncomplete
from incident_responder.demo.provision import read_inbox
from tests.support.events import load_event, pipeline_event_files

# What each event in events/ must lead to. A new event file needs a line here.
EXPECTED = {
    # AWS's sample names no ECR image ("TrainingImage"): nothing can be recorded, and it says so.
    "aws-sample-sagemaker-training-job-state-change": ("known_good_not_recorded", None),
    "aws-sample-stepfunctions-execution-status-change-failed": ("reported", "unknown"),
    "malformed-not-eventbridge": ("intake_error", None),
    "malformed-sagemaker-missing-job-name": ("intake_error", None),
    "malformed-stepfunctions-unknown-status": ("intake_error", None),
    # Its image is not in the emulator's ECR: the digest it ran cannot be told (test below pushes it).
    "sagemaker-training-job-completed": ("known_good_not_recorded", None),
    "sagemaker-training-job-failed-cuda-oom": ("reported", "sagemaker_environment"),
    "sagemaker-training-job-failed-no-kernel-image": ("reported", "cuda_gpu"),
    "sagemaker-training-job-failed-no-reason-logs-only": ("reported", "unknown"),
    "sagemaker-training-job-failed-s3-access-denied": ("reported", "aws_credentials"),
    "sagemaker-training-job-failed-train-argument": ("reported", "entry_point"),
    "stepfunctions-execution-aborted": ("reported", "unknown"),
    "stepfunctions-execution-failed": ("reported", "entry_point"),
    "stepfunctions-execution-timed-out": ("reported", "unknown"),
    "unrelated-ec2-state-change": ("intake_error", None),
    # GitHub's webhook payload has no EventBridge envelope: the webhook endpoint takes it, not this function.
    "github-workflow-run-failure": ("intake_error", None),
    "github-workflow-run-startup-failure": ("intake_error", None),
    # The endpoint's hand-off: with no GitHub token configured the run's logs cannot be read, and it says so.
    "github-run-handed-to-triage": ("reported", "unknown"),
    "malformed-codebuild-missing-build-id": ("intake_error", None),
    # The build and the stack are not in the emulator: only the event's own words are classified
    # (tests/integration/test_build_and_deploy_sources.py gives them their evidence).
    "codebuild-build-failed": ("reported", "unknown"),
    "codebuild-build-stopped": ("ignored", None),
    "cloudformation-stack-status-change-failed": ("reported", "unknown"),
    "cloudformation-stack-status-change-rollback-in-progress": ("reported", "unknown"),
    "cloudformation-stack-status-change-update-complete": ("ignored", None),
}


@pytest.mark.parametrize("path", pipeline_event_files(), ids=lambda p: p.stem)
def test_every_sample_event_is_handled_and_alerted_as_expected(path, deployed_responder, slack_receiver):
    assert path.stem in EXPECTED, f"events/{path.name}: add its expected outcome to EXPECTED"
    outcome_kind, category = EXPECTED[path.stem]
    result = deployed_responder.invoke(json.loads(path.read_text()))
    assert result["outcome"] == outcome_kind, result
    assert result["category"] == category
    inbox = read_inbox(deployed_responder.clients, deployed_responder.queue_url)
    if outcome_kind in ("reported", "intake_error"):
        # Both sinks alerted: an unusable event is never silently dropped.
        assert [n["sink"] for n in result["notifications"]] == ["slack", "sns"]
        assert all(n["ok"] for n in result["notifications"]), result["notifications"]
        assert len(slack_receiver.requests) == 1 and len(inbox) == 1
    else:
        assert slack_receiver.requests == [] and inbox == []


def test_a_redelivered_event_is_answered_from_the_idempotency_record(deployed_responder, slack_receiver):
    event = load_event("sagemaker-training-job-failed-train-argument.json")
    first = deployed_responder.invoke(event)
    again = deployed_responder.invoke(event)
    assert again == first
    assert len(slack_receiver.requests) == 1


def test_a_second_event_for_the_same_failure_is_linked_not_reported_again(deployed_responder, slack_receiver):
    event = load_event("sagemaker-training-job-failed-train-argument.json")
    deployed_responder.invoke(event)
    duplicate = {**event, "id": "another-delivery-of-the-same-state-change"}
    result = deployed_responder.invoke(duplicate)
    assert result["outcome"] == "duplicate"
    assert len(slack_receiver.requests) == 1
    item = deployed_responder.clients.dynamodb.get_item(
        TableName=deployed_responder.table, Key={"id": {"S": "incident#" + result["incident_key"]}}
    )["Item"]
    assert set(item["event_ids"]["SS"]) == {event["id"], duplicate["id"]}
    assert set(item["deliveries"]["M"]) == {"slack", "sns"}
    assert json.loads(item["deliveries"]["M"]["slack"]["S"])["ok"] is True


def test_a_malformed_event_is_recorded_for_later_inspection(deployed_responder):
    event = load_event("malformed-sagemaker-missing-job-name.json")
    result = deployed_responder.invoke(event)
    item = deployed_responder.clients.dynamodb.get_item(
        TableName=deployed_responder.table, Key={"id": {"S": f"intake-error#{event['id']}"}}
    )["Item"]
    record = json.loads(item["error"]["S"])
    assert record["errors"][0].startswith("detail.TrainingJobName:")
    assert int(item["expiration"]["N"]) > 0
    assert "TrainingJobName" in result["detail"]


def test_slack_failing_does_not_stop_the_sns_report_and_the_retry_delivers_only_slack(
        deployed_responder, slack_receiver):
    event = load_event("sagemaker-training-job-failed-cuda-oom.json")
    slack_receiver.reply_next(500, "internal_error", times=3)  # the sink's own retries fail too
    with pytest.raises(DeliveryIncomplete, match="slack: webhook answered: HTTP 500") as failed:
        deployed_responder.invoke(event)
    slack, sns = failed.value.notifications
    assert not slack.ok and sns.ok and sns.message_id
    assert len(read_inbox(deployed_responder.clients, deployed_responder.queue_url)) == 1

    retried = deployed_responder.invoke(event)  # Lambda's retry of the failed invocation

    assert retried["outcome"] == "reported"
    assert [(n["sink"], n["ok"]) for n in retried["notifications"]] == [("slack", True)]
    assert len(read_inbox(deployed_responder.clients, deployed_responder.queue_url)) == 0
    assert len(slack_receiver.requests) == 4


def test_completed_job_records_the_digest_it_ran_in_the_ledger(deployed_responder):
    from datetime import datetime, timezone

    from incident_responder.demo.provision import push_images
    from incident_responder.rollback.ledger import Ledger, protect_tag

    push_images(deployed_responder.clients, "spaceport/3dgs", ["latest"])
    event = load_event("sagemaker-training-job-completed.json")
    # The job started after the tag was pushed (the sample's start time is older than this push).
    event["detail"]["TrainingStartTime"] = str(int(datetime.now(timezone.utc).timestamp() * 1000) + 5_000)
    result = deployed_responder.invoke(event)
    assert result["outcome"] == "known_good_recorded", result
    [entry] = Ledger(deployed_responder.clients.dynamodb, deployed_responder.table).history("us-west-2", "spaceport/3dgs")
    digest = deployed_responder.clients.ecr.describe_images(
        repositoryName="spaceport/3dgs", imageIds=[{"imageTag": "latest"}])["imageDetails"][0]["imageDigest"]
    assert (entry.digest, entry.training_job_name) == (digest, event["detail"]["TrainingJobName"])
    assert entry.protect_tag == protect_tag(digest)