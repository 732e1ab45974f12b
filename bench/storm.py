#!/usr/bin/env python3
"""A storm of failure events with faults, against the embedded emulator: are alerts lost or doubled?

    python bench/storm.py [--failures 100] [--events 500] [--seed 7]

100 distinct failures, each a failed SageMaker training job and its pipeline execution's failure
(two events), each event delivered up to 3 times (EventBridge is at-least-once), 500 deliveries in
all, in shuffled order. Faults: 10 % of Slack posts answer 500, 5 % answer 429 (Retry-After 1 s),
2 % of DynamoDB requests are throttled, and one invocation in 20 dies between recording the incident
and delivering it. An invocation that fails is retried as Lambda's async invoke does (up to 2 more
times, later in the stream); after that it lands in the DLQ (which raises the alarm).

The pipeline executions are not run in moto (moto 5.2 runs one execution per process), so their
history cannot be read: their events carry the execution's error and cause, which name the job, as
a .sync SageMaker task's failure does. That is the join the responder falls back to.

Prints: incidents recorded, first alerts per sink (distinct incidents), alerts lost, alerts
duplicated, follow-ups, DLQ entries, faults injected. Baseline: the same storm against the same
code with delivery's record disabled (no store), i.e. every delivery alerts.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from incident_responder.clients import make_clients  # noqa: E402
from incident_responder.delivery import DeliveryIncomplete, JoinPending  # noqa: E402
from incident_responder.demo.emulator import EMULATOR_CREDENTIALS, start_emulator  # noqa: E402
from incident_responder.demo.provision import (  # noqa: E402
    _sqs,
    create_incident_table,
    create_topic_with_inbox,
    create_training_job,
    push_images,
    write_training_log,
)
from incident_responder.demo.run import isolated_from_user_aws_config, training_job_event  # noqa: E402
from incident_responder.demo.slack_receiver import SlackReceiver  # noqa: E402
from incident_responder.respond import handle_event  # noqa: E402
from incident_responder.runtime import ResponderSettings, build_runtime  # noqa: E402
from incident_responder.store import IncidentStore  # noqa: E402
from tests.support.faults import FaultInjector  # noqa: E402

REGION = "us-west-2"
ACCOUNT = "123456789012"
MAX_ATTEMPTS = 3  # Lambda async invoke: 1 + MaximumRetryAttempts 2
_KEY = re.compile(r"incident `?([a-z-]+:[^`\s|]+)")


class FunctionDied(BaseException):
    """The function killed between recording the incident and delivering it (BaseException: no
    handler in the function catches it, as none would catch a timeout)."""


class DyingStore(IncidentStore):
    def __init__(self, *args: Any, rate: float, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._random = random.Random(seed)
        self.rate = rate
        self.deaths = 0

    def open(self, incident):
        opened = super().open(incident)
        if self._random.random() < self.rate:
            self.deaths += 1
            raise FunctionDied()
        return opened


def _pipeline_event(job: str, n: int) -> dict[str, Any]:
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:SpaceportMLPipeline:run-{n}-{uuid.uuid4().hex[:6]}"
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": ACCOUNT, "time": "2026-11-30T01:32:40Z", "region": REGION,
        "resources": [execution],
        "detail": {"executionArn": execution, "name": execution.rsplit(":", 1)[-1],
                   "stateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:SpaceportMLPipeline",
                   "status": "FAILED", "startDate": 1764378010000, "stopDate": 1764378760000, "input": "{}",
                   "output": None, "error": "SageMaker.AmazonSageMakerException",
                   "cause": f"Training job {job} failed. See FailureReason: AlgorithmError: exit code: 1"},
    }


class _Forgetful(dict):
    """No memory of earlier deliveries between invocations (the baseline)."""

    def setdefault(self, key, default=None):
        return {} if default is None else default


def _drain(clients: Any, queue_url: str) -> list[dict[str, Any]]:
    sqs, messages = _sqs(clients), []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def run_storm(failures: int, deliveries: int, seed: int, *, record: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    with isolated_from_user_aws_config(), start_emulator() as emulator, SlackReceiver() as slack:
        setup = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        run = uuid.uuid4().hex[:6]
        table = f"storm-{run}"
        create_incident_table(setup, table)
        topic_arn, queue_url = create_topic_with_inbox(setup, f"storm-{run}")
        secret = setup.secretsmanager.create_secret(Name=f"storm-slack-{run}", SecretString=slack.url)["ARN"]
        image = push_images(setup, "spaceport/3dgs", ["latest"])[0]

        events: list[dict[str, Any]] = []
        jobs: list[str] = []
        for n in range(failures):
            job = f"3dgs-storm-{run}-{n:03d}"
            jobs.append(job)
            create_training_job(setup, job, image_uri=image)
            emulator.fail_training_job(job, "AlgorithmError: , exit code: 1", region=REGION)
            write_training_log(setup, job, ["Traceback (most recent call last):",
                                            "ModuleNotFoundError: No module named 'gsplat'"])
            events.append(training_job_event(setup.sagemaker.describe_training_job(TrainingJobName=job), REGION))
            events.append(_pipeline_event(job, n))
        copies = [1] * len(events)
        while sum(copies) < deliveries:
            index = rng.randrange(len(events))
            if copies[index] < 3:
                copies[index] += 1
        stream = [(event, 1) for event, count in zip(events, copies) for _ in range(count)]
        rng.shuffle(stream)

        settings = ResponderSettings(region=REGION, endpoint_url=emulator.url,
                                     incident_table=table if record else None, sns_topic_arn=topic_arn,
                                     slack_webhook_secret_arn=secret, log_wait_seconds=0, join_attempts=MAX_ATTEMPTS)
        runtime = build_runtime(settings, clients=clients)
        store = None
        if not record:
            runtime.delivery.unrecorded = _Forgetful()
        if record:
            store = DyingStore(clients.dynamodb, table, rate=1 / 20, seed=seed)
            runtime.delivery.store = store
        throttling = FaultInjector("throttled", "dynamodb.*", rate=0.02, seed=seed).attach(clients.dynamodb)
        slack.fail_randomly({500: 0.10, 429: 0.05}, retry_after=1, seed=seed)

        started = time.perf_counter()
        outcomes: Counter[str] = Counter()
        dlq = 0
        invocations = 0
        queue = list(stream)
        while queue:
            event, attempt = queue.pop(0)
            invocations += 1
            try:
                outcomes[handle_event(event, runtime).outcome] += 1
            except (DeliveryIncomplete, JoinPending, FunctionDied) as failure:
                outcomes[f"failed:{type(failure).__name__}"] += 1
                if isinstance(failure, FunctionDied):
                    runtime.delivery.unrecorded.clear()  # a killed container's memory is gone
                if attempt < MAX_ATTEMPTS:
                    # Lambda retries a minute or two later: other events arrive in between.
                    queue.insert(min(len(queue), rng.randrange(5, 40)), (event, attempt + 1))
                else:
                    dlq += 1
        elapsed = time.perf_counter() - started

        alerts: dict[str, Counter[str]] = {"slack": Counter(), "sns": Counter()}
        follow_ups: Counter[str] = Counter()
        delivered_posts = [r for r, ok in zip(slack.requests, slack.statuses) if ok]
        for request in delivered_posts:
            text = json.dumps(request.body)
            if "This event added" in text:
                follow_ups["slack"] += 1
                continue
            match = _KEY.search(text)
            if match:
                alerts["slack"][match.group(1)] += 1
        for message in _drain(setup, queue_url):
            kind = message.get("MessageAttributes", {}).get("kind", {}).get("Value")
            match = re.search(r"incident ([a-z-]+:\S+) \|", message.get("Message", ""))
            if kind == "incident" and match:
                alerts["sns"][match.group(1)] += 1
            elif kind == "follow_up":
                follow_ups["sns"] += 1
        incidents = 0
        if record:
            scan = setup.dynamodb.scan(TableName=table, FilterExpression="kind = :k",
                                       ExpressionAttributeValues={":k": {"S": "incident"}}, Select="COUNT")
            incidents = scan["Count"]
        expected = {f"training-job:{REGION}:{job}" for job in jobs}
        return {
            "failures": failures, "deliveries": len(stream), "invocations": invocations, "seconds": elapsed,
            "incidents": incidents,
            "first_alerts": {sink: len(set(c) & expected) for sink, c in alerts.items()},
            "lost": {sink: len(expected - set(c)) for sink, c in alerts.items()},
            "duplicated": {sink: sum(n - 1 for key, n in c.items() if n > 1) for sink, c in alerts.items()},
            "follow_ups": dict(follow_ups), "dlq": dlq, "outcomes": dict(outcomes),
            "faults": {"slack_5xx_or_429": sum(1 for ok in slack.statuses if not ok),
                       "dynamodb_throttled": throttling.injected,
                       "function_deaths": store.deaths if store else 0},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failures", type=int, default=100)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    ours = run_storm(args.failures, args.events, args.seed)
    baseline = run_storm(args.failures, args.events, args.seed, record=False)
    rows = [
        ("incidents recorded", ours["incidents"], "-", args.failures),
        ("first alerts, Slack", ours["first_alerts"]["slack"], baseline["first_alerts"]["slack"], args.failures),
        ("first alerts, SNS", ours["first_alerts"]["sns"], baseline["first_alerts"]["sns"], args.failures),
        ("alerts lost (Slack/SNS)", f"{ours['lost']['slack']}/{ours['lost']['sns']}",
         f"{baseline['lost']['slack']}/{baseline['lost']['sns']}", "0/0"),
        ("alerts duplicated (Slack/SNS)", f"{ours['duplicated']['slack']}/{ours['duplicated']['sns']}",
         f"{baseline['duplicated']['slack']}/{baseline['duplicated']['sns']}", "0/0"),
        ("follow-ups (Slack/SNS)", f"{ours['follow_ups'].get('slack', 0)}/{ours['follow_ups'].get('sns', 0)}",
         f"{baseline['follow_ups'].get('slack', 0)}/{baseline['follow_ups'].get('sns', 0)}", ""),
        ("invocations (with retries)", ours["invocations"], baseline["invocations"], ""),
        ("DLQ entries", ours["dlq"], baseline["dlq"], ""),
        ("seconds", f"{ours['seconds']:.1f}", f"{baseline['seconds']:.1f}", ""),
    ]
    print(f"Storm: {args.failures} failures x 2 events, {ours['deliveries']} deliveries, seed {args.seed}; "
          f"faults injected (ours): {ours['faults']}")
    print(f"{'measure':<32} {'ours':>10} {'baseline':>10} {'target':>8}")
    for name, value, base, target in rows:
        print(f"{name:<32} {value!s:>10} {base!s:>10} {target!s:>8}")
    print(f"outcomes (ours): {ours['outcomes']}")
    print("baseline: the same code and storm with no incident store (nothing remembers what was delivered).")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "baseline": baseline}, indent=2))
    met = (ours["incidents"] == args.failures and ours["lost"] == {"slack": 0, "sns": 0}
           and ours["duplicated"] == {"slack": 0, "sns": 0}
           and all(v == args.failures for v in ours["first_alerts"].values()))
    print("targets met" if met else "TARGETS NOT MET")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
