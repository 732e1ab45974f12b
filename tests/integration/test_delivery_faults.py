"""Faults between triage and the operator, against moto over HTTP and the local Slack receiver:
each one lost or doubled an alert before delivery became its own, recorded step."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from incident_responder.delivery import DeliveryIncomplete, JoinPending
from incident_responder.demo.provision import (
    create_incident_table,
    create_topic_with_inbox,
    create_training_job,
    push_images,
    read_inbox,
    write_training_log,
)
from incident_responder.demo.run import training_job_event
from incident_responder.respond import handle_event
from incident_responder.runtime import ResponderSettings, build_runtime
from incident_responder.store import IncidentStore
from tests.support.faults import FaultInjector
from tests.support.moto_server import REGION


@pytest.fixture
def failed_job(aws_clients, emulator):
    """A failed training job with a traceback in its log; returns its EventBridge event."""
    def make(log: list[str] | None = None, reason: str = "AlgorithmError: , exit code: 1") -> dict:
        job = f"3dgs-fault-{uuid.uuid4().hex[:8]}"
        create_training_job(aws_clients, job, image_uri=push_images(aws_clients, "spaceport/3dgs", ["latest"])[0])
        emulator.fail_training_job(job, reason, region=REGION)
        write_training_log(aws_clients, job, log or ["ModuleNotFoundError: No module named 'gsplat'"])
        return training_job_event(aws_clients.sagemaker.describe_training_job(TrainingJobName=job), REGION)
    return make


@pytest.fixture
def responder(aws_clients, emulator, slack_receiver):
    """A runtime like the Lambda's (table, topic with an inbox, Slack secret), sharing the test's clients."""
    suffix = uuid.uuid4().hex[:8]
    table = f"incidents-{suffix}"
    create_incident_table(aws_clients, table)
    topic_arn, queue_url = create_topic_with_inbox(aws_clients, f"alerts-{suffix}")
    secret = aws_clients.secretsmanager.create_secret(Name=f"slack-{suffix}", SecretString=slack_receiver.url)["ARN"]

    def build(**overrides):
        settings = dict(region=REGION, endpoint_url=emulator.url, incident_table=table, sns_topic_arn=topic_arn,
                        slack_webhook_secret_arn=secret, log_wait_seconds=0)
        settings.update(overrides)
        return build_runtime(ResponderSettings(**settings), clients=aws_clients)

    build.table, build.queue_url = table, queue_url
    return build


def _drain_inbox(aws_clients, queue_url: str) -> list[dict]:
    messages: list[dict] = []
    while batch := read_inbox(aws_clients, queue_url):
        messages += batch
    return messages


def _record(aws_clients, table: str, key: str) -> dict:
    return aws_clients.dynamodb.get_item(TableName=table, Key={"id": {"S": f"incident#{key}"}}, ConsistentRead=True)["Item"]


class DiesAfterRecording(IncidentStore):
    """The function killed (timeout, crash) right after the incident was written, before any sink ran."""

    def open(self, incident):
        super().open(incident)
        raise SystemExit("function killed")


def test_a_function_killed_between_record_and_delivery_still_alerts_once_on_the_retry(
        aws_clients, responder, failed_job, slack_receiver):
    event = failed_job()
    runtime = responder()
    dying = runtime.delivery.store
    runtime.delivery.store = DiesAfterRecording(aws_clients.dynamodb, responder.table)
    with pytest.raises(SystemExit):
        handle_event(event, runtime)
    assert slack_receiver.requests == []

    runtime.delivery.store = dying
    retried = handle_event(event, runtime)
    again = handle_event(event, runtime)

    assert retried.outcome == "reported" and {n.sink for n in retried.notifications} == {"slack", "sns"}
    assert again.outcome == "duplicate"
    assert len(slack_receiver.requests) == 1 and len(read_inbox(aws_clients, responder.queue_url)) == 1


@pytest.mark.parametrize("fault", ["throttled", "missing table"])
def test_the_store_unavailable_still_alerts_and_the_retry_records_without_a_second_alert(
        aws_clients, responder, failed_job, slack_receiver, fault):
    event = failed_job()
    runtime = responder(incident_table="no-such-table") if fault == "missing table" else responder()
    injector = None
    if fault == "throttled":
        # Beyond botocore's own retries: every attempt of every DynamoDB call is throttled.
        injector = FaultInjector("throttled", "dynamodb.*", rate=1.0).attach(aws_clients.dynamodb)
    with pytest.raises(DeliveryIncomplete, match="could not record") as failed:
        handle_event(event, runtime)
    assert {(n.sink, n.ok, n.recorded) for n in failed.value.notifications} == {
        ("slack", True, False), ("sns", True, False)}
    assert len(slack_receiver.requests) == 1

    if injector is not None:
        injector.rate = 0.0
    else:
        runtime.delivery.store = IncidentStore(aws_clients.dynamodb, responder.table)
    retried = handle_event(event, runtime)

    assert len(slack_receiver.requests) == 1, "the retry must not alert again"
    item = _record(aws_clients, responder.table, retried.incident_key)
    assert set(item["deliveries"]["M"]) == {"slack", "sns"}


def test_a_long_retry_after_is_not_waited_for_and_does_not_delay_sns(aws_clients, responder, failed_job,
                                                                      slack_receiver):
    event = failed_job()
    slack_receiver.reply_next(429, retry_after=3600)
    with pytest.raises(DeliveryIncomplete, match="slack: webhook answered: HTTP 429") as failed:
        handle_event(event, responder())
    by_sink = {n.sink: n for n in failed.value.notifications}
    assert by_sink["sns"].ok and not by_sink["slack"].ok
    assert len(slack_receiver.requests) == 1  # no second attempt an hour later


def test_every_sink_failing_fails_the_invocation_instead_of_reporting(aws_clients, responder, failed_job,
                                                                     slack_receiver):
    event = failed_job()
    runtime = responder()
    slack_receiver.reply_next(500, times=3)
    FaultInjector("internal_error", "sns.Publish", times=10).attach(aws_clients.sns)
    with pytest.raises(DeliveryIncomplete, match="2 of 2 deliveries failed"):
        handle_event(event, runtime)


@pytest.mark.parametrize("reason", [
    pytest.param("\x07" * 200_000, id="200-KB-of-control-characters"),
    pytest.param("AlgorithmError: " + "x" * 10_000_000, id="10-MB"),
])
def test_a_huge_failure_reason_is_recorded_bounded_and_reported(aws_clients, responder, failed_job, slack_receiver,
                                                                 reason):
    event = failed_job()
    event["detail"]["FailureReason"] = reason
    outcome = handle_event(event, responder())
    assert outcome.outcome == "reported" and len(slack_receiver.requests) == 1
    item = _record(aws_clients, responder.table, outcome.incident_key)
    assert len(item["incident"]["S"].encode()) < 400_000


def test_a_secrets_manager_fault_on_the_first_event_does_not_disable_slack(aws_clients, responder, failed_job,
                                                                           slack_receiver):
    runtime = responder()
    FaultInjector("access_denied", "secrets-manager.GetSecretValue", times=1).attach(aws_clients.secretsmanager)
    with pytest.raises(DeliveryIncomplete, match="Slack webhook secret unusable"):
        handle_event(failed_job(), runtime)
    assert handle_event(failed_job(), runtime).outcome == "reported"
    assert len(slack_receiver.requests) == 1


def test_a_log_event_larger_than_the_budget_does_not_hide_the_traceback_before_it(responder, failed_job):
    event = failed_job(log=["Traceback (most recent call last):", '  File "train.py", line 3, in <module>',
                            "ModuleNotFoundError: No module named 'gsplat'", '{"metrics": "' + "9" * 70_000 + '"}'])
    outcome = handle_event(event, responder(log_tail_bytes=65_536))
    assert outcome.cause == "module_not_found"
    assert any("cut to their first" in m.reason for m in outcome.incident.evidence.missing)


def test_an_event_from_another_region_reads_nothing_there(aws_clients, responder, failed_job):
    event = failed_job()
    event["region"] = "eu-west-1"  # a same-named job exists in us-west-2, where the clients read
    outcome = handle_event(event, responder())
    assert outcome.incident.evidence.training_job is None and outcome.incident.evidence.logs is None
    assert "the event is from eu-west-1 but the responder reads AWS in us-west-2" in outcome.incident.evidence.missing[0].reason


def _pipeline_run(step_functions, job: str) -> tuple[str, str]:
    from tests.integration.test_incident_dedup import _pipeline_failing_with
    return _pipeline_failing_with(step_functions, job)


def _execution_event(machine: str, execution: str, *, cause: str | None) -> dict:
    from tests.integration.test_incident_dedup import _execution_event as base
    event = base(machine, execution)
    if cause:
        event["detail"].update({"error": "SageMaker.AmazonSageMakerException", "cause": cause})
    return event


@pytest.mark.parametrize("job_first", [True, False], ids=["job-event-first", "pipeline-event-first"])
def test_a_pipeline_failure_joins_its_job_when_the_history_cannot_be_read(
        aws_clients, step_functions, responder, failed_job, slack_receiver, job_first):
    job_event = failed_job()
    job = job_event["detail"]["TrainingJobName"]
    machine, execution = _pipeline_run(step_functions, job)
    runtime = responder()
    FaultInjector("access_denied", "sfn.GetExecutionHistory", times=100).attach(aws_clients.stepfunctions)
    pipeline_event = _execution_event(machine, execution, cause=f"Training job {job} failed. See FailureReason.")
    events = [job_event, pipeline_event] if job_first else [pipeline_event, job_event]

    outcomes = [handle_event(event, runtime) for event in events]

    assert outcomes[0].incident_key == outcomes[1].incident_key == f"training-job:{REGION}:{job}"
    assert outcomes[0].outcome == "reported" and outcomes[1].outcome in ("enriched", "duplicate")
    assert sum("This event added" not in json.dumps(r.body) for r in slack_receiver.requests) == 1


def test_a_pipeline_failure_naming_no_job_waits_for_the_retry_before_reporting_alone(
        aws_clients, step_functions, responder, failed_job, slack_receiver):
    job_event = failed_job()
    machine, execution = _pipeline_run(step_functions, job_event["detail"]["TrainingJobName"])
    runtime = responder(join_attempts=3)
    injector = FaultInjector("access_denied", "sfn.GetExecutionHistory", times=1).attach(aws_clients.stepfunctions)
    pipeline_event = _execution_event(machine, execution, cause=None)

    with pytest.raises(JoinPending, match="attempt 1 of 3"):
        handle_event(pipeline_event, runtime)
    handle_event(job_event, runtime)
    retried = handle_event(pipeline_event, runtime)  # the history answers now

    assert injector.injected == 1
    assert retried.outcome == "enriched" and retried.incident_key.startswith("training-job:")


def test_concurrent_incidents_count_their_own_aws_calls(responder, failed_job):
    runtime = responder()
    events = [failed_job() for _ in range(4)]
    handle_event(failed_job(), runtime)  # reads the Slack secret once, as a warm container has
    alone = handle_event(failed_job(), runtime).api_calls
    results: list = []
    threads = [threading.Thread(target=lambda e=e: results.append(handle_event(e, runtime))) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.api_calls for r in results] == [alone] * 4


def test_cli_triage_exits_1_when_no_aws_evidence_could_be_gathered(failed_job, emulator, tmp_path, capsys):
    from incident_responder.cli import main

    event = failed_job()
    event["region"] = "eu-west-1"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    code = main(["triage", str(path), "--endpoint-url", emulator.url, "--region", REGION, "--log-wait", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "every AWS call failed" in captured.err and "FAILED SageMaker training job" in captured.out


def test_a_jobs_and_its_pipelines_events_handled_at_the_same_moment_alert_once(
        aws_clients, responder, failed_job, slack_receiver):
    # EventBridge invokes the function for both events within seconds: two containers, one incident.
    runtime_a, runtime_b = responder(), responder()
    pairs = []
    for n in range(6):
        job_event = failed_job()
        job = job_event["detail"]["TrainingJobName"]
        execution = f"arn:aws:states:{REGION}:123456789012:execution:SpaceportMLPipeline:run-{n}-{uuid.uuid4().hex[:6]}"
        pipeline = _execution_event(f"arn:aws:states:{REGION}:123456789012:stateMachine:SpaceportMLPipeline",
                                    execution, cause=f"Training job {job} failed. See FailureReason.")
        pairs.append((job, job_event, pipeline))
    outcomes: list = []
    for _, job_event, pipeline in pairs:
        barrier = threading.Barrier(2)

        def run(event, runtime):
            barrier.wait()
            outcomes.append(handle_event(event, runtime))

        threads = [threading.Thread(target=run, args=(job_event, runtime_a)),
                   threading.Thread(target=run, args=(pipeline, runtime_b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    alerts = [json.dumps(r.body) for r in slack_receiver.requests if "This event added" not in json.dumps(r.body)]
    for job, _, _ in pairs:
        assert sum(job in alert for alert in alerts) == 1, job
    assert len(outcomes) == 12
    sns_alerts = [m for m in _drain_inbox(aws_clients, responder.queue_url)
                  if m.get("MessageAttributes", {}).get("kind", {}).get("Value") == "incident"]
    for job, _, _ in pairs:  # one SNS alert each (a follow-up may come too, when the job's event was first)
        assert sum(job in m["Message"] for m in sns_alerts) == 1, job
    for job, _, _ in pairs:
        item = _record(aws_clients, responder.table, f"training-job:{REGION}:{job}")
        assert set(item["deliveries"]["M"]) == {"slack", "sns"}
        assert json.loads(item["incident"]["S"])["subject"]["execution_arn"]  # both events' facts kept
