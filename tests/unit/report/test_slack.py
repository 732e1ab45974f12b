import json

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block, SectionBlock

from incident_responder.models import EvidenceLine, Missing
from incident_responder.links import console_links
from incident_responder.report import render_intake_error_slack, render_slack
from tests.unit.report.samples import (
    JOB, all_secret_substrings, make_diagnosis, make_event, make_evidence, make_incident, make_intake_error,
)


def _reparsed(payload: dict) -> list[dict]:
    """Parse every block back into slack_sdk's models and serialise again: validates all limits."""
    return [Block.parse(block).to_dict() for block in payload["blocks"]]


def test_limits_are_really_checked_by_the_models() -> None:
    with pytest.raises(SlackObjectFormationError):
        SectionBlock(text="x" * 3001).to_dict()


HUGE = [
    pytest.param({"diagnosis": make_diagnosis(evidence=[EvidenceLine(line=1, text="x" * 50_000)])},
                 "truncated", id="one-huge-evidence-line"),
    pytest.param({"diagnosis": make_diagnosis(evidence=[EvidenceLine(line=n, text=f"Traceback line {n} " * 10)
                                                        for n in range(1, 600)])},
                 "more line(s) not shown", id="many-evidence-lines"),
    pytest.param({"diagnosis": make_diagnosis(commands=[f"aws logs get-log-events --log-stream-name {JOB}/algo-{n}"
                                                        for n in range(400)])},
                 "more line(s) not shown", id="many-commands"),
    pytest.param({"diagnosis": make_diagnosis(remediation=["Rebuild the image " * 30] * 100)},
                 "truncated", id="many-long-remediation-steps"),
    pytest.param({"diagnosis": make_diagnosis(title="t" * 5000)}, "truncated", id="huge-title"),
    pytest.param({"event": make_event(training_job_name="j" * 400, failure_reason="r" * 20_000),
                  "evidence": make_evidence(training_job=None)},
                 "truncated", id="long-name-and-failure-reason"),
    pytest.param({"evidence": make_evidence(missing=[Missing(source=f"s{n}", reason="not found " * 20)
                                                     for n in range(200)])},
                 "truncated", id="many-missing"),
    pytest.param({"links": {f"extra_{n}": f"https://example.com/{n}" for n in range(40)}
                  | {"huge": "https://example.com/" + "p" * 4000}},
                 "links too long for a button", id="too-many-links"),
    pytest.param({"diagnosis": make_diagnosis(evidence=[EvidenceLine(line=1, text="<&>" * 2000)])},
                 "truncated", id="escaping-grows-text"),
]


@pytest.mark.parametrize(("overrides", "marker"), HUGE)
def test_oversized_incidents_still_make_a_valid_payload(overrides, marker) -> None:
    payload = render_slack(make_incident(**overrides))
    blocks = _reparsed(payload)
    assert len(blocks) <= 50
    assert marker in json.dumps(payload)
    assert len(payload["text"]) <= 3000


def test_payload_says_what_failed_verdict_and_confidence(incident) -> None:
    payload = render_slack(incident)
    blocks = _reparsed(payload)
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": f"3DGS failed: {JOB}",
                                                    "emoji": False}}
    summary = blocks[1]["text"]["text"]
    assert f"*SageMaker training job {JOB}* failed" in summary
    assert "*Verdict:* `entry_point/train_argument_replaces_cmd` (confidence *92%*)" in summary
    assert "entry_point/train_argument_replaces_cmd" in payload["text"]


def test_sections_carry_evidence_remediation_commands_and_missing(incident) -> None:
    texts = [block["text"]["text"] for block in _reparsed(render_slack(incident)) if block.get("text")
             and block["type"] == "section"]
    by_title = {text.split("\n", 1)[0]: text for text in texts}
    assert 'L1: exec: "train": executable file not found in $PATH' in by_title["*Evidence*"]
    assert "1. Use an exec-form ENTRYPOINT" in by_title["*Remediation*"]
    assert f"aws sagemaker describe-training-job --training-job-name {JOB}" in by_title["*Investigate*"]
    assert "• logs: only 1 of 2 log streams readable" in by_title["*Missing evidence*"]


def test_console_links_become_url_buttons(incident) -> None:
    actions = next(b for b in _reparsed(render_slack(incident)) if b["type"] == "actions")
    buttons = {element["text"]["text"]: element["url"] for element in actions["elements"]}
    expected = console_links(incident.subject)
    assert buttons == {"Training job": expected["training_job"], "Log stream": expected["log_stream"],
                       "Log group": expected["log_group"], "Execution": expected["execution"],
                       "ECR repository": expected["ecr_repository"]}


def test_mrkdwn_control_characters_are_escaped() -> None:
    incident = make_incident(diagnosis=make_diagnosis(title="ValueError: <lambda> & <!channel>"))
    summary = render_slack(incident)["blocks"][1]["text"]["text"]
    assert "&lt;lambda&gt; &amp; &lt;!channel&gt;" in summary
    assert "<!channel>" not in summary


def test_rendering_redacts(leaky_incident) -> None:
    flat = json.dumps(render_slack(leaky_incident))
    assert [s for s in all_secret_substrings() if s in flat] == []


def test_intake_error_payload(intake_error) -> None:
    payload = render_intake_error_slack(intake_error)
    blocks = _reparsed(payload)
    assert blocks[0]["text"]["text"] == "Responder could not use SageMaker Training Job State Change"
    assert "detail.TrainingJobName: missing" in blocks[1]["text"]["text"]
    assert "did not retry" in blocks[1]["text"]["text"]


def test_intake_error_with_huge_excerpt_is_valid() -> None:
    payload = render_intake_error_slack(make_intake_error(raw_excerpt="{" + '"k": "v", ' * 5000 + "}",
                                                          errors=["e" * 4000]))
    _reparsed(payload)
    assert "truncated" in json.dumps(payload)
