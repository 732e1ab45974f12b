import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from incident_responder.redact import KINDS, redact, redact_data, redact_lines, redact_model
from tests.unit.report.samples import BENIGN_LINES, SECRET_SAMPLES, SecretSample, make_leaky_incident, all_secret_substrings


@pytest.mark.parametrize("sample", SECRET_SAMPLES, ids=lambda s: s.id)
def test_each_secret_format_is_replaced_by_a_named_marker(sample: SecretSample) -> None:
    redacted = redact(sample.line)
    for secret in sample.secrets:
        assert secret not in redacted
    assert f"[REDACTED:{sample.kind}]" in redacted


@pytest.mark.parametrize("sample", SECRET_SAMPLES, ids=lambda s: s.id)
def test_secrets_are_found_inside_surrounding_log_text(sample: SecretSample) -> None:
    line = f"2026-11-29T01:20:05Z [algo-1] ERROR {sample.line} (while starting train)"
    redacted = redact(line)
    assert all(secret not in redacted for secret in sample.secrets)
    assert redacted.startswith("2026-11-29T01:20:05Z [algo-1] ERROR ")


@pytest.mark.parametrize("sample", SECRET_SAMPLES, ids=lambda s: s.id)
def test_redaction_is_idempotent(sample: SecretSample) -> None:
    once = redact(sample.line)
    assert redact(once) == once


@pytest.mark.parametrize("sample", SECRET_SAMPLES, ids=lambda s: s.id)
def test_secrets_inside_json_embedded_in_a_json_string_are_found(sample: SecretSample) -> None:
    doubly_encoded = json.dumps(json.dumps({"cause": sample.line}))
    redacted = redact(doubly_encoded)
    for secret in sample.secrets:
        assert json.dumps(secret)[1:-1] not in redacted


@pytest.mark.parametrize("line", BENIGN_LINES)
def test_ordinary_3dgs_log_lines_pass_unchanged(line: str) -> None:
    assert redact(line) == line


def test_private_key_block_is_removed_but_following_lines_survive() -> None:
    sample = next(s for s in SECRET_SAMPLES if s.id == "private_key_rsa")
    redacted = redact(f"before\n{sample.line}\nStep 10/30000 loss=0.3")
    assert redacted == "before\n[REDACTED:private_key]\nStep 10/30000 loss=0.3"


def test_url_password_keeps_user_and_host_for_the_reader() -> None:
    sample = next(s for s in SECRET_SAMPLES if s.id == "url_password")
    assert "postgresql://mlops:[REDACTED:url_password]@db.internal:5432/runs" in redact(sample.line)


def test_every_sample_kind_is_a_known_kind() -> None:
    # every kind has a generated case in tests/support/secret_corpus.py (test_redaction_corpus.py)
    assert {sample.kind for sample in SECRET_SAMPLES} <= set(KINDS)


def test_redact_data_walks_nested_payloads_and_keeps_non_strings() -> None:
    leaky = [sample.line for sample in SECRET_SAMPLES]
    payload = {"blocks": [{"text": {"text": line}} for line in leaky], "count": 3, "ok": None,
                "tuple": tuple(leaky), leaky[0]: "key itself"}
    redacted = redact_data(payload)
    flat = json.dumps(redacted, default=str)
    assert not [s for s in all_secret_substrings() if s in flat]
    assert redacted["count"] == 3 and redacted["ok"] is None
    assert isinstance(redacted["tuple"], tuple)


def test_redact_model_returns_a_valid_copy_without_secrets() -> None:
    incident = make_leaky_incident()
    redacted = redact_model(incident)
    assert type(redacted) is type(incident)
    dumped = redacted.model_dump_json()
    assert not [s for s in all_secret_substrings() if s in dumped]
    assert redacted.event.training_job_name == incident.event.training_job_name


def test_redacting_formatter_cleans_message_extra_keys_and_exceptions() -> None:
    from aws_lambda_powertools import Logger

    from incident_responder.redact import RedactingFormatter

    output = io.StringIO()
    logger = Logger(service="redact-test", logger_formatter=RedactingFormatter(),
                    logger_handler=logging.StreamHandler(output))
    logger.append_keys(appended=SECRET_SAMPLES[1].line)
    for sample in SECRET_SAMPLES:
        logger.info("training log line: %s", sample.line, extra={"raw": sample.line, "nested": {"l": [sample.line]}})
    try:
        raise RuntimeError(SECRET_SAMPLES[2].line)
    except RuntimeError:
        logger.exception("boom")

    text = output.getvalue()
    leaked = [s for s in all_secret_substrings() if s in text or json.dumps(s)[1:-1] in text]
    assert leaked == []
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == len(SECRET_SAMPLES) + 1
    assert "[REDACTED:aws_access_key_id]" in records[0]["message"]
    assert records[-1]["exception_name"] == "RuntimeError"


def test_importing_redact_stays_cheap() -> None:
    probe = ("import sys, incident_responder.redact; "
             "print(sorted(m for m in ('pydantic', 'aws_lambda_powertools', 'slack_sdk') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("sample_id", ["private_key_rsa", "private_key_openssh_cut_off"])
def test_key_block_split_over_log_events_is_redacted_line_by_line(sample_id: str) -> None:
    sample = next(s for s in SECRET_SAMPLES if s.id == sample_id)
    lines = ["Step 1/30000 loss=0.9", *sample.line.splitlines(), "Step 2/30000 loss=0.8"]
    if sample_id == "private_key_openssh_cut_off":
        lines = lines[:-1]  # the tail ended inside the key block
    redacted = redact_lines(lines)
    assert len(redacted) == len(lines)
    assert not [s for s in sample.secrets if any(s in line for line in redacted)]
    assert redacted[0] == lines[0]
    if sample_id == "private_key_rsa":
        assert redacted[-1] == lines[-1]



EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize("event_file", sorted(EVENTS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_real_shape_aws_events_pass_unchanged(event_file: Path) -> None:
    text = event_file.read_text()
    assert redact(text) == text


@pytest.mark.parametrize("as_lines", [True, False], ids=["log-events", "one-text"])
def test_a_truncated_key_block_does_not_swallow_the_error_after_it(as_lines: bool) -> None:
    body = ["MIIEowIBAAKCAQEA" + "x" * 48, "q" * 64, "Zm9v"]  # the last line of a cut key is short
    error = "PermissionError: [Errno 13] Permission denied: '/opt/ml/model/renders'"
    lines = ["-----BEGIN RSA PRIVATE KEY-----", *body, error]
    out = redact_lines(lines) if as_lines else redact("\n".join(lines)).splitlines()
    assert error in out
    assert not any(part in "\n".join(out) for part in body)


@pytest.mark.parametrize("line", [
    '"client-request-token": "Console-CreateStack-7f59c3cf-00d2-40c7-b2ff-e75db0987002"',
    '"ClientRequestToken": "abc-Console-zz99887766aaBBcc"',
    "NextToken=AAAAAbbbbbCCCCCdddddEEEEE12345",
    '"ContinuationToken": "1Zk3mQ9pL2vT8xR4nW7yB1cH6jD0sF5gA"',
])
def test_aws_request_and_pagination_tokens_are_not_secrets(line):
    # CloudFormation's stack events carry client-request-token; list APIs page with NextToken.
    assert redact(line) == line


@pytest.mark.parametrize("line", ["refresh_token=Zk3mQ9pL2vT8xR4nW7yB1cH6jD0sF5gA",
                                  "auth token is Zk3mQ9pL2vT8xR4nW7yB1cH6jD0sF5gA"])
def test_other_tokens_still_are(line):
    assert "Zk3mQ9pL2vT8xR4nW7yB" not in redact(line)
