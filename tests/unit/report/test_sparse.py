"""Incidents with almost nothing known still render in every format."""

import pytest

from incident_responder.models import Category, Diagnosis, Evidence, Missing, Subject
from incident_responder.report import render_slack, render_sns, render_text
from tests.unit.report.samples import make_event, make_incident

EXECUTION_ARN = "arn:aws:states:eu-west-1:123456789012:execution:Pipeline:run-7"

SPARSE = [
    pytest.param(dict(), id="sagemaker-nothing-gathered"),
    pytest.param(dict(source="stepfunctions", status="ABORTED", training_job_name=None, training_job_arn=None,
                      image_uri=None, failure_reason=None, account=None, secondary_status=None,
                      execution_arn=EXECUTION_ARN, region="eu-west-1"), id="aborted-execution-nothing-gathered"),
]


@pytest.mark.parametrize("event_overrides", SPARSE)
def test_unknown_verdict_with_no_evidence_renders_everywhere(event_overrides) -> None:
    incident = make_incident(
        event=make_event(**event_overrides),
        evidence=Evidence(subject=Subject(region="eu-west-1"),
                          missing=[Missing(source="logs", reason="log stream not found")]),
        diagnosis=Diagnosis(category=Category.unknown, cause="no_rule_matched", confidence=0.0,
                            title="No rule matched the evidence"),
    )
    text = render_text(incident)
    headline = {"Failed": "FAILED SageMaker training job", "ABORTED": "ABORTED Step Functions execution run-7"}
    assert text.startswith(headline[incident.event.status])
    assert "-> unknown/no_rule_matched (confidence 0%)" in text.splitlines()[0]
    assert "(no line decided this diagnosis)" in text and "  - logs: log stream not found" in text
    blocks = render_slack(incident)["blocks"]
    assert blocks[0]["type"] == "header" and blocks[-1]["type"] == "context"
    assert render_sns(incident).subject.startswith("[3DGS] unknown/no_rule_matched: ")
