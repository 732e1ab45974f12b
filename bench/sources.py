"""Triage of build and deploy failures, worst cases, against the embedded emulator (moto over HTTP).

For each source it triages fresh failures end to end (parse, gather, redact, classify, record, Slack)
and prints p50 / p95 / max latency and AWS calls per incident:

- codebuild: a failed build whose log is LOG_TAIL_BYTES' maximum (1 MiB) of progress, then the cause;
- cloudformation: a failed deployment of N resources, where one fails and the other N-1 are cancelled
  (the cascade), so the analyzer must find the one cause among N failures.

Baseline, in the same run, for the stack: what a person sees first in the console's Events tab (the
newest failed event), classified. It says whether that names the cause.

    python bench/sources.py [--runs 10] [--resources 500] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from incident_responder.classify import classify  # noqa: E402
from incident_responder.clients import make_clients  # noqa: E402
from incident_responder.demo.emulator import EMULATOR_CREDENTIALS, start_emulator  # noqa: E402
from incident_responder.demo.provision import create_failed_build, create_incident_table  # noqa: E402
from incident_responder.demo.run import DEMO_STACK_TEMPLATE, codebuild_event, stack_status_event  # noqa: E402
from incident_responder.demo.slack_receiver import SlackReceiver  # noqa: E402
from incident_responder.respond import handle_event  # noqa: E402
from incident_responder.runtime import ResponderSettings, build_runtime  # noqa: E402

REGION = "us-west-2"
CAUSE = ('Resource handler returned message: "Invalid principal in policy: "AWS":"arn:aws:iam::210987654321:role/'
         'cdk-hnb659fds-deploy-role-210987654321-us-west-2"" (RequestToken: 5f0c1a2b, HandlerErrorCode: InvalidRequest)')


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[max(0, round(0.95 * len(ordered)) - 1)],
            "max": ordered[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--resources", type=int, default=500, help="resources in the failed deployment")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict[str, Any] = {}
    with start_emulator() as emulator, SlackReceiver() as slack:
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        table = f"bench-{uuid.uuid4().hex[:8]}"
        create_incident_table(clients, table)
        secret = clients.secretsmanager.create_secret(Name=f"slack-{uuid.uuid4().hex[:8]}",
                                                      SecretString=slack.url)["ARN"]
        runtime = build_runtime(ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table=table,
                                                  slack_webhook_secret_arn=secret, log_wait_seconds=0,
                                                  log_tail_bytes=1_048_576), clients=clients)

        progress = [f"#14 {i:.1f} Collecting torch==2.13.0 (from -r requirements.txt (line {i % 40}))"
                    for i in range(16_000)]
        log = "\n".join([*progress, "ERROR: No matching distribution found for gsplat==9.9.9"])
        times, calls, answers = [], [], []
        for _ in range(args.runs):
            build = create_failed_build(clients, emulator, f"bench-image-{uuid.uuid4().hex[:6]}", phase="BUILD",
                                        contexts=["COMMAND_EXECUTION_ERROR: Error while executing command: docker "
                                                  "build . Reason: exit status 1"], log=log, region=REGION)
            event = codebuild_event(clients.codebuild.batch_get_builds(ids=[build])["builds"][0], REGION)
            started = time.perf_counter()
            outcome = handle_event(event, runtime)
            times.append((time.perf_counter() - started) * 1000)
            calls.append(outcome.api_calls)
            answers.append(f"{outcome.category}/{outcome.cause}")
        results["codebuild"] = {"log_bytes": len(log.encode()), "ms": _stats(times), "api_calls": max(calls),
                                "answers": sorted(set(answers))}

        times, calls, answers, baseline = [], [], [], []
        for _ in range(args.runs):
            stack = f"threedgs-bench-{uuid.uuid4().hex[:8]}"
            clients.cloudformation.create_stack(StackName=stack, TemplateBody=DEMO_STACK_TEMPLATE)
            cascade = [(f"Resource{i}", "AWS::S3::BucketPolicy", "UPDATE_FAILED", "Resource update cancelled")
                       for i in range(args.resources - 1)]
            emulator.fail_stack_operation(stack, [("SageMakerExecutionRole", "AWS::IAM::Role", "UPDATE_FAILED", CAUSE),
                                                  *cascade], region=REGION)
            described = clients.cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
            started = time.perf_counter()
            outcome = handle_event(stack_status_event(described, REGION), runtime)
            times.append((time.perf_counter() - started) * 1000)
            calls.append(outcome.api_calls)
            answers.append(f"{outcome.category}/{outcome.cause}")
            events = clients.cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
            newest_failed = next(e for e in events if e["ResourceStatus"].endswith("_FAILED")
                                 and e["ResourceType"] != "AWS::CloudFormation::Stack")
            guess = classify(f"{newest_failed['LogicalResourceId']}: {newest_failed['ResourceStatusReason']}")
            baseline.append(f"{guess.category.value}/{guess.cause}")
        results["cloudformation"] = {"resources": args.resources, "ms": _stats(times), "api_calls": max(calls),
                                     "answers": sorted(set(answers)),
                                     "baseline_newest_failed_event_answers": sorted(set(baseline))}

    for source, figures in results.items():
        ms = figures["ms"]
        print(f"{source:<15} p50 {ms['p50']:7.1f} ms  p95 {ms['p95']:7.1f} ms  max {ms['max']:7.1f} ms  "
              f"AWS calls {figures['api_calls']}  answers {', '.join(figures['answers'])}")
    print(f"{'':<15} baseline (the newest failed event, as the console shows it first): "
          f"{', '.join(results['cloudformation']['baseline_newest_failed_event_answers'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
