"""Every decision path of the rollback, with statemachine/rollback.asl.json executed by moto over HTTP
and decisions sent to the DecisionFunction handler (Slack, signed links) or through the CLI's core."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlparse

import pytest

from incident_responder.rollback import signing
from incident_responder.rollback.approvals import outcome_of
from incident_responder.rollback.decision import Actor
from tests.rollback.conftest import ALLOWED_USER, LINK_KEY, http_event, slack_request, wait_until

pytestmark = pytest.mark.slow


def _link_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def _post_link(rollback, params):
    from urllib.parse import urlencode

    return rollback.invoke(http_event("POST", "/decide", body=urlencode(params)))


def test_approval_by_slack_moves_the_tag_records_before_after_and_reports(rollback, slack_receiver):
    before = rollback.images()
    approval = rollback.start()
    reply = rollback.invoke(slack_request("rollback_approve", approval, response_url=slack_receiver.url))
    assert reply["statusCode"] == 200
    item = rollback.wait_finished(approval)
    assert rollback.execution_status() == "SUCCEEDED", item.get("outcome")
    outcome = outcome_of(item)
    assert (item["status"], outcome["before"], outcome["after"]) == ("done", rollback.bad, rollback.good)
    assert (item["decided_by"], item["decided_via"]) == (f"name-{ALLOWED_USER.lower()}", "slack")
    images = rollback.images()
    assert "latest" in images[rollback.good] and images[rollback.bad] == [f"rollback-hold-{approval}"]
    assert set(images) == set(before)  # nothing deleted, nothing new
    [report] = rollback.reports()
    assert report["MessageAttributes"]["status"]["Value"] == "done" and approval in report["Message"]
    # The Slack message now says who decided, and offers the undo.
    update = slack_receiver.requests[-1].body
    assert update["replace_original"] is True and "approved by name-u0allowed" in update["text"]
    assert any(e.get("action_id") == "rollback_undo" for b in update["blocks"] for e in b.get("elements", []))


def test_rejection_changes_nothing_and_reports(rollback):
    before = rollback.images()
    approval = rollback.start()
    rollback.invoke(slack_request("rollback_reject", approval))
    item = rollback.wait_finished(approval)
    assert item["status"] == "rejected" and "rejected by name-u0allowed via slack" in outcome_of(item)["detail"]
    assert rollback.images() == before
    assert rollback.reports()[0]["MessageAttributes"]["status"]["Value"] == "rejected"


def test_no_decision_within_the_timeout_expires_and_changes_nothing(rollback):
    rollback.timeout_seconds = 1
    rollback.fresh_state_machine()
    before = rollback.images()
    approval = rollback.start()
    item = rollback.wait_finished(approval)
    assert item["status"] == "expired" and "expired, nothing changed" in outcome_of(item)["detail"]
    assert rollback.images() == before
    # A decision after the timeout never acts, and the refusal is recorded on the incident.
    result = rollback.service.decider.decide(approval, "approve", Actor("arn:aws:iam::1:user/op", "op", "cli"))
    assert not result.acted and "expired" in result.message
    assert any("expired" in r for r in rollback.refusals())


@pytest.mark.parametrize("request_kind, reason", [
    ("forged", "Slack signature invalid"),
    ("stale", "stale Slack timestamp"),
    ("not_allowed", "is not on the allow-list"),
])
def test_refused_slack_requests_never_act_and_are_recorded(rollback, request_kind, reason):
    before = rollback.images()
    approval = rollback.start()
    request = {
        "forged": lambda: slack_request("rollback_approve", approval, secret="not-the-signing-secret"),
        "stale": lambda: slack_request("rollback_approve", approval, timestamp=int(time.time()) - 600),
        "not_allowed": lambda: slack_request("rollback_approve", approval, user="U0INTRUDER"),
    }[request_kind]()
    # The allow-listed group has other members only.
    rollback.slack.reply_next(200, json.dumps({"ok": True, "users": ["U0SOMEONE"]}), headers={"Content-Type": "application/json"})
    rollback.invoke(request)
    assert any(reason in r for r in rollback.refusals()), rollback.refusals()
    item = rollback.service.approvals.get(approval)
    assert item["status"] == "pending" and rollback.images() == before
    # Still waiting: a genuine rejection ends it, nothing having changed.
    rollback.invoke(slack_request("rollback_reject", approval))
    assert rollback.wait_finished(approval)["status"] == "rejected" and rollback.images() == before


def test_a_replayed_request_and_a_double_click_never_act_twice(rollback):
    approval = rollback.start()
    request = slack_request("rollback_reject", approval)
    rollback.invoke(request)
    rollback.invoke(request)  # the same signed request again (a replay inside the 5 minutes)
    rollback.invoke(slack_request("rollback_approve", approval, user="U0OTHER"))  # a second click
    item = rollback.wait_finished(approval)
    assert item["status"] == "rejected"
    refusals = rollback.refusals()
    assert len(refusals) == 2 and all("already decided (rejected by name-u0allowed via slack)" in r for r in refusals)


def test_signed_link_get_only_shows_a_page_and_post_decides(rollback):
    approval = rollback.start()
    params = _link_params(rollback.incident.rollback.proposal.approve_url)
    page = rollback.invoke(http_event("GET", "/decide", query=params))
    assert page["statusCode"] == 200 and '<form method="post">' in page["body"]
    assert rollback.service.approvals.get(approval)["status"] == "pending"  # a GET never acts
    assert _post_link(rollback, params)["statusCode"] == 200
    item = rollback.wait_finished(approval)
    assert item["status"] == "done" and item["decided_via"] == "link"


@pytest.mark.parametrize("tamper, reason", [
    (lambda p: {**p, "expires": str(int(time.time()) - 60), "sig": signing.sign(
        LINK_KEY.encode(), p["approval"], p["decision"], int(time.time()) - 60)}, "link expired"),
    (lambda p: {**p, "decision": "approve", "sig": "0" * 64}, "link signature invalid"),
    (lambda p: {**p, "expires": str(int(p["expires"]) + 86_400)}, "link signature invalid"),
], ids=["expired", "forged-signature", "expiry-extended"])
def test_expired_or_forged_links_never_act_and_are_recorded(rollback, tamper, reason):
    before = rollback.images()
    approval = rollback.start()
    params = tamper(_link_params(rollback.incident.rollback.proposal.approve_url))
    assert rollback.invoke(http_event("GET", "/decide", query=params))["statusCode"] == 403
    assert _post_link(rollback, params)["statusCode"] == 403
    assert [r for r in rollback.refusals() if reason in r], rollback.refusals()
    assert rollback.service.approvals.get(approval)["status"] == "pending" and rollback.images() == before
    rollback.invoke(slack_request("rollback_reject", approval))
    rollback.wait_finished(approval)


def test_target_deleted_between_proposal_and_approval_changes_nothing(rollback):
    approval = rollback.start()
    rollback.clients.ecr.batch_delete_image(repositoryName=rollback.repository, imageIds=[{"imageDigest": rollback.good}])
    before = rollback.images()
    rollback.invoke(slack_request("rollback_approve", approval))
    item = rollback.wait_finished(approval)
    assert item["status"] == "target_missing" and rollback.images() == before
    assert rollback.reports()[0]["MessageAttributes"]["status"]["Value"] == "target_missing"


def test_pipeline_moved_on_since_the_proposal_changes_nothing(rollback):
    from incident_responder.demo.provision import push_images

    approval = rollback.start()
    push_images(rollback.clients, rollback.repository, ["hotfix"])
    manifest = rollback.clients.ecr.batch_get_image(repositoryName=rollback.repository,
                                                    imageIds=[{"imageTag": "hotfix"}])["images"][0]["imageManifest"]
    rollback.clients.ecr.put_image(repositoryName=rollback.repository, imageManifest=manifest, imageTag="latest")
    before = rollback.images()
    rollback.invoke(slack_request("rollback_approve", approval))
    assert rollback.wait_finished(approval)["status"] == "pipeline_changed" and rollback.images() == before


@pytest.mark.parametrize("mode", ["ecr-retag", "parameter"], indirect=True)
def test_rollback_then_undo_leaves_tags_digests_and_parameter_exactly_as_before(rollback, mode):
    before_images, before_parameter = rollback.images(), rollback.parameter_value()
    approval = rollback.start()
    rollback.invoke(slack_request("rollback_approve", approval))
    assert rollback.wait_finished(approval)["status"] == "done"
    if mode == "ecr-retag":
        assert "latest" in rollback.images()[rollback.good]
    else:
        assert rollback.parameter_value().endswith("@" + rollback.good)
        assert rollback.images() == before_images  # parameter mode never touches tags
    rollback.fresh_state_machine()
    # Undo through the same workflow and approval rules: the Slack undo button proposes it...
    rollback.invoke(slack_request("rollback_undo", approval))
    undo_id = wait_until(lambda: (lambda a: a if a != approval else None)(
        rollback.service.pending_approval(rollback.incident.key)), "the undo's proposal")
    rollback.wait_pending(undo_id)
    # ... and it acts only once approved.
    assert rollback.images() != before_images or mode == "parameter"
    rollback.invoke(slack_request("rollback_approve", undo_id))
    item = rollback.wait_finished(undo_id)
    assert item["status"] == "done" and item["action"] == "undo"
    assert rollback.images() == before_images and rollback.parameter_value() == before_parameter


def test_cli_approve_and_undo_with_the_operators_credentials(rollback, capsys):
    """IAM is the authorization: the caller's ARN is recorded as the decider."""
    from incident_responder.cli import main

    before = rollback.images()
    approval = rollback.start()
    common = ["--incident-table", rollback.table, "--region", "us-west-2", "--endpoint-url", rollback.emulator.url]
    assert main(["approve", rollback.incident.key, *common]) == 0
    item = rollback.wait_finished(approval)
    assert item["status"] == "done" and item["decided_via"] == "cli" and item["decided_by"].startswith("arn:aws:")
    assert main(["approve", rollback.incident.key, *common]) == 1  # a second approval is refused
    assert "already decided" in capsys.readouterr().err
    rollback.fresh_state_machine()
    assert main(["undo", rollback.incident.key, "--state-machine-arn", rollback.state_machine_arn, *common]) == 0
    undo_id = wait_until(lambda: (lambda a: a if a != approval else None)(
        rollback.service.pending_approval(rollback.incident.key)), "the undo's proposal")
    rollback.wait_pending(undo_id)
    assert main(["approve", rollback.incident.key, *common]) == 0
    assert rollback.wait_finished(undo_id)["status"] == "done" and rollback.images() == before


def test_cli_says_when_there_is_nothing_to_decide_or_undo(rollback, capsys):
    from incident_responder.cli import main

    common = ["--incident-table", rollback.table, "--region", "us-west-2", "--endpoint-url", rollback.emulator.url]
    assert main(["approve", "training-job:us-west-2:no-such-job", *common]) == 2
    assert "has no rollback proposal" in capsys.readouterr().err
    rollback.propose()
    assert main(["undo", rollback.incident.key, "--state-machine-arn", rollback.state_machine_arn, *common]) == 1
    assert "no finished rollback to undo" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["parameter"], indirect=True)
def test_a_failing_step_is_recorded_and_reported_and_the_execution_fails(rollback, mode):
    approval = rollback.start()
    rollback.clients.ssm.delete_parameter(Name=rollback.parameter)  # the pipeline's parameter vanished
    rollback.invoke(slack_request("rollback_approve", approval))
    item = rollback.wait_finished(approval)
    assert item["status"] == "failed" and "ParameterNotFound" in outcome_of(item)["detail"]
    assert rollback.execution_status() == "FAILED"
    [report] = rollback.reports()
    assert report["MessageAttributes"]["status"]["Value"] == "failed" and "ParameterNotFound" in report["Message"]
    incident = rollback.service.approvals.incident_item(rollback.incident.key)
    assert incident["latest_rollback_id"] == approval and '"status":"failed"' in incident["latest_rollback"]


def test_a_retried_event_starts_no_second_workflow(rollback):
    approval = rollback.start()
    again = rollback.service.start_for(rollback.incident)  # the triage function's retry of the same event
    assert again == rollback.executions[0]
    executions = rollback.clients.stepfunctions.list_executions(stateMachineArn=rollback.state_machine_arn)["executions"]
    assert [e["name"] for e in executions] == [approval]
    rollback.invoke(slack_request("rollback_reject", approval))
    rollback.wait_finished(approval)


def test_a_member_of_an_allow_listed_group_decides_and_an_unreadable_group_allows_nobody(rollback):
    approval = rollback.start()
    # usergroups.users.list fails (Slack down): fail closed, and say why.
    rollback.slack.reply_next(500)
    rollback.invoke(slack_request("rollback_reject", approval, user="U0GROUPMEMBER"))
    assert any("allow-listed Slack groups could not be read" in r for r in rollback.refusals()), rollback.refusals()
    assert rollback.service.approvals.get(approval)["status"] == "pending"
    rollback.slack.reply_next(200, json.dumps({"ok": True, "users": ["U0GROUPMEMBER"]}),
                              headers={"Content-Type": "application/json"})
    rollback.invoke(slack_request("rollback_reject", approval, user="U0GROUPMEMBER"))
    item = rollback.wait_finished(approval)
    assert item["status"] == "rejected" and item["decided_by"] == "name-u0groupmember"
    asked = [r for r in rollback.slack.requests if r.path.endswith("/usergroups.users.list")]
    assert asked and "S0OPERATORS" in asked[-1].raw.decode()
