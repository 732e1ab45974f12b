"""Least privilege: the rollback workflow's role and the DecisionFunction's role grant exactly the
actions the ASL and the code call, on the resources they need, and nothing else.

The workflow's actions are read from statemachine/rollback.asl.json (the states reachable in each
RollbackMode); the DecisionFunction's are measured: every decision path runs through its handler
against the emulator and the AWS operations it made are counted (clients.CallCounter)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from incident_responder.rollback.workflow import ROLLBACK_DEFINITION
from tests.rollback.conftest import http_event, slack_request, wait_until
from tests.template.template_model import resolve, transformed

IAM_PREFIX = {"dynamodb": "dynamodb", "stepfunctions": "states", "sfn": "states", "secretsmanager": "secretsmanager",
              "ecr": "ecr", "ssm": "ssm", "sns": "sns"}
MODES = ["ecr-retag", "parameter", "disabled"]
CONDITIONS = {"IsEcrRetag": "ecr-retag", "IsParameterMode": "parameter"}
REPOSITORY_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${TrainingImageRepository}"}
PARAMETER_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${PipelineImageParameterName}"}
RESOURCE_OF = {  # what each service's actions may touch
    "dynamodb": {"Fn::GetAtt": ["IncidentsTable", "Arn"]},
    "ecr": REPOSITORY_ARN,
    "ssm": PARAMETER_ARN,
    "sns": {"Ref": "NotificationTopic"},
    "kms": {"Fn::GetAtt": ["NotificationKey", "Arn"]},
    "states": {"Ref": "RollbackStateMachine"},
}


def _action(resource: str) -> str:
    """arn:aws:states:::dynamodb:putItem / ...:::aws-sdk:ecr:batchGetImage.waitForTaskToken -> dynamodb:PutItem"""
    tail = resource.split(":::", 1)[1].split(".")[0]
    parts = tail.split(":")
    service, api = (parts[1], parts[2]) if parts[0] == "aws-sdk" else (parts[0], parts[1])
    return f"{IAM_PREFIX[service]}:{api[0].upper()}{api[1:]}"


def _reachable_tasks(definition: dict[str, Any], mode: str) -> set[str]:
    """Task resources reachable when `$.config.mode` is `mode` (Choice rules on it are followed as taken)."""
    states, seen, todo, found = definition["States"], set(), [definition["StartAt"]], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        if state["Type"] == "Task":
            found.add(state["Resource"])
        nexts = [state.get("Next"), state.get("Default"), *(c["Next"] for c in state.get("Catch", []))]
        for rule in state.get("Choices", []):
            if rule.get("Variable") == "$.config.mode":
                if rule.get("StringEquals") == mode:
                    nexts, todo = [rule["Next"]], todo
                    break
                continue
            nexts.append(rule["Next"])
        todo += [n for n in nexts if n]
    return found


def _granted(statements: list[dict[str, Any]]) -> dict[str, list[Any]]:
    granted: dict[str, list[Any]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            granted.setdefault(action, []).extend(resources)
    return granted


def _role(cfn: dict[str, Any], role_id: str, conditions: dict[str, bool]) -> list[dict[str, Any]]:
    role = resolve(cfn["Resources"][role_id]["Properties"], {}, conditions)
    managed = role.get("ManagedPolicyArns", [])
    # Only X-Ray tracing and (functions) writing their own logs.
    assert all(any(name in json.dumps(arn) for name in ("AWSXrayWriteOnlyAccess", "AWSLambdaBasicExecutionRole"))
               for arn in managed), managed
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("mode", MODES)
def test_the_workflow_role_grants_exactly_what_the_asl_calls(mode):
    cfn = transformed()
    role_id = cfn["Resources"]["RollbackStateMachine"]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    conditions = {name: mode == value for name, value in CONDITIONS.items()} | {"RollbackEnabled": mode != "disabled"}
    granted = _granted(_role(cfn, role_id, conditions))
    needed = {_action(r) for r in _reachable_tasks(json.loads(ROLLBACK_DEFINITION.read_text()), mode)}
    if "sns:Publish" in needed:  # the topic is KMS-encrypted
        needed |= {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert set(granted) == needed, {"granted, not called": set(granted) - needed, "called, not granted": needed - set(granted)}
    for action, resources in granted.items():
        assert resources == [RESOURCE_OF[action.split(":")[0]]], (action, resources)


def test_disabled_mode_can_change_no_image_and_no_parameter():
    cfn = transformed()
    role_id = cfn["Resources"]["RollbackStateMachine"]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    granted = _granted(_role(cfn, role_id, {name: False for name in CONDITIONS} | {"RollbackEnabled": False}))
    assert not {"ecr:PutImage", "ecr:BatchDeleteImage", "ssm:PutParameter"} & set(granted)


def _decision_role(slack_on: bool) -> dict[str, list[Any]]:
    cfn = transformed()
    role_id = cfn["Resources"]["DecisionFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    return _granted(_role(cfn, role_id, {"HasSlackSigningSecret": slack_on, "HasSlackBotToken": slack_on}))


def test_the_decision_function_grants_exactly_what_its_code_calls(rollback):
    """Every route and outcome: approve by Slack, a refusal, undo by Slack, link page and link decision."""
    approval = rollback.start()
    rollback.invoke(slack_request("rollback_approve", approval, user="U0INTRUDER"))  # refused, recorded
    rollback.invoke(slack_request("rollback_approve", approval))
    rollback.wait_finished(approval)
    rollback.fresh_state_machine()
    rollback.invoke(slack_request("rollback_undo", approval))
    undo_id = wait_until(lambda: (lambda a: a if a != approval else None)(
        rollback.service.pending_approval(rollback.incident.key)), "the undo's proposal")
    rollback.wait_pending(undo_id)
    from incident_responder.rollback import signing
    from tests.rollback.conftest import LINK_KEY
    import time
    from urllib.parse import urlencode

    expires = int(time.time()) + 600
    params = {"approval": undo_id, "decision": "approve", "expires": str(expires),
              "sig": signing.sign(LINK_KEY.encode(), undo_id, "approve", expires)}
    rollback.invoke(http_event("GET", "/decide", query=params))
    rollback.invoke(http_event("POST", "/decide", body=urlencode(params)))
    assert rollback.wait_finished(undo_id)["status"] == "done"

    import incident_responder.handlers.decide as module

    called = {f"{IAM_PREFIX[c.split(':')[0]]}:{c.split(':')[1]}" for c in module._endpoint.service.clients.counter.calls}
    granted = _decision_role(slack_on=True)
    assert set(granted) == called, {"granted, not called": set(granted) - called, "called, not granted": called - set(granted)}
    assert granted["dynamodb:GetItem"] == granted["dynamodb:UpdateItem"] == [RESOURCE_OF["dynamodb"]]
    assert granted["states:SendTaskSuccess"] == granted["states:StartExecution"] == [RESOURCE_OF["states"]]
    assert sorted(map(json.dumps, granted["secretsmanager:GetSecretValue"])) == sorted(
        map(json.dumps, [{"Ref": "DecisionLinkKey"}, {"Ref": "SlackSigningSecretArn"}, {"Ref": "SlackBotTokenSecretArn"}]))


def test_without_a_slack_signing_secret_the_decision_function_reads_only_the_link_key():
    assert _decision_role(slack_on=False)["secretsmanager:GetSecretValue"] == [{"Ref": "DecisionLinkKey"}]


def test_the_triage_role_reaches_only_the_pipelines_repository_and_the_rollback_workflow():
    cfn = transformed()
    role_id = cfn["Resources"]["TriageFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    granted = _granted(_role(cfn, role_id, {"HasSlackSecret": False, "HasGitHubToken": False}))
    assert granted["ecr:PutImage"] == granted["ecr:BatchGetImage"] == [REPOSITORY_ARN]
    assert granted["states:StartExecution"] == [RESOURCE_OF["states"]]
