"""The demo's GitHub Actions scenarios: a failed workflow run delivered to the webhook endpoint as GitHub
delivers it (signed JSON, X-GitHub-Delivery), with GitHub's API played by the stand-in on loopback, AWS by
the emulator and Slack by the local receiver. Nothing leaves the machine; the secret and the token are
made up for each run."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from ..clients import make_clients
from ..github.api import GitHubApi
from ..github.endpoint import GitHubWebhookEndpoint, WebhookReply
from ..github.handoff import EventBusHandoff
from ..github.webhook import WebhookConfig, signature
from ..respond import handle_event
from ..runtime import ResponderSettings, build_runtime
from .emulator import EMULATOR_CREDENTIALS, start_emulator
from .github_standin import GitHubStandIn, StandInJob, StandInStep
from .provision import create_demo_sinks, create_triage_bus, read_inbox, receive_handed_off
from .scenarios import Scenario
from .slack_receiver import SlackReceiver

REPOSITORY = "example-org/3dgs-pipeline"
HEAD_SHA = "9f2c4e1b7a3d5c6e8f0a1b2c3d4e5f60718293a4"


def workflow_run_delivery(scenario: Scenario, *, run_id: int, updated_at: datetime) -> dict[str, Any]:
    """The `workflow_run` payload GitHub sends when the run completes (its documented fields)."""
    owner, name = REPOSITORY.split("/")
    api, html = f"https://api.github.com/repos/{REPOSITORY}", f"https://github.com/{REPOSITORY}"
    stamp = updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    account = {"login": owner, "id": 98765432, "type": "Organization"}
    repository = {"id": 811234567, "name": name, "full_name": REPOSITORY, "private": True, "owner": account,
                  "html_url": html, "url": api}
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id, "name": scenario.summary.split(":")[0][:60], "head_branch": "main", "head_sha": HEAD_SHA,
            "path": scenario.workflow_path, "display_title": scenario.name, "run_number": 412, "event": "push",
            "status": "completed", "conclusion": scenario.conclusion, "workflow_id": 101234567,
            "url": f"{api}/actions/runs/{run_id}", "html_url": f"{html}/actions/runs/{run_id}",
            "created_at": stamp, "updated_at": stamp, "run_attempt": 1, "run_started_at": stamp,
            "jobs_url": f"{api}/actions/runs/{run_id}/jobs", "logs_url": f"{api}/actions/runs/{run_id}/logs",
            "repository": repository, "head_repository": repository,
        },
        "repository": repository,
        "sender": {"login": "octo-dev", "id": 1234567, "type": "User"},
    }


def run_github_demo(scenario: Scenario) -> tuple[Any, dict[str, Any], list[Any], list[dict[str, Any]], WebhookReply]:
    """Deliver the scenario's failed run to the endpoint; (outcome, payload, Slack payloads, SNS messages, reply)."""
    from .run import REGION, isolated_from_user_aws_config

    run_id = 11_987_654_000 + int(time.time()) % 1000
    with (isolated_from_user_aws_config(), start_emulator() as emulator, SlackReceiver() as slack,
          GitHubStandIn(token="demo-" + secrets.token_hex(16)) as github):
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        sinks = create_demo_sinks(clients, slack.url, uuid.uuid4().hex[:8])
        if scenario.workflow_file is not None:
            github.add_file(REPOSITORY, scenario.workflow_path, HEAD_SHA, scenario.workflow_file)
        github.add_run(REPOSITORY, run_id, jobs=[
            StandInJob(31_000 + i, job.name, job.conclusion,
                       tuple(StandInStep(s.name, s.conclusion, s.log) for s in job.steps))
            for i, job in enumerate(scenario.jobs, start=1)])
        settings = ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table=sinks.table,
                                     sns_topic_arn=sinks.topic_arn, slack_webhook_secret_arn=sinks.slack_secret, log_wait_seconds=0)
        runtime = build_runtime(settings, clients=clients)
        clients.github = GitHubApi(github.token, base_url=github.url)
        webhook_secret = secrets.token_hex(20)
        # As deployed: the endpoint verifies and hands the run to triage on the event bus; triage runs on it.
        bus, triage_queue = create_triage_bus(clients, uuid.uuid4().hex[:8])
        endpoint = GitHubWebhookEndpoint.build(
            config=WebhookConfig(repositories=REPOSITORY, workflows=scenario.workflow_path, region=REGION),
            secret=lambda: webhook_secret, runtime=runtime, table=sinks.table,
            handoff=EventBusHandoff(clients.events, bus))
        payload = workflow_run_delivery(scenario, run_id=run_id, updated_at=datetime.now(timezone.utc))
        body = json.dumps(payload).encode()
        reply = endpoint.handle({"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": str(uuid.uuid4()),
                                 "Content-Type": "application/json",
                                 "X-Hub-Signature-256": signature(webhook_secret, body)}, body)
        handed = receive_handed_off(clients, triage_queue) if reply.status == 202 else []
        if len(handed) != 1:
            raise RuntimeError(f"the webhook endpoint answered {reply.status}: {reply.body.get('reason')}")
        outcome = handle_event(handed[0], runtime)
        return outcome, payload, [r.body for r in slack.requests], read_inbox(clients, sinks.queue_url), reply
