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
    # Past 128 KiB the wrap width is inferred at each end of the text (posted.SAMPLE_CHARS) and between them
    posted = next(t for m, f, t, _ in FORMS if m == "ecr_bootstrap_repository" and f == form)
    filler = [f"2026-11-29 01:00:{i % 60:02d},000 INFO step={i} loss=0.0{i % 97:02d}" for i in range(6_000)]
    text = "\n".join([*filler, posted])
    assert len(text) > 2 * 64 * 1024
    diagnosis = classify(text, catalog=catalog)
    assert diagnosis.rule_id == "cdk_bootstrap_trust.bootstrap_resource_missing", diagnosis
    first = diagnosis.evidence[0].line
    assert first > len(filler)
    assert "Resource handler" in text.split("\n")[first - 1]  # the message's line (in a JSON string: the string's)


# ------------------------------------------------------------------ a posted form in the middle of a long log
# (issue 11 round 5, helper fbpost). Past 128 KiB, forms were looked for only in the text's first and last
# 64 KiB: a wrapped or ESC-less-coloured message in the middle of a long log read as unrelated lines.

MIB = 1 << 20
MIDDLE = 200 * 1024


def _noise(width: int | None = None) -> list[str]:
    """1 MiB of an ordinary gsplat training log that no rule matches (cut at `width` columns, as a terminal
    that wrapped every line would have it)."""
    from bench.classifier_eval import synthetic_log

    lines = synthetic_log(MIB, seed=13, failure=False).split("\n")
    if width is None:
        return lines
    return [line[i:i + width] for line in lines for i in range(0, max(len(line), 1), width)]


def _in_the_middle(lines: list[str], posted: str) -> tuple[str, int]:
    """`posted` inserted at 200 KiB into the lines; the text and the 1-based line the form starts on."""
    size, at = 0, 0
    while size < MIDDLE:
        size += len(lines[at]) + 1
        at += 1
    return "\n".join([*lines[:at], posted, *lines[at:]]), at + 1


def _width(form: str) -> int | None:
    return int(form.split("_")[3]) if form.startswith("terminal_wrapped_at_") else None


# A message wrapped at a width no terminal defaults to (75, 116 columns) is joined where the text shows that
# width (a terminal wraps every long line, not one message): below, inside noise wrapped at that width too.
_UNCOMMON_WIDTH = {f for _, f, _, _ in FORMS if _width(f) is not None and _width(f) not in {79, 80, 99, 100, 119, 120}}


@pytest.fixture(scope="module")
def noise() -> list[str]:
    return _noise()


@pytest.mark.parametrize(("message", "form", "text", "rule"), [f for f in FORMS if f[1] not in _UNCOMMON_WIDTH],
                         ids=[f"{m}-{f}" for m, f, _, _ in FORMS if f not in _UNCOMMON_WIDTH])
def test_a_posted_form_in_the_middle_of_a_long_log_is_read(message: str, form: str, text: str, rule: str,
                                                          noise: list[str], catalog) -> None:
    log, first = _in_the_middle(noise, text)
    assert len(log) > MIB and first > 1_000 and len(log) - log.find(text) > MIB - MIDDLE
    diagnosis = classify(log, catalog=catalog)
    assert diagnosis.rule_id == rule, (form, diagnosis)
    last = first + text.replace("\r\n", "\n").count("\n")
    assert all(first <= e.line <= last for e in diagnosis.evidence), (form, diagnosis.evidence)


@pytest.mark.parametrize("form", sorted({f for _, f, _, _ in FORMS if _width(f) is not None}))
def test_a_wrapped_form_in_the_middle_of_a_log_wrapped_throughout_is_read(form: str, catalog) -> None:
    lines = _noise(_width(form))
    for message, name, text, rule in FORMS:
        if name == form:
            log, first = _in_the_middle(lines, text)
            diagnosis = classify(log, catalog=catalog)
            assert diagnosis.rule_id == rule, (message, form, diagnosis)
            assert first <= diagnosis.evidence[0].line <= first + text.count("\n"), (message, form, diagnosis.evidence)


def test_a_record_start_is_told_as_its_pattern_tells_it() -> None:
    """posted._starts_record (a plain check, thousands of calls on a long log) answers as the pattern it stands for."""
    import random

    import incident_responder.matching as matching
    from incident_responder.classify import posted

    record_start = matching.compile(r"\d{2,4}[-/:.]\d{2}[-/:.]\d{2}")

    rng = random.Random(5)
    samples = ["2024-05-01T10:00:00Z x", "10:00:01,000 INFO", "99.99.99", "12345-01-01", "1-01-01", "", "20٣4-05-01"]
    samples += ["".join(rng.choice("0123456789-/:. x٣") for _ in range(rng.randint(0, 11))) for _ in range(20_000)]
    for line in samples:
        assert posted._starts_record(line) == (record_start.match(line) is not None), repr(line)


def test_the_middles_joins_leave_the_ends_their_budget(catalog) -> None:
    """In a long log wrapped throughout, the middle holds more joins than posted.MAX_EXTRA_CHARS: the ends
    (where the error is) are joined first."""
    from incident_responder.classify import posted

    posted_form = next(t for m, f, t, _ in FORMS if m == "ecr_bootstrap_repository" and f == "terminal_wrapped_at_79_columns")
    words = "INFO loading the scene and its shards one at a time from the bucket for step " * 40_000
    lines = [words[i:i + 79] for i in range(0, 79 * 30_000, 79)]
    assert 79 * len(lines) > 2 * posted.MAX_EXTRA_CHARS
    diagnosis = classify("\n".join([*lines, posted_form]), catalog=catalog)
    assert diagnosis.rule_id == "cdk_bootstrap_trust.bootstrap_resource_missing", diagnosis
