"""The same tool message, however its log was posted, is classified like the plain one.

Data: cases/posted_forms.yaml. `forms`: one message in the forms logs reach us in (ANSI colours,
CI timestamp prefixes, a JSON string or Python repr with escapes, HTML entities, CRLF, curly
quotes, terminal wrapping at a fixed width); `negatives`: lines that would match a rule only if
wrongly joined or decoded. Adding a case needs no code.
"""

from __future__ import annotations

import pytest

from incident_responder.classify import classify
from incident_responder.classify.posted import view

from .conftest import load_cases

DATA = load_cases("posted_forms.yaml")
FORMS = [(case["name"], form, text, case["rule"]) for case in DATA["forms"] for form, text in case["forms"].items()]
NEGATIVES = DATA["negatives"]


def test_every_message_is_posted_in_every_form() -> None:
    names = {form for _, form, _, _ in FORMS}
    assert {"plain", "ansi_colours", "github_actions_raw_log", "codebuild", "json_string", "python_repr",
            "html_entities", "crlf", "curly_quotes_and_nbsp", "terminal_wrapped_at_79_columns"} <= names


@pytest.mark.parametrize(("message", "form", "text", "rule"), FORMS, ids=[f"{m}-{f}" for m, f, _, _ in FORMS])
def test_a_posted_form_is_classified_like_the_plain_message(message: str, form: str, text: str, rule: str,
                                                             catalog) -> None:
    diagnosis = classify(text, catalog=catalog)
    assert diagnosis.rule_id == rule, (form, diagnosis)
    line_count = len(text.split("\n"))
    assert diagnosis.evidence and all(0 < e.line <= line_count for e in diagnosis.evidence), diagnosis.evidence
    for evidence in diagnosis.evidence:
        assert "\x1b" not in evidence.text and "\r" not in evidence.text


@pytest.mark.parametrize("case", NEGATIVES, ids=[c["name"] for c in NEGATIVES])
def test_unrelated_lines_are_not_joined_into_a_match(case: dict, catalog) -> None:
    diagnosis = classify(case["text"], catalog=catalog)
    assert diagnosis.rule_id != case["not_rule"], diagnosis


def test_line_numbers_of_a_wrapped_message_point_at_its_first_line(catalog) -> None:
    text = next(t for m, f, t, _ in FORMS if m == "ecr_bootstrap_repository" and f == "terminal_wrapped_at_79_columns")
    diagnosis = classify(text, catalog=catalog)
    lines = text.split("\n")
    first = diagnosis.evidence[0]
    assert lines[first.line - 1].startswith("Resource handler returned message")
    assert "cdk-hnb659fds-container-assets" in first.text  # the joined line is what evidence quotes


def test_lines_of_the_text_are_quoted_as_written(catalog) -> None:
    text = next(t for m, f, t, _ in FORMS if m == "permission_denied" and f == "github_actions_raw_log")
    evidence = classify(text, catalog=catalog).evidence[0]
    assert evidence.text == text.split("\n")[evidence.line - 1].strip()


@pytest.mark.parametrize(("message", "form", "text", "rule"), FORMS, ids=[f"{m}-{f}" for m, f, _, _ in FORMS])
def test_the_view_keeps_every_line_of_the_text_in_order(message: str, form: str, text: str, rule: str) -> None:
    shown = view(text)
    view_lines = shown.text.split("\n")
    own = [shown.line(number) for number in range(1, len(view_lines) + 1) if not shown.is_extra(number)]
    assert own == list(range(1, len(text.replace("\r\n", "\n").split("\n")) + 1))
    extra = [shown.line(number) for number in range(1, len(view_lines) + 1) if shown.is_extra(number)]
    assert all(0 < line <= len(own) for line in extra)


@pytest.mark.parametrize("form", ["terminal_wrapped_at_79_columns", "ansi_colours", "json_string", "html_entities"])
def test_a_form_at_the_end_of_a_long_log_keeps_its_line_numbers(form: str, catalog) -> None:
    # Past 128 KiB the forms are looked for at the two ends of the text (posted.SAMPLE_CHARS)
    posted = next(t for m, f, t, _ in FORMS if m == "ecr_bootstrap_repository" and f == form)
    filler = [f"2026-11-29 01:00:{i % 60:02d},000 INFO step={i} loss=0.0{i % 97:02d}" for i in range(6_000)]
    text = "\n".join([*filler, posted])
    assert len(text) > 2 * 64 * 1024
    diagnosis = classify(text, catalog=catalog)
    assert diagnosis.rule_id == "cdk_bootstrap_trust.bootstrap_resource_missing", diagnosis
    first = diagnosis.evidence[0].line
    assert first > len(filler)
    assert "Resource handler" in text.split("\n")[first - 1]  # the message's line (in a JSON string: the string's)
