"""incident-responder: the same triage the Lambda runs, from a terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence, TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    args = _parser().parse_args(argv)
    try:
        return args.run(args, stdout)
    except BrokenPipeError:  # e.g. `| head`
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incident-responder",
        description="Diagnose failed 3D Gaussian Splatting training pipelines on AWS.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="triage a failed 3DGS job, build or deploy in an embedded AWS emulator (no AWS account needed)",
        description="Starts an AWS emulator (moto) on loopback, creates a failed 3DGS training job whose "
        "FailureReason and logs show a failure from the troubleshooting guide, runs the same triage as the "
        "Lambda, prints the report, and writes the Slack payload and SNS message it sent to --out.",
    )
    demo.add_argument("--scenario", default=None, help="scenario name (default: train-argument-replaces-cmd)")
    demo.add_argument("--list", action="store_true", help="list the scenarios and exit")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for the payloads (default: %(default)s)")
    demo.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    demo.add_argument("--rollback", action="store_true",
                      help="run the whole rollback loop instead: known-good digest, failure, proposal, approval by a "
                      "signed Slack request, the workflow executed, the next run, undo (one line per step)")
    demo.set_defaults(run=_demo)

    triage = sub.add_parser(
        "triage",
        help="triage one EventBridge event against AWS (default credentials) or an emulator",
        description="Reads an EventBridge event (SageMaker Training Job State Change, Step Functions "
        "Execution Status Change, CodeBuild Build State Change or CloudFormation Stack Status Change), "
        "gathers the evidence with your AWS credentials, classifies the root "
        "cause and prints the report. Sends to SNS/Slack only when you name them.",
    )
    triage.add_argument("event_file", type=Path, help="the event as JSON ('-' for standard input)")
    triage.add_argument("--endpoint-url", help="AWS endpoint (e.g. http://127.0.0.1:5000 for moto)")
    triage.add_argument("--region", help="AWS region (default: the event's region)")
    triage.add_argument("--incident-table", help="DynamoDB table to record the incident in (default: none)")
    triage.add_argument("--sns-topic-arn", help="also publish the report to this SNS topic")
    triage.add_argument("--slack-webhook-secret-arn", help="also post to the Slack webhook in this secret")
    triage.add_argument("--log-wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for a log stream to appear (default: %(default)s)")
    triage.add_argument("--format", choices=("text", "json"), default="text")
    triage.set_defaults(run=_triage)

    classify = sub.add_parser(
        "classify",
        help="classify log files or standard input",
        description="Classifies each input (a file, or '-' for standard input) into one of the guide's "
        "categories. --format json prints one JSON object per input (JSON Lines).",
    )
    classify.add_argument("inputs", nargs="+", help="log files, or '-' for standard input")
    classify.add_argument("--format", choices=("text", "json"), default="text")
    classify.add_argument("--name", action="append", default=[], metavar="KEY=VALUE",
                          help="fill investigation commands, e.g. --name job_name=my-job (repeatable)")
    classify.add_argument("--failure-reason", metavar="TEXT",
                          help="the job's FailureReason, read before each input; only there does our training "
                               "image's structured line ([category/cause] ...) decide outright")
    classify.set_defaults(run=_classify)

    known_good = sub.add_parser("known-good", help="the known-good ledger (digests completed jobs ran)")
    known_good_sub = known_good.add_subparsers(dest="known_good_command", required=True, metavar="SUBCOMMAND")
    kg_list = known_good_sub.add_parser("list", help="list known-good digests, newest first per repository")
    kg_list.add_argument("--repository", help="only this ECR repository")
    _aws_options(kg_list)
    kg_list.set_defaults(run=_known_good_list)

    for name, text in (("approve", "approve the incident's pending rollback (or undo)"),
                       ("reject", "reject the incident's pending rollback (or undo)")):
        decide = sub.add_parser(name, help=text, description=text.capitalize() + ", with your AWS credentials "
                                "(IAM is the authorization: states:SendTaskSuccess and the incident table).")
        decide.add_argument("incident_id", help="the incident key the report shows")
        _aws_options(decide)
        decide.set_defaults(run=_decide, decision=name)

    undo = sub.add_parser("undo", help="propose undoing the incident's rollback (it waits for approve/reject)",
                          description="Starts the rollback workflow to restore the state recorded before the "
                          "incident's rollback. Like the rollback, it waits for a decision: approve it with "
                          "`incident-responder approve INCIDENT_ID`, a Slack button or a signed link.")
    undo.add_argument("incident_id")
    undo.add_argument("--state-machine-arn", default=os.environ.get("ROLLBACK_STATE_MACHINE_ARN"),
                      help="the rollback workflow (default: $ROLLBACK_STATE_MACHINE_ARN)")
    _aws_options(undo)
    undo.set_defaults(run=_undo)

    rules = sub.add_parser("rules", help="list the classification rules and report overlapping ones")
    rules.set_defaults(run=_rules)
    return parser


def _demo(args: argparse.Namespace, stdout: TextIO) -> int:
    from .demo.scenarios import DEFAULT_SCENARIO, ScenarioNotFound, get_scenario, load_scenarios

    if args.rollback:
        from .demo.rollback import DemoFailed, run_rollback_demo

        try:
            return run_rollback_demo(stdout)
        except DemoFailed as exc:
            print(f"incident-responder demo --rollback: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.list:
        for name, scenario in load_scenarios().items():
            marker = " (default)" if name == DEFAULT_SCENARIO else ""
            print(f"{name}{marker}\n    {scenario.summary}\n    expects {scenario.expect.category.value}/"
                  f"{scenario.expect.cause}", file=stdout)
        return EXIT_OK
    try:
        scenario = get_scenario(args.scenario or DEFAULT_SCENARIO)
    except ScenarioNotFound as exc:
        print(f"incident-responder demo: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .demo.run import print_result, run_demo, write_outputs

    result = run_demo(scenario)
    files = write_outputs(result, args.out / scenario.name)
    color = not args.no_color and stdout.isatty() and "NO_COLOR" not in os.environ
    print_result(result, files, stdout, color=color)
    got = (result.outcome.category, result.outcome.cause)
    if got != (scenario.expect.category.value, scenario.expect.cause):
        print(f"incident-responder demo: diagnosed {got[0]}/{got[1]} but the scenario expects "
              f"{scenario.expect.category.value}/{scenario.expect.cause}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _triage(args: argparse.Namespace, stdout: TextIO) -> int:
    from pydantic import ValidationError

    from .delivery import DeliveryIncomplete, JoinPending
    from .report import render_intake_error_text, render_text
    from .respond import handle_event
    from .runtime import ResponderSettings, build_runtime

    try:
        text = sys.stdin.read() if str(args.event_file) == "-" else args.event_file.read_text()
        event = json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        print(f"incident-responder triage: cannot read the event from {args.event_file}: {reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        settings = ResponderSettings(
            region=args.region or (event.get("region") if isinstance(event, dict) else None),
            endpoint_url=args.endpoint_url,
            incident_table=args.incident_table,
            sns_topic_arn=args.sns_topic_arn,
            slack_webhook_secret_arn=args.slack_webhook_secret_arn,
            log_wait_seconds=args.log_wait,
        )
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            option = "--" + str(error["loc"][0]).replace("_seconds", "").replace("_", "-")
            print(f"incident-responder triage: {option}: {error['msg']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        outcome = handle_event(event, build_runtime(settings))
    except (DeliveryIncomplete, JoinPending) as exc:
        print(f"incident-responder triage: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - botocore's configuration errors (profile, region) too
        from .redact import redact

        print(f"incident-responder triage: AWS call failed: {redact(str(exc))}. Check your credentials "
              "(aws sts get-caller-identity) and --region/--endpoint-url.", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "json":
        print(outcome.model_dump_json(indent=2), file=stdout)
    elif outcome.incident is not None:
        print(render_text(outcome.incident), file=stdout)
    elif outcome.intake_error is not None:
        print(render_intake_error_text(outcome.intake_error), file=stdout)
    else:
        print(f"{outcome.outcome}: {outcome.detail}", file=stdout)
    if outcome.outcome == "intake_error":
        return EXIT_BAD_INPUT
    if outcome.incident is not None and outcome.aws_failures and not _gathered_anything(outcome.incident):
        print(f"incident-responder triage: every AWS call failed ({outcome.aws_failures}); the report above rests on "
              "the event alone. Check your credentials (aws sts get-caller-identity) and --region/--endpoint-url.",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _gathered_anything(incident) -> bool:
    evidence = incident.evidence
    return any((evidence.training_job, evidence.logs, evidence.execution,
                evidence.image is not None and evidence.image.digest))


def _classify(args: argparse.Namespace, stdout: TextIO) -> int:
    from .classify import classify
    from .classify.schema import TEMPLATE_NAMES
    from .redact import redact

    names = {}
    for item in args.name:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"incident-responder classify: --name {item!r} must look like KEY=VALUE", file=sys.stderr)
            return EXIT_BAD_INPUT
        if key not in TEMPLATE_NAMES:
            print(f"incident-responder classify: --name {key}: unknown name; use one of "
                  f"{', '.join(sorted(TEMPLATE_NAMES))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        names[key] = redact(value)
    status = EXIT_OK
    for source in args.inputs:
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(errors="replace")
        except OSError as exc:
            print(f"incident-responder classify: cannot read {source}: {exc.strerror}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        reason = redact(args.failure_reason) if args.failure_reason else ""
        document = f"{reason}\n{redact(text)}" if reason else redact(text)
        diagnosis = classify(document, names=names, trusted_lines=len(reason.splitlines()))
        record = diagnosis.as_record("<stdin>" if source == "-" else source)
        if args.format == "json":
            print(json.dumps(record), file=stdout)
        else:
            print(_classification_text(record, diagnosis.commands), file=stdout)
    return status


def _classification_text(record: dict, commands: list[str]) -> str:
    from .report.text import printable

    return printable(_classification_lines(record, commands))


def _classification_lines(record: dict, commands: list[str]) -> str:
    lines = [f"{record['source']}: {record['category']}/{record['cause']} (confidence {record['confidence']:.2f})"]
    lines += [f"  line {e['line']}: {e['text']}" for e in record["evidence"]]
    if record["remediation"]:
        lines.append("  what to do:")
        lines += [f"    {i}. {step}" for i, step in enumerate(record["remediation"], 1)]
    if commands:
        lines.append("  investigate:")
        lines += [f"    $ {command}" for command in commands]
    return "\n".join(lines)


def _aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--incident-table", default=os.environ.get("INCIDENT_TABLE"),
                        help="the responder's DynamoDB table (default: $INCIDENT_TABLE)")
    parser.add_argument("--region", default=None, help="AWS region (default: your configuration's)")
    parser.add_argument("--endpoint-url", help="AWS endpoint (e.g. http://127.0.0.1:5000 for moto)")


def _rollback_service(args: argparse.Namespace, command: str):
    from .clients import make_clients
    from .rollback.service import RollbackService

    if not args.incident_table:
        print(f"incident-responder {command}: --incident-table is required (or set INCIDENT_TABLE); "
              "the stack's output IncidentsTableName names it", file=sys.stderr)
        return None
    clients = make_clients(region=args.region, endpoint_url=args.endpoint_url)
    return RollbackService(clients=clients, table=args.incident_table,
                           state_machine_arn=getattr(args, "state_machine_arn", None))


def _aws_failed(command: str, exc: Exception) -> int:
    from .redact import redact

    print(f"incident-responder {command}: {redact(str(exc))}. Check your credentials "
          "(aws sts get-caller-identity), --region and --incident-table.", file=sys.stderr)
    return EXIT_FAILED


def _known_good_list(args: argparse.Namespace, stdout: TextIO) -> int:
    service = _rollback_service(args, "known-good list")
    if service is None:
        return EXIT_BAD_INPUT
    from .rollback.ledger import entries_of

    # A Scan: the CLI's alone (the functions read one repository's item by its key).
    scan = {"TableName": args.incident_table, "FilterExpression": "kind = :k",
            "ExpressionAttributeValues": {":k": {"S": "known_good_ledger"}}}
    entries = []
    try:
        while True:
            page = service.clients.dynamodb.scan(**scan)
            for item in page.get("Items", []):
                entries += entries_of(item)
            if "LastEvaluatedKey" not in page:
                break
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except Exception as exc:  # noqa: BLE001 - botocore configuration errors too
        return _aws_failed("known-good list", exc)
    if args.repository:
        entries = [e for e in entries if e.repository == args.repository]
    entries.sort(key=lambda e: (e.repository, -e.completed_at.timestamp()))
    if not entries:
        print("no known-good digests recorded" + (f" for {args.repository}" if args.repository else ""), file=stdout)
    for entry in entries:
        print(f"{entry.repository}  {entry.digest}  {entry.completed_at.strftime('%Y-%m-%d %H:%M UTC')}  "
              f"{entry.training_job_name}  tag={entry.tag or '-'}  protected={entry.protect_tag or '-'}", file=stdout)
    return EXIT_OK


def _caller(args: argparse.Namespace) -> str:
    import boto3

    return boto3.client("sts", region_name=args.region, endpoint_url=args.endpoint_url).get_caller_identity()["Arn"]


def _decide(args: argparse.Namespace, stdout: TextIO) -> int:
    from .rollback.decision import Actor

    service = _rollback_service(args, args.decision)
    if service is None:
        return EXIT_BAD_INPUT
    try:
        approval = service.pending_approval(args.incident_id)
        if approval is None:
            print(f"incident-responder {args.decision}: incident {args.incident_id!r} has no rollback proposal "
                  "to decide on (see its report for why none was proposed)", file=sys.stderr)
            return EXIT_BAD_INPUT
        caller = _caller(args)
        result = service.decider.decide(approval, "approve" if args.decision == "approve" else "reject",
                                        Actor(id=caller, name=caller, via="cli"))
    except Exception as exc:  # noqa: BLE001
        return _aws_failed(args.decision, exc)
    print(result.message, file=stdout if result.acted else sys.stderr)
    return EXIT_OK if result.acted else EXIT_FAILED


def _undo(args: argparse.Namespace, stdout: TextIO) -> int:
    from .rollback.workflow import WorkflowError

    if not args.state_machine_arn:
        print("incident-responder undo: --state-machine-arn is required (or set ROLLBACK_STATE_MACHINE_ARN); "
              "the stack's output RollbackStateMachineArn names it", file=sys.stderr)
        return EXIT_BAD_INPUT
    service = _rollback_service(args, "undo")
    if service is None:
        return EXIT_BAD_INPUT
    try:
        undo_id, _execution = service.start_undo(args.incident_id)
    except WorkflowError as exc:
        print(f"incident-responder undo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001
        return _aws_failed("undo", exc)
    print(f"undo {undo_id} proposed for {args.incident_id}; it waits for a decision: "
          f"incident-responder approve '{args.incident_id}'", file=stdout)
    return EXIT_OK


def _rules(args: argparse.Namespace, stdout: TextIO) -> int:
    from .classify import catalog_report

    print(catalog_report(), file=stdout)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
