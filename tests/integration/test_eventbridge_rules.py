"""The template's EventBridge rule patterns, run by an EventBridge emulator (moto, over HTTP).

Each rule of template.yaml is created on its own event bus with the template's Pattern
(parameters: their defaults, and the pipeline ARN the sample events use), targeting an SQS
queue. Every file in events/ is put on the bus, and each queue must hold exactly the events the
table below says. A new file in events/ without an entry fails with a message saying so.
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from tests.support.events import with_field
from tests.template.template_model import (
    EVENTS,
    TEST_PIPELINE_ARN,
    eventbridge_rules,
    resolve,
    transformed,
    values_for_tests,
)

REGION = "us-west-2"
FAILED = "TrainingJobFailed"
COMPLETED = "TrainingJobCompleted"
PIPELINE = "PipelineExecutionFailed"
BUILD = "ImageBuildFailed"
STACK = "StackDeploymentFailed"
GITHUB = "GitHubRunFailed"
NOT_EVENTBRIDGE = "not an EventBridge event"

# Which rules deliver each file in events/ (an empty set: none). Patterns allowed (fnmatch).
EXPECTED_ROUTES: dict[str, set[str] | str] = {
    "sagemaker-training-job-failed-*.json": {FAILED},
    "sagemaker-training-job-completed.json": {COMPLETED},
    "stepfunctions-execution-failed.json": {PIPELINE},
    "stepfunctions-execution-timed-out.json": {PIPELINE},
    "stepfunctions-execution-aborted.json": {PIPELINE},
    # AWS's own samples: a Completed job whose name lacks the prefix, another account's state machine.
    "aws-sample-sagemaker-training-job-state-change.json": set(),
    "aws-sample-stepfunctions-execution-status-change-failed.json": set(),
    # No TrainingJobName: the prefix filter cannot match.
    "malformed-sagemaker-missing-job-name.json": set(),
    # Status outside FAILED/TIMED_OUT/ABORTED.
    "malformed-stepfunctions-unknown-status.json": set(),
    "unrelated-ec2-state-change.json": set(),
    "codebuild-build-failed.json": {BUILD},
    # A person stopped it: not a failure.
    "codebuild-build-stopped.json": set(),
    # Both statuses of one failed deployment are delivered (the incident key makes them one report).
    "cloudformation-stack-status-change-failed.json": {STACK},
    "cloudformation-stack-status-change-rollback-in-progress.json": {STACK},
    "cloudformation-stack-status-change-update-complete.json": set(),
    # No build-id, but the rule matches status and project: the function records it as an intake error.
    "malformed-codebuild-missing-build-id.json": {BUILD},
    # Not EventBridge envelopes (put_events needs source, detail-type and detail): no rule can see them.
    "malformed-not-eventbridge.json": NOT_EVENTBRIDGE,
    "classify-*.json": NOT_EVENTBRIDGE,
    # GitHub's webhook payload reaches an HTTP endpoint, never the event bus...
    "github-workflow-run-*.json": NOT_EVENTBRIDGE,
    # ...which puts the verified failure on the bus for the TriageFunction.
    "github-run-handed-to-triage.json": {GITHUB},
}


def _event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))


def _expected(name: str) -> set[str] | str:
    exact = EXPECTED_ROUTES.get(name)
    if exact is not None:
        return exact
    matches = [v for k, v in EXPECTED_ROUTES.items() if fnmatch.fnmatch(name, k)]
    assert matches, (
        f"events/{name} has no entry in EXPECTED_ROUTES ({__file__}): say which rules "
        f"({FAILED}, {COMPLETED}, {PIPELINE}, {BUILD}, {STACK}, {GITHUB}) must deliver it, or set() for none"
    )
    assert len(matches) == 1, f"events/{name} matches several EXPECTED_ROUTES patterns"
    return matches[0]


def _is_envelope(event: Any) -> bool:
    return isinstance(event, dict) and {"source", "detail-type", "detail"} <= set(event)


def _entry(event: dict[str, Any], bus: str) -> dict[str, Any]:
    entry = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event.get("resources", []),
        "EventBusName": bus,
    }
    if "time" in event:
        entry["Time"] = event["time"]
    return entry


# ---------------------------------------------------------------- emulator


@pytest.fixture(scope="module")
def endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's moto server (tests/support) if there is one, else one for this module."""
    try:
        yield request.getfixturevalue("moto_endpoint")
        return
    except pytest.FixtureLookupError:
        pass
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws(endpoint: str) -> dict[str, Any]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return {name: session.client(name, endpoint_url=endpoint) for name in ("events", "sqs")}


class Router:
    """One bus with the template's rules, each delivering to its own queue."""

    def __init__(self, aws: dict[str, Any], patterns: dict[str, dict[str, Any]]) -> None:
        self.events, self.sqs = aws["events"], aws["sqs"]
        self.bus = f"test-{uuid.uuid4().hex[:12]}"
        self.events.create_event_bus(Name=self.bus)
        self.queues: dict[str, str] = {}
        for rule, pattern in patterns.items():
            url = self.sqs.create_queue(QueueName=f"{self.bus}-{rule}")["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.events.put_rule(Name=rule, EventBusName=self.bus, EventPattern=json.dumps(pattern))
            self.events.put_targets(Rule=rule, EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": arn}])
            self.queues[rule] = url

    def put(self, events: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Put each event (keyed by a label); returns {EventBridge event id: label}."""
        ids: dict[str, str] = {}
        labels = list(events)
        for start in range(0, len(labels), 10):
            batch = labels[start : start + 10]
            result = self.events.put_events(Entries=[_entry(events[label], self.bus) for label in batch])
            assert result["FailedEntryCount"] == 0, result["Entries"]
            for label, entry in zip(batch, result["Entries"]):
                ids[entry["EventId"]] = label
        return ids

    def delivered(self, ids: dict[str, str]) -> dict[str, set[str]]:
        """{label: rules that delivered it}, draining every queue (moto delivers inside put_events)."""
        routes: dict[str, set[str]] = {label: set() for label in ids.values()}
        for rule, url in self.queues.items():
            while True:
                messages = self.sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    body = json.loads(message["Body"])
                    assert body["id"] in ids, f"{rule} delivered an event nobody put: {body}"
                    label = ids[body["id"]]
                    assert rule not in routes[label], f"{rule} delivered {label} twice"
                    routes[label].add(rule)
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return routes


def _patterns(**overrides: Any) -> dict[str, dict[str, Any]]:
    """{event name: EventPattern} as SAM generates it (AWS::Events::Rule), parameters filled in."""
    params = {**values_for_tests(), **overrides}
    cfn = transformed()
    patterns = {}
    for name, rule in eventbridge_rules().items():
        generated = cfn["Resources"][rule["_function"] + name]
        assert generated["Type"] == "AWS::Events::Rule", name
        pattern = resolve(generated["Properties"]["EventPattern"], params)
        assert "Ref" not in json.dumps(pattern), f"{name}: unresolved parameter in {pattern}"
        patterns[name] = pattern
    return patterns


@pytest.fixture(scope="module")
def router(aws: dict[str, Any]) -> Router:
    return Router(aws, _patterns())


def _load_all() -> dict[str, Any]:
    return {path.name: json.loads(path.read_text()) for path in _event_files()}


# ---------------------------------------------------------------- tests


def test_every_event_file_has_an_expected_route() -> None:
    names = [p.name for p in _event_files()]
    assert names, "events/ is empty"
    for name in names:
        _expected(name)


def test_non_envelopes_cannot_be_routed() -> None:
    for name, event in _load_all().items():
        if _expected(name) == NOT_EVENTBRIDGE:
            assert not _is_envelope(event), f"events/{name} is an EventBridge event: give it its routes"
        else:
            assert _is_envelope(event), f"events/{name} is not an EventBridge event: mark it {NOT_EVENTBRIDGE!r}"


def test_each_rule_delivers_exactly_the_expected_events(router: Router) -> None:
    events = {name: e for name, e in _load_all().items() if _expected(name) != NOT_EVENTBRIDGE}
    routes = router.delivered(router.put(events))
    expected = {name: _expected(name) for name in events}
    wrong = {name: {"expected": sorted(expected[name]), "delivered": sorted(routes[name])}
             for name in events if routes[name] != expected[name]}
    assert not wrong, f"routing differs from EXPECTED_ROUTES: {json.dumps(wrong, indent=1)}"
    # The table exercises every rule (a rule that matches nothing would pass vacuously otherwise).
    assert set().union(*routes.values()) == set(router.queues)


def _variants_off_the_filters() -> dict[str, dict[str, Any]]:
    """Each routed event, changed only in the field a rule filters on, so that it must not match."""
    variants: dict[str, dict[str, Any]] = {}
    prefix = values_for_tests()["TrainingJobNamePrefix"]
    for name, event in _load_all().items():
        routes = _expected(name)
        if routes == NOT_EVENTBRIDGE or not routes:
            continue
        detail = event["detail"]
        if FAILED in routes or COMPLETED in routes:
            job = detail["TrainingJobName"]
            for label, new_name in {
                "name-without-prefix": "other-" + job,
                "prefix-in-upper-case": job.replace(prefix, prefix.upper(), 1),
                "prefix-not-at-start": "x" + job,
            }.items():
                variants[f"{name}:{label}"] = with_field(event, "detail.TrainingJobName", new_name)
            for status in ("InProgress", "Stopping", "Stopped"):
                variants[f"{name}:status-{status}"] = with_field(event, "detail.TrainingJobStatus", status)
        if PIPELINE in routes:
            arn = detail["stateMachineArn"]
            assert arn == TEST_PIPELINE_ARN
            for label, other in {
                # e.g. the responder's own incident workflow, or a sibling of the pipeline.
                "responder-state-machine": arn.rsplit(":", 1)[0] + ":threedgs-incident-responder-IncidentWorkflow",
                "name-with-suffix": arn + "-v2",
                "name-truncated": arn[:-1],
                "other-account": arn.replace(":123456789012:", ":210987654321:"),
                "other-region": arn.replace(":us-west-2:", ":us-east-1:"),
            }.items():
                variants[f"{name}:{label}"] = with_field(event, "detail.stateMachineArn", other)
            for status in ("RUNNING", "SUCCEEDED", "PENDING_REDRIVE"):
                variants[f"{name}:status-{status}"] = with_field(event, "detail.status", status)
        if BUILD in routes:
            project = detail["project-name"]
            for label, other in {"project-without-prefix": "other-" + project, "prefix-not-at-start": "x" + project}.items():
                variants[f"{name}:{label}"] = with_field(event, "detail.project-name", other)
            for status in ("IN_PROGRESS", "SUCCEEDED", "STOPPED"):
                variants[f"{name}:status-{status}"] = with_field(event, "detail.build-status", status)
        if STACK in routes:
            stack_id = detail["stack-id"]
            for label, other in {
                "stack-without-prefix": stack_id.replace(":stack/threedgs-", ":stack/other-"),
                "other-account": stack_id.replace(":123456789012:", ":210987654321:"),
                "other-region": stack_id.replace(":us-west-2:", ":us-east-1:"),
            }.items():
                variants[f"{name}:{label}"] = with_field(event, "detail.stack-id", other)
            for status in ("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", "CREATE_COMPLETE",
                           "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "DELETE_COMPLETE"):
                variants[f"{name}:status-{status}"] = with_field(event, "detail.status-details.status", status)
        for label, field, value in (("other-source", "source", "custom.3dgs"), ("other-detail-type", "detail-type", "Other")):
            variants[f"{name}:{label}"] = with_field(event, field, value)
    return variants


def test_events_off_the_filters_are_delivered_nowhere(router: Router) -> None:
    variants = _variants_off_the_filters()
    assert len(variants) > 20
    routes = router.delivered(router.put(variants))
    leaked = {label: sorted(rules) for label, rules in routes.items() if rules}
    assert not leaked, f"delivered although off the rules' filters: {json.dumps(leaked, indent=1)}"


def test_the_prefix_parameter_drives_the_training_job_rules(aws: dict[str, Any]) -> None:
    """With another prefix, the sample jobs (3dgs-...) no longer match, and one with that prefix does."""
    router = Router(aws, _patterns(TrainingJobNamePrefix="splat-"))
    events = {n: e for n, e in _load_all().items() if _expected(n) not in (NOT_EVENTBRIDGE, set())
              and (FAILED in _expected(n) or COMPLETED in _expected(n))}
    renamed = {f"{name}:splat-prefix": with_field(event, "detail.TrainingJobName",
                                                  "splat-" + event["detail"]["TrainingJobName"])
               for name, event in events.items()}
    routes = router.delivered(router.put({**events, **renamed}))
    assert all(not routes[name] for name in events), routes
    assert all(routes[f"{name}:splat-prefix"] == _expected(name) for name in events), routes


def test_a_failed_cdk_bootstrap_stack_is_watched_whatever_the_prefix(router: Router) -> None:
    """CDKToolkit (CDK's bootstrap stack) is the guide's cdk_bootstrap_trust category's own stack."""
    event = _load_all()["cloudformation-stack-status-change-failed.json"]
    stack_id = event["detail"]["stack-id"]
    bootstrap = with_field(event, "detail.stack-id", stack_id.replace("/threedgs-pipeline-staging/", "/CDKToolkit/"))
    impostor = with_field(event, "detail.stack-id", stack_id.replace("/threedgs-pipeline-staging/", "/CDKToolkitCopy/"))
    routes = router.delivered(router.put({"bootstrap": bootstrap, "impostor": impostor}))
    assert routes["bootstrap"] == {STACK} and not routes["impostor"], routes
