#!/usr/bin/env python3
"""GitHub deliveries through the webhook endpoint: how long one takes, what it calls, the worst log.

    python bench/github_webhook.py [--deliveries 20]

Against the embedded emulator (AWS), the local Slack receiver and the GitHub API stand-in, all on
loopback, so the figures are the responder's own cost, not GitHub's or AWS's latency. Each delivery is
a distinct failed run (a new incident). Rows:
- handoff: what GitHub waits for, as deployed: verify, claim, put the run on the event bus (202); triage
  then runs on the TriageFunction, which the next rows measure (the endpoint triaging in the request);
- failure: a run whose job failed at configure-aws-credentials (jobs, log archive via the redirect, report);
- startup_failure: a workflow file with a heredoc GitHub cannot parse (contents API, YAML, report);
- baseline: the same failure with no GitHub token (nothing read from GitHub, report only);
- worst log: one failed step whose log is 30 MiB in the archive (about the 32 MiB download cap).
Prints p50/p95/max of the endpoint's handle() in ms, GitHub requests and AWS calls per delivery, and for
the worst log the handle() time and the peak memory Python allocated (tracemalloc).
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import statistics
import sys
import time
import tracemalloc
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from incident_responder.clients import make_clients  # noqa: E402
from incident_responder.demo.emulator import EMULATOR_CREDENTIALS, start_emulator  # noqa: E402
from incident_responder.demo.github import HEAD_SHA, REPOSITORY, workflow_run_delivery  # noqa: E402
from incident_responder.demo.github_standin import GitHubStandIn, StandInJob, StandInStep  # noqa: E402
from incident_responder.demo.provision import create_incident_table, create_topic_with_inbox, create_triage_bus  # noqa: E402
from incident_responder.demo.run import isolated_from_user_aws_config  # noqa: E402
from incident_responder.demo.scenarios import load_scenarios  # noqa: E402
from incident_responder.demo.slack_receiver import SlackReceiver  # noqa: E402
from incident_responder.github.api import GitHubApi  # noqa: E402
from incident_responder.github.handoff import EventBusHandoff  # noqa: E402
from incident_responder.github.endpoint import GitHubWebhookEndpoint  # noqa: E402
from incident_responder.github.webhook import WebhookConfig, signature  # noqa: E402
from incident_responder.runtime import ResponderSettings, build_runtime  # noqa: E402

REGION = "us-west-2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=20)
    args = parser.parse_args()
    scenarios = load_scenarios()
    failure, startup = scenarios["github-aws-credentials-not-loaded"], scenarios["github-workflow-heredoc-unparseable"]
    with (isolated_from_user_aws_config(), start_emulator() as emulator, SlackReceiver() as slack,
          GitHubStandIn(token="bench-" + secrets.token_hex(8)) as github):
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        table = f"bench-{uuid.uuid4().hex[:8]}"
        create_incident_table(clients, table)
        topic_arn, _ = create_topic_with_inbox(clients, table)
        slack_secret = f"{table}-slack"
        clients.secretsmanager.create_secret(Name=slack_secret, SecretString=json.dumps({"webhook_url": slack.url}))
        settings = ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table=table,
                                     sns_topic_arn=topic_arn, slack_webhook_secret_arn=slack_secret, log_wait_seconds=0)
        runtime = build_runtime(settings, clients=clients)
        webhook_secret = secrets.token_hex(20)
        endpoint = GitHubWebhookEndpoint.build(
            config=WebhookConfig(repositories=REPOSITORY, workflows="*", region=REGION),
            secret=lambda: webhook_secret, runtime=runtime, table=table)
        api = GitHubApi(github.token, base_url=github.url)
        github.add_file(REPOSITORY, startup.workflow_path, HEAD_SHA, startup.workflow_file or "")
        jobs = [StandInJob(31_000 + i, j.name, j.conclusion, tuple(StandInStep(s.name, s.conclusion, s.log)
                                                                   for s in j.steps))
                for i, j in enumerate(failure.jobs, start=1)]
        next_run = iter(range(11_000_000_000, 12_000_000_000))

        def deliver(scenario, *, token: bool = True, run_jobs=jobs) -> tuple[float, int, int]:
            run_id = next(next_run)
            github.add_run(REPOSITORY, run_id, jobs=run_jobs)
            clients.github = api if token else None
            body = json.dumps(workflow_run_delivery(scenario, run_id=run_id,
                                                    updated_at=datetime.now(timezone.utc))).encode()
            headers = {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": str(uuid.uuid4()),
                       "X-Hub-Signature-256": signature(webhook_secret, body)}
            before = len(github.api_requests) + len(github.blob_requests)
            started = time.perf_counter()
            reply = endpoint.handle(headers, body)
            elapsed = time.perf_counter() - started
            assert reply.status == 200, reply.body
            return elapsed, len(github.api_requests) + len(github.blob_requests) - before, reply.outcome.api_calls

        deliver(failure)  # warm-up: first-use imports, clients, the rule catalog
        print(f"{'delivery':<16} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'GitHub req':>10} {'AWS calls':>9}")
        bus, _ = create_triage_bus(clients, uuid.uuid4().hex[:8])
        handing = GitHubWebhookEndpoint.build(
            config=WebhookConfig(repositories=REPOSITORY, workflows="*", region=REGION),
            secret=lambda: webhook_secret, runtime=runtime, table=table, handoff=EventBusHandoff(clients.events, bus))
        times, calls = [], []
        for _ in range(args.deliveries):
            body = json.dumps(workflow_run_delivery(failure, run_id=next(next_run),
                                                    updated_at=datetime.now(timezone.utc))).encode()
            headers = {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": str(uuid.uuid4()),
                       "X-Hub-Signature-256": signature(webhook_secret, body)}
            with clients.counter.scope() as made:
                started = time.perf_counter()
                reply = handing.handle(headers, body)
                times.append((time.perf_counter() - started) * 1000)
            assert reply.status == 202, reply.body
            calls.append(len(made))
        times.sort()
        print(f"{'handoff':<16} {len(times):>3} {statistics.median(times):>8.1f} "
              f"{times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]:>8.1f} {times[-1]:>8.1f} {0:>10} "
              f"{statistics.median(calls):>9.0f}")
        for label, scenario, token in (("failure", failure, True), ("startup_failure", startup, True),
                                       ("baseline", failure, False)):
            rows = [deliver(scenario, token=token) for _ in range(args.deliveries)]
            times = sorted(r[0] * 1000 for r in rows)
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(f"{label:<16} {len(rows):>3} {statistics.median(times):>8.1f} {p95:>8.1f} {times[-1]:>8.1f} "
                  f"{statistics.median(r[1] for r in rows):>10.0f} {statistics.median(r[2] for r in rows):>9.0f}")

        line = "2026-11-20T17:45:01.0000000Z " + "compiling gsplat CUDA kernels " + "#" * 70 + "\n"
        big = (line * (30 * 1024 * 1024 // len(line))).encode() + b"Error: Credentials could not be loaded\n"
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:  # stored: 30 MiB on the wire too
            zipped.writestr("build/1_Build.txt", big)
        worst = [StandInJob(1, "build", "failure", (StandInStep("Build", "failure", "x"),))]
        run_id = next(next_run)
        github.add_run(REPOSITORY, run_id, jobs=worst, archive_bytes=archive.getvalue())
        body = json.dumps(workflow_run_delivery(failure, run_id=run_id, updated_at=datetime.now(timezone.utc))).encode()
        clients.github = api
        tracemalloc.start()
        started = time.perf_counter()
        reply = endpoint.handle({"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": str(uuid.uuid4()),
                                 "X-Hub-Signature-256": signature(webhook_secret, body)}, body)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"worst log: a {len(archive.getvalue()) / 2**20:.1f} MiB archive -> {reply.status} "
              f"{reply.body.get('category')}/{reply.body.get('cause')} in {elapsed * 1000:.0f} ms, "
              f"peak Python allocation {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
