"""Every demo scenario, end to end through the emulator, reaches its expected diagnosis."""

from __future__ import annotations

import io
import os
import json

import pytest

from incident_responder.cli import main
from incident_responder.demo.run import run_demo
from incident_responder.demo.scenarios import DEFAULT_SCENARIO, load_scenarios


@pytest.mark.parametrize("scenario", load_scenarios().values(), ids=lambda s: s.name)
def test_scenario_is_diagnosed_and_reported_through_both_sinks(scenario):
    result = run_demo(scenario, log_wait_seconds=0)
    outcome = result.outcome
    assert (outcome.category, outcome.cause) == (scenario.expect.category.value, scenario.expect.cause)
    assert [n.sink for n in outcome.notifications if n.ok] == ["slack", "sns"]
    assert result.slack_payloads and result.slack_payloads[-1]["blocks"]
    (sns,) = result.sns_messages
    assert sns["MessageAttributes"]["category"]["Value"] == scenario.expect.category.value
    if scenario.log is None and scenario.source in ("sagemaker", "codebuild"):
        # A job or build that wrote no log says so (a stack has no log to miss).
        assert any(m.source == "logs" for m in outcome.incident.evidence.missing)


def test_the_readme_main_job_prints_the_report_and_writes_the_payloads(tmp_path):
    out = io.StringIO()
    code = main(["demo", "--out", str(tmp_path), "--no-color"], stdout=out)
    text = out.getvalue()
    assert code == 0
    assert "entry_point/train_argument_replaces_cmd" in text
    written = tmp_path / DEFAULT_SCENARIO
    slack = json.loads((written / "slack-payload.json").read_text())
    sns = json.loads((written / "sns-message.json").read_text())
    assert any("train" in json.dumps(block) for block in slack["blocks"])
    assert sns["Subject"].startswith("[3DGS]") or "entry_point" in sns["Subject"]
    assert str(written) in text


def test_the_demo_ignores_the_users_aws_profile_and_config(tmp_path, monkeypatch):
    # A profile that does not exist (a common state on an engineer's laptop) and a config file
    # that is not even valid must not matter: the demo talks only to its own emulator.
    config = tmp_path / "config"
    config.write_text("[profile broken\nregion = \n")
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    code = main(["demo", "--out", str(tmp_path / "out"), "--no-color"], stdout=io.StringIO())
    assert code == 0
    assert os.environ["AWS_PROFILE"] == "does-not-exist"  # restored for the rest of the process


def test_a_second_emulator_gives_step_functions_callbacks_back_to_the_first(emulator):
    # moto's state is per process and its Step Functions integrations call back to MOTO_PORT: after
    # the demo's own emulator stops, the tests' emulator must be the one called back again.
    from incident_responder.demo.emulator import start_emulator

    before = os.environ["MOTO_PORT"]
    with start_emulator() as second:
        assert os.environ["MOTO_PORT"] == str(second.port) != before
    assert os.environ["MOTO_PORT"] == before == str(emulator.port)
