"""The generated secret corpus (tests/support/secret_corpus.py, >= 40 formats and encodings) planted
in every place a failure can carry it, through the deployed handler against moto over HTTP and the
local Slack receiver: nothing of any secret leaves. Checked where it could leave: Slack, SNS, the
responder's own logs, every item of the DynamoDB table (incident, idempotency and intake-error
records, keys included), `triage --format json`, `classify --format json` and the ClassifyFunction's
answer."""

from __future__ import annotations

import json
import uuid

import pytest

from incident_responder.cli import main as cli_main
from incident_responder.demo.provision import create_training_job, push_images, read_inbox, write_training_log
from incident_responder.demo.run import training_job_event
from incident_responder.handlers.classify import handler as classify_handler
from tests.support.moto_server import REGION
from tests.support.secret_corpus import leaks, secret_cases

CASES = secret_cases()


def _all_text(cases) -> list[str]:
    return [line for case in cases for line in case.text.splitlines()]




def _leaky_job(aws_clients, emulator) -> dict:
    first = CASES[0].text.splitlines()[0]
    # A secret in the job name: it is also the incident's key.
    access_key = next(s for case in CASES for s in case.secrets if s.startswith("AKIA"))
    job = f"3dgs-{uuid.uuid4().hex[:6]}-{access_key}"
    create_training_job(aws_clients, job, image_uri=push_images(aws_clients, "spaceport/3dgs", ["latest"])[0],
                        hyperparameters={case.id[:40]: case.text.splitlines()[0][:2000] for case in CASES[:20]})
    emulator.fail_training_job(job, "AlgorithmError: " + first, region=REGION)
    write_training_log(aws_clients, job, ["starting train_gaussian_production.py", *_all_text(CASES),
                                          "PermissionError: [Errno 13] Permission denied: '/opt/ml/model'"])
    return training_job_event(aws_clients.sagemaker.describe_training_job(TrainingJobName=job), REGION)


def _scan(aws_clients, table: str) -> str:
    return json.dumps(aws_clients.dynamodb.scan(TableName=table)["Items"])


def test_the_corpus_has_the_formats_the_issue_asks_for():
    assert len(CASES) >= 40


def test_no_secret_of_the_corpus_leaves_through_any_sink_or_store(deployed_responder, responder_logs, aws_clients,
                                                                  emulator, slack_receiver, tmp_path, capsys):
    event = _leaky_job(aws_clients, emulator)
    # The event itself leaks too: hyperparameter values under secret-shaped names.
    event["detail"]["HyperParameters"] = {"db_password": CASES[1].secrets[0], "wandb_api_key": CASES[2].secrets[0]}
    result = deployed_responder.invoke(event)
    assert result["outcome"] == "reported" and result["incident_key"].startswith("training-job:sha256-")

    bad = {"detail-type": "SageMaker Training Job State Change", "source": "aws.sagemaker", "id": str(uuid.uuid4()),
           "detail": {"TrainingJobName": CASES[3].text[:200], "TrainingJobArn": "nope " + CASES[4].text}}
    assert deployed_responder.invoke(bad)["outcome"] == "intake_error"

    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    assert cli_main(["triage", str(path), "--endpoint-url", emulator.url, "--log-wait", "0", "--format", "json"]) == 0
    log = tmp_path / "log.txt"
    log.write_text("\n".join(_all_text(CASES)))
    cli_main(["classify", "--format", "json", str(log)])
    answer = classify_handler({"log": "\n".join(_all_text(CASES)), "names": {"job_name": CASES[5].secrets[0]}})

    delivered = {
        "slack": "\n".join(r.raw.decode() for r in slack_receiver.requests),
        "sns": json.dumps(read_inbox(aws_clients, deployed_responder.queue_url)),
        "dynamodb (every item, keys included)": _scan(aws_clients, deployed_responder.table),
        "responder logs": responder_logs.getvalue(),
        "triage/classify JSON on stdout": capsys.readouterr().out,
        "ClassifyFunction answer": json.dumps(answer),
        "handler answer": json.dumps(result),
    }
    for where, text in delivered.items():
        assert text.strip(), f"{where}: nothing to check"
        assert leaks(text, CASES) == [], f"secrets reached {where}"
    assert "[REDACTED" in delivered["slack"] and "[REDACTED" in delivered["dynamodb (every item, keys included)"]


def test_no_secret_leaves_from_a_build_log_or_a_stack_event(deployed_responder, responder_logs, aws_clients,
                                                           emulator, slack_receiver):
    from incident_responder.demo.provision import create_failed_build
    from incident_responder.demo.run import DEMO_STACK_TEMPLATE, codebuild_event, stack_status_event

    build = create_failed_build(aws_clients, emulator, f"threedgs-leaky-{uuid.uuid4().hex[:6]}", phase="BUILD",
                                contexts=["COMMAND_EXECUTION_ERROR: " + CASES[6].text.splitlines()[0][:500]],
                                log="\n".join(_all_text(CASES)), region=REGION)
    stack = f"threedgs-leaky-{uuid.uuid4().hex[:6]}"
    aws_clients.cloudformation.create_stack(StackName=stack, TemplateBody=DEMO_STACK_TEMPLATE)
    emulator.fail_stack_operation(stack, [("DeployRole", "AWS::IAM::Role", "UPDATE_FAILED",
                                           "Resource handler returned message: " + " ".join(_all_text(CASES[:10])))],
                                  region=REGION)

    results = [
        deployed_responder.invoke(codebuild_event(aws_clients.codebuild.batch_get_builds(ids=[build])["builds"][0],
                                                  REGION)),
        deployed_responder.invoke(stack_status_event(
            aws_clients.cloudformation.describe_stacks(StackName=stack)["Stacks"][0], REGION)),
    ]

    assert [r["outcome"] for r in results] == ["reported", "reported"]
    delivered = {
        "slack": "\n".join(r.raw.decode() for r in slack_receiver.requests),
        "sns": json.dumps(read_inbox(aws_clients, deployed_responder.queue_url)),
        "dynamodb (every item, keys included)": _scan(aws_clients, deployed_responder.table),
        "responder logs": responder_logs.getvalue(),
        "handler answers": json.dumps(results),
    }
    for where, text in delivered.items():
        assert text.strip(), f"{where}: nothing to check"
        assert leaks(text, CASES) == [], f"secrets reached {where}"
