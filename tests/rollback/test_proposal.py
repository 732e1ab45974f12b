"""The proposal (pure): proposed only when the diagnosis points at the image and a known-good digest
other than the failing one exists; otherwise the report says why. Rendered in every report."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from incident_responder.models import Category
from incident_responder.report import render_slack, render_text
from incident_responder.rollback.ledger import KnownGoodEntry
from incident_responder.rollback.proposal import ProposalConfig, approval_id, propose
from tests.unit.report.samples import make_diagnosis, make_incident

FAILING = "sha256:" + "3f9a" * 16
GOOD, OLDER = "sha256:" + "aa11" * 16, "sha256:" + "bb22" * 16
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def entry(digest, job, hours, repository="spaceport/3dgs"):
    return KnownGoodEntry(region="us-west-2", registry="123456789012", repository=repository, digest=digest,
                          tag="latest", training_job_name=job, completed_at=T0 + timedelta(hours=hours))


HISTORY = [entry(OLDER, "3dgs-older", 1), entry(GOOD, "3dgs-good", 5), entry(FAILING, "3dgs-was-fine", 9)]

CASES = {
    # name: (category, history, config, expected target digest or None, reason fragment)
    "entry_point proposes the newest other digest": ("entry_point", HISTORY, {}, GOOD, "3dgs-good"),
    "cuda_gpu is an image category": ("cuda_gpu", HISTORY, {}, GOOD, "points at the image"),
    "python_dependencies is an image category": ("python_dependencies", HISTORY, {}, GOOD, "points at the image"),
    "aws_credentials is not": ("aws_credentials", HISTORY, {}, None, "does not point at the image"),
    "categories are configurable": ("aws_credentials", HISTORY, {"categories": ("aws_credentials",)}, GOOD, ""),
    "only the failing digest is known-good": ("entry_point", [HISTORY[2]], {}, None, "other than the failing one"),
    "empty ledger": ("entry_point", [], {}, None, "no known-good digest"),
    "another repository's digests do not count": (
        "entry_point", [entry(GOOD, "3dgs-x", 5, repository="other/repo")], {}, None, "no known-good digest"),
    "disabled mode": ("entry_point", HISTORY, {"mode": "disabled"}, None, "disabled"),
    "a repository pattern cannot be rolled back": ("entry_point", HISTORY, {"repository": "spaceport/*"}, None,
                                                   "is a pattern"),
    "not the pipeline's repository": ("entry_point", HISTORY, {"repository": "spaceport/other"}, None,
                                      "is not the pipeline's"),
}


@pytest.mark.parametrize("name", CASES)
def test_proposal(name):
    category, history, overrides, target, reason = CASES[name]
    incident = make_incident(diagnosis=make_diagnosis(category=Category(category)))
    config = ProposalConfig(**{"mode": "ecr-retag", **overrides})
    advice = propose(incident, history, config)
    assert reason in advice.reason
    if target is None:
        assert advice.proposal is None
    else:
        assert (advice.proposal.from_digest, advice.proposal.to_digest) == (FAILING, target)
        assert advice.proposal.approval_id == approval_id(incident.key, "rollback", target)


def test_unknown_failing_digest_proposes_nothing():
    incident = make_incident()
    image = incident.subject.image.model_copy(update={"digest": None})
    incident = incident.model_copy(update={"subject": incident.subject.model_copy(update={"image": image})})
    advice = propose(incident, HISTORY, ProposalConfig(mode="ecr-retag"))
    assert advice.proposal is None and "digest of the failing image" in advice.reason


def test_reports_show_the_proposal_with_buttons_and_the_reason_when_none():
    incident = make_incident()
    proposed = incident.model_copy(update={"rollback": propose(incident, HISTORY, ProposalConfig(mode="ecr-retag"))})
    text = render_text(proposed)
    assert f"from {FAILING} to {GOOD}" in text and "3dgs-good" in text and "2026-11-01 05:00 UTC" in text
    payload = render_slack(proposed)
    buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"] if "value" in e]
    assert {b["action_id"]: b["value"] for b in buttons} == {
        "rollback_approve": proposed.rollback.proposal.approval_id, "rollback_reject": proposed.rollback.proposal.approval_id}
    refused = incident.model_copy(update={"rollback": propose(incident, [], ProposalConfig(mode="ecr-retag"))})
    assert "No rollback proposed: no known-good digest" in render_text(refused)
    assert "rollback_approve" not in str(render_slack(refused))
