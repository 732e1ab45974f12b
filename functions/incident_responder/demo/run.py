"""`incident-responder demo`: a failed 3DGS training job in an embedded AWS emulator, triaged by
the same code the Lambda runs, reported through the real Slack and SNS sinks to local receivers.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TextIO

from ..clients import make_clients
from ..runtime import ResponderSettings, build_runtime
from ..respond import Outcome, handle_event
from .emulator import EMULATOR_ACCOUNT, EMULATOR_CREDENTIALS, start_emulator
from .provision import (
    create_demo_sinks,
    create_failed_build,
    create_training_job,
    push_images,
    read_inbox,
    write_training_log,
)
from .scenarios import Scenario
from .slack_receiver import SlackReceiver

REGION = "us-west-2"
REPOSITORY = "spaceport/3dgs"
# Secret-shaped values for the secrets-in-logs scenario, built here so the repo holds no scanner-bait.
_DEMO_SECRETS = {
    "__DEMO_KEY_ID__": "DEMO" + "Q" * 12,
    "__DEMO_SECRET_KEY__": "demo" + "S" * 36,
    "__DEMO_WEBHOOK__": "demo" + "W" * 20,
}


@dataclass
class DemoResult:
    scenario: Scenario
    outcome: Outcome
    event: dict[str, Any]
    slack_payloads: list[dict[str, Any]]
    sns_messages: list[dict[str, Any]]
    seconds: float


# The demo talks only to its own emulator: the user's AWS profile and config (a profile that does
# not exist, an SSO session that expired) must not matter.
_AWS_CONFIG_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                         "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


@contextmanager
def isolated_from_user_aws_config() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in _AWS_CONFIG_VARIABLES if name in os.environ}
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    try:
        yield
    finally:
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(name, None)
        os.environ.update(saved)


@dataclass
class Stage:
    """What a scenario's failure looks like once it is in the emulator."""

    scenario: Scenario
    clients: Any
    emulator: Any
    run: str


# Each source puts its failure into the emulator and returns the event AWS would send for it, and
# the log's wait (a scenario without a log waits a little for a stream that never comes).
Stager = Callable[[Stage], dict[str, Any]]


def run_demo(scenario: Scenario, *, log_wait_seconds: float = 2.0) -> DemoResult:
    started = time.perf_counter()
    if scenario.source == "github":  # a webhook delivery, not an EventBridge event (demo/github.py)
        from .github import run_github_demo

        outcome, payload, slack_payloads, sns_messages, _ = run_github_demo(scenario)
        return DemoResult(scenario, outcome, payload, slack_payloads, sns_messages, time.perf_counter() - started)
    with isolated_from_user_aws_config(), start_emulator() as emulator, SlackReceiver() as slack:
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        run = uuid.uuid4().hex[:8]
        sinks = create_demo_sinks(clients, slack.url, run)
        event = STAGERS[scenario.source](Stage(scenario, clients, emulator, run))
        settings = ResponderSettings(
            region=REGION,
            endpoint_url=emulator.url,
            incident_table=sinks.table,
            sns_topic_arn=sinks.topic_arn,
            slack_webhook_secret_arn=sinks.slack_secret,
            log_wait_seconds=log_wait_seconds if scenario.log is None else 0,
        )
        clients.counter.reset()
        outcome = handle_event(event, build_runtime(settings, clients=clients))
        sns_messages = read_inbox(clients, sinks.queue_url)
        return DemoResult(
            scenario=scenario,
            outcome=outcome,
            event=event,
            slack_payloads=[request.body for request in slack.requests],
            sns_messages=sns_messages,
            seconds=time.perf_counter() - started,
        )


def _stage_training_job(stage: Stage) -> dict[str, Any]:
    scenario, clients = stage.scenario, stage.clients
    job_name = f"3dgs-demo-{scenario.name}"[:54] + f"-{stage.run}"
    image_uri = push_images(clients, REPOSITORY, ["v41-known-good", scenario.image_tag])[-1]
    create_training_job(clients, job_name, image_uri=image_uri, hyperparameters=scenario.hyperparameters)
    if scenario.failure_reason:
        stage.emulator.fail_training_job(job_name, scenario.failure_reason, region=REGION)
    if scenario.log is not None:
        write_training_log(clients, job_name, _with_demo_secrets(scenario.log).splitlines())
    return training_job_event(clients.sagemaker.describe_training_job(TrainingJobName=job_name), REGION)


def _stage_build(stage: Stage) -> dict[str, Any]:
    scenario, clients = stage.scenario, stage.clients
    # moto wants a project name that starts with a letter (CodeBuild itself allows a digit).
    project = f"threedgs-{scenario.name}"[:140]
    build = create_failed_build(clients, stage.emulator, project, phase=scenario.phase,
                                contexts=scenario.phase_context, log=_with_demo_secrets(scenario.log or ""),
                                region=REGION)
    return codebuild_event(clients.codebuild.batch_get_builds(ids=[build])["builds"][0], REGION)


def _stage_stack(stage: Stage) -> dict[str, Any]:
    scenario, clients = stage.scenario, stage.clients
    stack = f"threedgs-{scenario.name}-{stage.run}"
    clients.cloudformation.create_stack(StackName=stack, TemplateBody=DEMO_STACK_TEMPLATE)
    stage.emulator.fail_stack_operation(
        stack, [(e.logical_id, e.type, e.status, _with_demo_secrets(e.reason) if e.reason else None)
                for e in scenario.stack_events], operation=scenario.operation, region=REGION)
    described = clients.cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return stack_status_event(described, REGION)


STAGERS: dict[str, Stager] = {
    "sagemaker": _stage_training_job,
    "codebuild": _stage_build,
    "cloudformation": _stage_stack,
}

# What the demo's stack deploys before the failed update (moto creates it for real).
DEMO_STACK_TEMPLATE = json.dumps({"Resources": {"ArtifactQueue": {"Type": "AWS::SQS::Queue"}}})


def write_outputs(result: DemoResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "event": out_dir / "event.json",
        "incident": out_dir / "incident.json",
        "slack": out_dir / "slack-payload.json",
        "sns": out_dir / "sns-message.json",
    }
    files["event"].write_text(json.dumps(result.event, indent=2) + "\n")
    files["incident"].write_text(result.outcome.model_dump_json(indent=2) + "\n")
    files["slack"].write_text(json.dumps(result.slack_payloads[-1] if result.slack_payloads else None, indent=2) + "\n")
    files["sns"].write_text(json.dumps(result.sns_messages[-1] if result.sns_messages else None, indent=2) + "\n")
    return files


def print_result(result: DemoResult, files: dict[str, Path], stream: TextIO, *, color: bool) -> None:
    from ..report import render_text

    outcome = result.outcome
    print(f"Scenario: {result.scenario.name} - {result.scenario.summary}", file=stream)
    print("", file=stream)
    if outcome.incident is not None:
        print(render_text(outcome.incident, color=color), file=stream)
    sent = ", ".join(f"{n.sink}: {'sent' if n.ok else 'FAILED ' + (n.detail or '')}" for n in outcome.notifications)
    print("", file=stream)
    print(f"Notifications: {sent or 'none'}", file=stream)
    print(f"AWS API calls for this incident: {outcome.api_calls}; demo took {result.seconds:.1f}s", file=stream)
    print(f"Written to {files['slack'].parent}/:", file=stream)
    for kind, path in files.items():
        print(f"  {path.name:<20} {'the ' + kind + ' payload' if kind in ('slack', 'sns') else kind}", file=stream)


def training_job_event(job: dict[str, Any], region: str, *, event_id: str | None = None) -> dict[str, Any]:
    """The "SageMaker Training Job State Change" event EventBridge sends for this job."""
    detail = _epoch_ms_strings({k: v for k, v in job.items() if k != "ResponseMetadata"})
    return _envelope("SageMaker Training Job State Change", "aws.sagemaker", job["TrainingJobArn"], detail, region,
                     event_id)


def _envelope(detail_type: str, source: str, resource: str, detail: dict[str, Any], region: str,
              event_id: str | None) -> dict[str, Any]:
    """An EventBridge event from the emulator's account, sent now."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": EMULATOR_ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [resource],
        "detail": detail,
    }


def codebuild_event(build: dict[str, Any], region: str, *, event_id: str | None = None) -> dict[str, Any]:
    """The "CodeBuild Build State Change" event EventBridge sends for this finished build."""
    phases = [{"phase-type": p.get("phaseType"), "phase-status": p.get("phaseStatus"),
               "phase-context": [f"{c.get('statusCode', '')}: {c.get('message', '')}" for c in p.get("contexts", [])]}
              for p in build.get("phases", [])]
    logs = build.get("logs", {})
    return _envelope("CodeBuild Build State Change", "aws.codebuild", build["arn"], {
            "build-status": build["buildStatus"],
            "project-name": build["projectName"],
            "build-id": build["arn"],
            "additional-information": {
                "logs": {"group-name": logs.get("groupName"), "stream-name": logs.get("streamName")},
                "phases": phases,
                "initiator": build.get("initiator"),
                "source-version": build.get("sourceVersion"),
            },
            "current-phase": "COMPLETED",
            "version": "1",
        }, region, event_id)


def stack_status_event(stack: dict[str, Any], region: str, *, event_id: str | None = None,
                       status: str | None = None) -> dict[str, Any]:
    """The "CloudFormation Stack Status Change" event EventBridge sends for this stack's status."""
    return _envelope("CloudFormation Stack Status Change", "aws.cloudformation", stack["StackId"], {
        "stack-id": stack["StackId"],
        "status-details": {"status": status or stack["StackStatus"], "status-reason": stack.get("StackStatusReason", "")},
        "client-request-token": "",
    }, region, event_id)


def _epoch_ms_strings(value: Any) -> Any:
    """SageMaker's events carry timestamps as epoch-millisecond strings."""
    if isinstance(value, datetime):
        return str(int(value.timestamp() * 1000))
    if isinstance(value, dict):
        return {k: _epoch_ms_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epoch_ms_strings(v) for v in value]
    return value


def _with_demo_secrets(text: str) -> str:
    for placeholder, value in _DEMO_SECRETS.items():
        text = text.replace(placeholder, value)
    return text
