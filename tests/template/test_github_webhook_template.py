"""The GitHub webhook function in template.yaml keeps its contract with the code: its handler and route,
the configuration it reads, and a role scoped to its own secret, the table and the default event bus (it
hands verified runs to the TriageFunction, which reads GitHub with the token). (What the role grants
is compared with the calls the function makes in tests/integration/test_github_webhook.py.)"""

from __future__ import annotations

import json

from incident_responder.github.endpoint import GitHubSettings
from incident_responder.runtime import ResponderSettings
from tests.template.template_model import raw, transformed
from tests.template.test_template import _as_list, _getatt_target, _lambda_function, _ref, _role_statements

OPTIONAL_TUNABLES = {"GITHUB_API_URL", "GITHUB_MAX_DOWNLOAD_BYTES"}  # GitHub Enterprise Server, and the default cap
# Read where GitHub is read: the TriageFunction, to which the endpoint hands each verified run.
READ_BY_TRIAGE = {"GITHUB_TOKEN_SECRET_ARN"}


def _aliases(model: type) -> set[str]:
    return {choice for field in model.model_fields.values() if field.validation_alias is not None
            for choice in field.validation_alias.choices if choice.isupper()}


def test_the_function_serves_post_github_webhook_on_its_own_http_api() -> None:
    cfn = transformed()
    fn = _lambda_function(cfn, "GitHubWebhookFunction")
    assert fn["Handler"] == "incident_responder.handlers.github_webhook.handler"
    events = raw()["Resources"]["GitHubWebhookFunction"]["Properties"]["Events"]
    (route,) = events.values()
    assert route == {"Type": "HttpApi", "Properties": {"ApiId": _ref("GitHubWebhookApi"), "Path": "/github/webhook",
                                                       "Method": "POST"}}
    assert "GitHubWebhookApi" in json.dumps(raw()["Outputs"]["GitHubWebhookUrl"]["Value"])


def test_every_variable_set_is_read_and_every_github_setting_is_set() -> None:
    env = _lambda_function(transformed(), "GitHubWebhookFunction")["Environment"]["Variables"]
    readable = _aliases(GitHubSettings) | _aliases(ResponderSettings)
    assert {name for name in env if not name.startswith("POWERTOOLS_")} <= readable
    assert _aliases(GitHubSettings) - OPTIONAL_TUNABLES - READ_BY_TRIAGE <= set(env)
    assert env["TRIAGE_EVENT_BUS"] == "default"
    triage_env = _lambda_function(transformed(), "TriageFunction")["Environment"]["Variables"]
    assert triage_env["GITHUB_TOKEN_SECRET_ARN"] == _ref("GitHubTokenSecretArn")


def test_the_role_reads_only_its_secret_and_writes_only_the_table_and_the_default_bus() -> None:
    cfn = transformed()
    role = _getatt_target(_lambda_function(cfn, "GitHubWebhookFunction")["Role"])
    statements = _role_statements(cfn, role, {"HasGitHubWebhook": True, "HasGitHubToken": True, "HasSlackSecret": True})
    secrets = sorted(json.dumps(s["Resource"]) for s in statements if "secretsmanager:GetSecretValue" in _as_list(s["Action"]))
    assert secrets == [json.dumps(_ref("GitHubWebhookSecretArn"))]
    for s in statements:
        actions = set(_as_list(s["Action"]))
        if any(a.startswith("dynamodb:") for a in actions):
            assert s["Resource"] == {"Fn::GetAtt": ["IncidentsTable", "Arn"]}
        if "events:PutEvents" in actions:
            assert str(s["Resource"]).endswith(":event-bus/default")
        if s["Resource"] == "*":
            assert actions <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert not any(a.startswith(("sns:", "kms:")) for s in statements for a in _as_list(s["Action"]))
    none = _role_statements(cfn, role, {"HasGitHubWebhook": False, "HasGitHubToken": False, "HasSlackSecret": False})
    assert not [s for s in none if "secretsmanager:GetSecretValue" in _as_list(s["Action"])]
