"""Every secret format, planted in a real training log in the emulator, reaches no sink:
not Slack, not SNS, not the CLI's stdout, not the incident record, not the responder's own logs."""

from __future__ import annotations

import json
import uuid

import pytest

from incident_responder.cli import main as cli_main
from incident_responder.demo.provision import (
    create_training_job,
    push_images,
    read_inbox,
    write_training_log,
)
from incident_responder.demo.run import training_job_event
from tests.support.moto_server import REGION
from tests.unit.report.samples import SECRET_SAMPLES, all_secret_substrings


def _plant_leaky_failed_job(aws_clients, emulator) -> dict:
    job = f"3dgs-leaky-{uuid.uuid4().hex[:8]}"
    image = push_images(aws_clients, "spaceport/3dgs", ["latest"])[0]
    create_training_job(aws_clients, job, image_uri=image)
    secret_lines = [line for sample in SECRET_SAMPLES for line in sample.line.splitlines()]
    emulator.fail_training_job(job, "AlgorithmError: " + SECRET_SAMPLES[0].line, region=REGION)
    write_training_log(aws_clients, job, [
        "starting train_gaussian_production.py",
        *secret_lines,
        "PermissionError: [Errno 13] Permission denied: '/opt/ml/model/renders'",
    ])
    return training_job_event(aws_clients.sagemaker.describe_training_job(TrainingJobName=job), REGION)


def _leaks(text: str) -> list[str]:
    return [secret for secret in all_secret_substrings() if secret in text]




def test_no_secret_in_a_training_log_reaches_any_sink(deployed_responder, responder_logs, aws_clients,
                                                       emulator, slack_receiver):
    event = _plant_leaky_failed_job(aws_clients, emulator)

    result = deployed_responder.invoke(event)

    assert result["outcome"] == "reported" and all(n["ok"] for n in result["notifications"])
    assert result["category"] == "file_permissions_paths"
    responder_logs = responder_logs.getvalue()
    slack = b"".join(r.raw for r in slack_receiver.requests).decode()
    sns = json.dumps(read_inbox(aws_clients, deployed_responder.queue_url))
    record = json.dumps(aws_clients.dynamodb.get_item(
        TableName=deployed_responder.table, Key={"id": {"S": "incident#" + result["incident_key"]}})["Item"])
    assert "event handled" in responder_logs and "REDACTED" in slack and "REDACTED" in sns
    for name, text in {"slack": slack, "sns": sns, "incident record": record,
                       "responder logs": responder_logs}.items():
        assert _leaks(text) == [], f"secrets reached {name}"


def test_no_secret_reaches_the_terminal_triage(aws_clients, emulator, tmp_path, capsys):
    event = _plant_leaky_failed_job(aws_clients, emulator)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))

    code = cli_main(["triage", str(event_file), "--endpoint-url", emulator.url, "--log-wait", "0"])

    out = capsys.readouterr().out
    assert code == 0 and "file_permissions_paths" in out
    assert _leaks(out) == []


def test_no_secret_reaches_classify_output(tmp_path, capsys):
    log = tmp_path / "train.log"
    log.write_text("\n".join(sample.line for sample in SECRET_SAMPLES))
    cli_main(["classify", "--format", "json", str(log)])
    assert _leaks(capsys.readouterr().out) == []
