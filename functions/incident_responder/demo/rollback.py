"""`incident-responder demo --rollback`: the whole rollback loop in the embedded emulator, one line per step.

A completed job records its digest; a new push fails; the report proposes the rollback; an operator
approves with a signed Slack request sent to the DecisionFunction's handler; the real workflow
definition (statemachine/rollback.asl.json) executes in moto; the next run gets the known-good
digest; undo, approved the same way, puts every tag back.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, TextIO
from urllib.parse import urlencode

from ..clients import make_clients
from ..respond import handle_event
from ..runtime import ResponderSettings, build_runtime
from ..rollback.workflow import render_definition
from .emulator import EMULATOR_ACCOUNT, EMULATOR_CREDENTIALS, start_emulator
from .provision import create_incident_table, create_topic_with_inbox, create_training_job, push_images, read_inbox
from .run import REGION, isolated_from_user_aws_config, training_job_event
from .scenarios import DEFAULT_SCENARIO, get_scenario
from .slack_receiver import SlackReceiver

REPOSITORY = "spaceport/3dgs"
OPERATOR = "U0DEMOOPS"
POLL_S, POLL_MAX = 0.1, 600


class DemoFailed(RuntimeError):
    pass


def _wait(check: Callable[[], Any], what: str) -> Any:
    for _ in range(POLL_MAX):
        value = check()
        if value:
            return value
        time.sleep(POLL_S)
    raise DemoFailed(f"gave up waiting for {what}")


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _slack_click(secret: str, action_id: str, value: str, response_url: str) -> dict[str, Any]:
    """The HTTP API event Slack's button click becomes, signed with the app's signing secret."""
    payload = {"type": "block_actions", "user": {"id": OPERATOR, "username": "demo-operator"},
               "actions": [{"action_id": action_id, "value": value, "type": "button"}], "response_url": response_url}
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"version": "2.0", "routeKey": "$default", "rawPath": "/slack/actions", "rawQueryString": "",
            "headers": {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": timestamp,
                        "x-slack-signature": signature},
            "requestContext": {"http": {"method": "POST", "path": "/slack/actions", "protocol": "HTTP/1.1",
                                        "sourceIp": "127.0.0.1", "userAgent": "Slackbot"},
                               "accountId": EMULATOR_ACCOUNT, "apiId": "demo", "domainName": "demo", "domainPrefix": "demo",
                               "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
                               "time": "30/Nov/2026:00:00:00 +0000", "timeEpoch": 0},
            "body": body, "isBase64Encoded": False}


class _Context:
    function_name = "incident-responder-DecisionFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{EMULATOR_ACCOUNT}:function:incident-responder-DecisionFunction"
    aws_request_id = "demo"


def run_rollback_demo(out: TextIO) -> int:
    started = time.perf_counter()
    step = 0

    def say(text: str) -> None:
        nonlocal step
        step += 1
        print(f"{step:>2}. {text}", file=out, flush=True)

    with isolated_from_user_aws_config(), start_emulator() as emulator, SlackReceiver() as slack:
        emulator.enable_state_machine_execution()
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        run = uuid.uuid4().hex[:8]
        table, parameter = f"incident-responder-demo-{run}", f"/spaceport/demo-{run}/training-image"
        create_incident_table(clients, table)
        topic_arn, queue_url = create_topic_with_inbox(clients, f"incident-responder-demo-{run}")
        secrets = clients.secretsmanager
        webhook = secrets.create_secret(Name=f"demo-webhook-{run}", SecretString=json.dumps({"webhook_url": slack.url}))["ARN"]
        signing_secret = uuid.uuid4().hex
        slack_signing = secrets.create_secret(Name=f"demo-slack-signing-{run}", SecretString=signing_secret)["ARN"]
        link_key = secrets.create_secret(Name=f"demo-link-key-{run}", SecretString=uuid.uuid4().hex)["ARN"]
        definition = render_definition({
            "IncidentTable": table, "NotificationTopicArn": topic_arn, "RepositoryName": REPOSITORY,
            "ImageTag": "latest", "ImageParameterName": parameter, "RollbackMode": "ecr-retag",
            "ApprovalTimeoutSeconds": "86400"})

        def create_workflow() -> str:
            return clients.stepfunctions.create_state_machine(
                name="incident-responder-rollback", definition=definition,
                roleArn=f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/RollbackStateMachineRole")["stateMachineArn"]

        state_machine = create_workflow()
        say(f"emulator up: ECR {REPOSITORY}, incident table, SNS topic, rollback workflow from "
            "statemachine/rollback.asl.json (mode ecr-retag, executed by moto)")

        def digest_of(tag: str) -> str:
            return clients.ecr.describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": tag}])[
                "imageDetails"][0]["imageDigest"]

        def tags() -> dict[str, list[str]]:
            return {d["imageDigest"]: sorted(d.get("imageTags", []))
                    for d in clients.ecr.describe_images(repositoryName=REPOSITORY)["imageDetails"]}

        settings = ResponderSettings(
            region=REGION, endpoint_url=emulator.url, incident_table=table, sns_topic_arn=topic_arn,
            slack_webhook_secret_arn=webhook, log_wait_seconds=0, rollback_mode="ecr-retag",
            rollback_state_machine_arn=state_machine, pipeline_repository=REPOSITORY,
            decision_url="https://decide.demo.invalid", link_key_secret_arn=link_key)
        runtime = build_runtime(settings, clients=clients)

        # 1. a job completes on v41: the ledger records the digest it ran.
        push_images(clients, REPOSITORY, ["v41"])
        good_manifest = clients.ecr.batch_get_image(repositoryName=REPOSITORY, imageIds=[{"imageTag": "v41"}])["images"][0]
        clients.ecr.put_image(repositoryName=REPOSITORY, imageManifest=good_manifest["imageManifest"], imageTag="latest")
        good = digest_of("latest")
        job_ok = f"3dgs-demo-good-{run}"
        image_uri = f"{EMULATOR_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}:latest"
        create_training_job(clients, job_ok, image_uri=image_uri)
        outcome = handle_event(training_job_event(clients.sagemaker.describe_training_job(TrainingJobName=job_ok), REGION), runtime)
        if outcome.outcome != "known_good_recorded":
            raise DemoFailed(f"the completed job was not recorded: {outcome.detail}")
        say(f"{job_ok} completed on :latest -> ledger records {good[:19]}… ({outcome.detail.split('(')[-1].rstrip(')')})")

        # 2. a new push of :latest fails.
        scenario = get_scenario(DEFAULT_SCENARIO)
        push_images(clients, REPOSITORY, ["v42"])
        bad_manifest = clients.ecr.batch_get_image(repositoryName=REPOSITORY, imageIds=[{"imageTag": "v42"}])["images"][0]
        clients.ecr.put_image(repositoryName=REPOSITORY, imageManifest=bad_manifest["imageManifest"], imageTag="latest")
        bad = digest_of("latest")
        before = tags()
        job_bad = f"3dgs-demo-failed-{run}"
        create_training_job(clients, job_bad, image_uri=image_uri, hyperparameters=scenario.hyperparameters)
        emulator.fail_training_job(job_bad, scenario.failure_reason or "AlgorithmError", region=REGION)
        say(f"v42 pushed as :latest ({bad[:19]}…); {job_bad} failed")

        # 3. triage: the report proposes the rollback, and the workflow waits for a decision.
        outcome = handle_event(training_job_event(clients.sagemaker.describe_training_job(TrainingJobName=job_bad), REGION), runtime)
        incident = outcome.incident
        proposal = incident.rollback.proposal if incident and incident.rollback else None
        if proposal is None:
            raise DemoFailed(f"no rollback proposed: {incident.rollback.reason if incident and incident.rollback else outcome}")
        say(f"report ({outcome.category}/{outcome.cause}) sent to Slack and SNS proposes: {proposal.from_digest[:19]}… -> "
            f"{proposal.to_digest[:19]}… (last good: {proposal.to_training_job}); approval id {proposal.approval_id}")
        service = runtime.rollback
        _wait(lambda: (service.approvals.get(proposal.approval_id) or {}).get("task_token"), "the workflow to wait")
        say("workflow recorded the proposal and waits on a task token kept in the incident table (not in any message)")

        # 4. an operator approves with a signed Slack request sent to the DecisionFunction handler.
        env = {"AWS_ENDPOINT_URL": emulator.url, "AWS_REGION": REGION, "INCIDENT_TABLE": table,
               "ROLLBACK_MODE": "ecr-retag", "ROLLBACK_STATE_MACHINE_ARN": state_machine,
               "LINK_KEY_SECRET_ARN": link_key, "SLACK_SIGNING_SECRET_ARN": slack_signing,
               "ALLOWED_SLACK_USERS": OPERATOR, "AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
               "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"],
               "POWERTOOLS_SERVICE_NAME": "incident-responder", "POWERTOOLS_LOG_LEVEL": "ERROR"}
        with _environment(env):
            import incident_responder.handlers.decide as decide_module

            decide = importlib.reload(decide_module).handler
            reply = decide(_slack_click(signing_secret, "rollback_approve", proposal.approval_id, slack.url), _Context())
            say(f"operator {OPERATOR} clicked Approve: signed Slack request -> DecisionFunction answered "
                f"{reply['statusCode']}; Slack message now says: {slack.requests[-1].body.get('text')}")
            item = _wait(lambda: (lambda i: i if i and i.get("finished_at") else None)(
                service.approvals.get(proposal.approval_id)), "the rollback to finish")
            result = json.loads(item["outcome"])
            say(f"workflow re-checked (target exists, :latest still {bad[:19]}…), moved :latest: status {item['status']}; "
                f"recorded before {result.get('before', '')[:19]}… after {result.get('after', '')[:19]}…")
            # The workflow publishes right after its last record: read until the result is there.
            seen: list[dict[str, Any]] = []
            result_report = _wait(lambda: seen.extend(read_inbox(clients, queue_url)) or next(
                (r for r in seen if r.get("Subject", "").startswith("3DGS rollback")), None), "the SNS result")
            say(f"SNS result: {result_report['Subject']}")

            # 5. the next pipeline run gets the known-good digest.
            job_next = f"3dgs-demo-next-{run}"
            create_training_job(clients, job_next, image_uri=image_uri)
            ran = digest_of("latest")
            say(f"next pipeline run {job_next} uses :latest = {ran[:19]}… ({'the known-good digest' if ran == good else 'NOT the known-good digest'})")

            # 6. undo: proposed by the result message's Undo button, approved the same way.
            emulator.reset_step_functions()  # moto 5.2: one execution per process between resets
            create_workflow()
            decide(_slack_click(signing_secret, "rollback_undo", proposal.approval_id, slack.url), _Context())
            undo_id = _wait(lambda: (lambda a: a if a and a != proposal.approval_id else None)(
                service.pending_approval(incident.key)), "the undo proposal")
            _wait(lambda: (service.approvals.get(undo_id) or {}).get("task_token"), "the undo to wait")
            say(f"operator clicked Undo: undo {undo_id} proposed, waiting for its own approval")
            decide(_slack_click(signing_secret, "rollback_approve", undo_id, slack.url), _Context())
            item = _wait(lambda: (lambda i: i if i and i.get("finished_at") else None)(service.approvals.get(undo_id)),
                         "the undo to finish")
        after = tags()
        same = after == before
        say(f"undo {item['status']}: :latest = {digest_of('latest')[:19]}…; tags and digests exactly as before the "
            f"rollback: {'yes' if same else 'NO'}")
        say(f"done in {time.perf_counter() - started:.1f}s")
        if not (same and ran == good):
            raise DemoFailed("the loop did not end as expected")
    return 0
