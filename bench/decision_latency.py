"""How long the DecisionFunction takes to answer a Slack button (Slack's budget is 3 s), in one run.

Against the embedded emulator (moto over HTTP on loopback): for each run a rollback is proposed and
its workflow (statemachine/rollback.asl.json, executed by moto) waits on its task token; then a
signed Slack "Reject" request (the handler does the same for Approve; the workflow acts after it answered) goes to the handler, warm, which verifies the signature, reads the
approval, claims it under a condition, resumes the workflow (SendTaskSuccess) and updates the message
through response_url (the local Slack receiver). Timed: the handler call alone. Baseline in the same
run: a refused request (user not on the allow-list), which does the verification and one record.

    python bench/decision_latency.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "functions")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    import pytest  # noqa: F401 - the fixtures' module imports it

    from incident_responder.clients import make_clients
    from incident_responder.demo.emulator import EMULATOR_CREDENTIALS, start_emulator
    from incident_responder.demo.slack_receiver import SlackReceiver
    from tests.rollback import conftest as setup

    class Env(dict):
        def setenv(self, name, value):
            import os

            os.environ[name] = value

    import os

    os.environ.update({"AWS_ACCESS_KEY_ID": EMULATOR_CREDENTIALS["aws_access_key_id"],
                       "AWS_SECRET_ACCESS_KEY": EMULATOR_CREDENTIALS["aws_secret_access_key"],
                       "POWERTOOLS_LOG_LEVEL": "ERROR"})
    decide, refuse = [], []
    with start_emulator() as emulator, SlackReceiver() as slack:
        emulator.enable_state_machine_execution()
        clients = make_clients(region="us-west-2", endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        emulator.reset_step_functions()
        rollback = setup.rollback.__wrapped__(clients, emulator, clients.stepfunctions, Env(), "ecr-retag", slack)
        for run in range(args.runs):
            if run:
                rollback.fresh_state_machine()
            approval = rollback.start()
            started = time.perf_counter()
            rollback.invoke(setup.slack_request("rollback_approve", approval, user="U0INTRUDER", response_url=slack.url))
            refuse.append(time.perf_counter() - started)
            started = time.perf_counter()
            reply = rollback.invoke(setup.slack_request("rollback_reject", approval, response_url=slack.url))
            decide.append(time.perf_counter() - started)
            assert reply["statusCode"] == 200
            rollback.wait_finished(approval)

    def row(name, values):
        values = sorted(values)
        p95 = values[max(0, int(round(0.95 * len(values))) - 1)]
        print(f"{name:<34} median {statistics.median(values) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
              f"max {values[-1] * 1000:7.1f} ms")

    print(f"DecisionFunction handler, warm, {args.runs} runs against moto on loopback (Slack's budget: 3000 ms)")
    row("decision (claim + SendTaskSuccess)", decide)
    row("refusal (not on the allow-list)", refuse)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
