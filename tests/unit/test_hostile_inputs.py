"""Hostile inputs: each finishes classification and redaction of a 1 MiB line.

No time is asserted (these machines are noisy; bench/matching.py prints the MB/s). What is
asserted is what makes the time linear by construction: every pattern on the untrusted path
is RE2 (no backtracking), the cut to MAX_LINE_CHARS is recorded in the diagnosis, and the
work completes with the right answer on a line built to stall a backtracking engine.
"""

from __future__ import annotations

import json
import random
import string

import pytest

from incident_responder import matching, redact as redact_module
from incident_responder.classify import classify, load_catalog
from incident_responder.classify import engine, posted, text as text_module
from incident_responder.classify.engine import CAP_SOURCE
from incident_responder.redact import redact, redact_lines

MIB = 1 << 20


def _fill(unit: str, size: int = MIB, tail: str = "") -> str:
    return (unit * (size // max(len(unit), 1) + 1))[: size - len(tail)] + tail


def _random(alphabet: str, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(MIB))


def _mix(words: list[str], seed: int) -> str:
    rng = random.Random(seed)
    parts, size = [], 0
    while size < MIB:
        part = rng.choice(words) if rng.random() < 0.3 else rng.choice(" :_=/-.ab")
        parts.append(part)
        size += len(part)
    return "".join(parts)[:MIB]


HOSTILE = {
    "nan_loss_issue_example": _fill("loss_", tail=" xnanx"),
    "nan_loss_words_with_spaces": _fill("loss_value ", tail=" nan"),
    "repeated_ordinary_words": _fill("the quick brown fox jumps over the lazy dog "),
    "repeated_error_word": _fill("error "),
    "repeated_warning_words": _fill("WARNING retry attempt 1 of "),
    "control_characters": _fill("\x00\x01\x02\x1b[31m\x7f"),
    "escape_sequences": _fill("\x1b]8;;http://x\x07\x1b[0m"),
    "deep_alternation_keywords": _mix(["Access Denied", "cdk-abc-deploy-role", "403", "s3://", "Forbidden"], 1),
    "sso_token_expired_mix": _mix(["SSO Token", "token expired", "aws", "sso"], 2),
    "no_such_file_mix": _mix(["No such file or directory: ", "/opt/ml/", "SAGEMAKER_PROGRAM"], 3),
    "loss_nan_mix": _mix(["loss", "nan", "_loss", " loss", "lossy"], 4),
    "site_packages_mask": _fill("/a/b/c/d"),
    "site_packages_near_miss": _fill("/x" * 50 + "-packages "),
    "home_mask": _fill("/home/user/home/"),
    "windows_paths": _fill("C:\\\\dir\\\\"),
    "digits_and_dots": _fill("1234567890."),
    "hex_run": _fill("0123456789abcdef"),
    "ip_like": _fill("1.2.3.4.5.6.7."),
    "gpu_not_visible_issue_example": "torch.cuda.is_available()" + " " * (MIB - 25),
    "noise_downloading_repeated": _fill("Downloading "),
    "gpu_not_visible_words": _mix(["CUDA", "GPU", "device", "not", "available", "visible", "no CUDA GPUs"], 5),
    "url_password_issue_example": _fill("a.", MIB - 4) + "x://",
    "url_like_runs": _fill("http://u:" + "p" * 20),
    "url_scheme_repeated": _fill("a://b:"),
    "url_with_many_ats": _fill("https://user:pa@ss"),
    "json_escapes": _fill("\\u003d\\/\\\\\""),
    "percent_encoding": _fill("%25%32%35%3D"),
    "base64_like": _random(string.ascii_letters + string.digits + "+/", 6),
    "secret_names_repeated": _fill("PASSWORD=TOKEN=SECRET="),
    "secret_word_then_spaces": _fill("secret " + " " * 30),
    "key_block_without_end": "-----BEGIN RSA PRIVATE KEY-----\n" + _fill("A" * 63 + "\n"),
    "random_printable": _random(string.printable, 7),
    "random_unicode": "".join(random.Random(8).choice("αβγ✓❌İ漢字 ") for _ in range(MIB // 3)),
    "traceback_headers": _fill("Traceback (most recent call last):\n"),
    "structured_lines_spoofed": _fill("[entry_point/spoof] x "),
    "quoted_concatenation": _fill("'a' + 'b' "),
    "one_huge_json_line": json.dumps({"cause": "x" * MIB}),
    # posted forms (classify/posted.py): every line at one wrap width, escapes nested deep,
    # an entity flood, colour codes with no end, escaped line breaks in one JSON string
    "lines_all_at_one_width": _fill("x" * 79 + "\n"),
    "nested_escapes": _fill("\\\\\\\\n\\\\\""),
    "html_entity_flood": _fill("&#1234;&amp;&quot;"),
    "colour_codes_unterminated": _fill("\x1b[" + "1;" * 40),
    "json_escaped_line_breaks": json.dumps({"message": _fill("loss nan\n")}),
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_there_are_at_least_30_hostile_inputs() -> None:
    assert len(HOSTILE) >= 30
    assert all(len(line) >= MIB // 3 for line in HOSTILE.values())


def test_every_pattern_on_the_untrusted_path_is_linear(catalog) -> None:
    compiled = [p for rule in catalog.rules for p in (*rule.patterns, *rule.exclude, *rule.require_nearby,
                                                      *rule.exclude_nearby, rule.tb_exception, rule.tb_last_frame)
                if p is not None]
    masks = [v for v in vars(text_module).values() if hasattr(v, "search") and hasattr(v, "pattern")]
    masks += [v for v in vars(engine).values() if hasattr(v, "search") and hasattr(v, "pattern")]
    masks += [v for v in vars(posted).values() if hasattr(v, "search") and hasattr(v, "pattern")]
    redaction = [p for _, p, _, _ in redact_module._compiled()] + list(redact_module._patterns().values())
    assert len(compiled) > 300 and len(masks) >= 16 and len(redaction) > 20
    slow = [getattr(p, "pattern", p) for p in (*compiled, *masks, *redaction) if not matching.is_linear(p)]
    assert slow == []


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_line_is_classified_with_the_cut_recorded(name: str, catalog) -> None:
    line = HOSTILE[name]
    text = f"INFO starting\n{line}\nModuleNotFoundError: No module named 'gsplat'\n"
    diagnosis = classify(text, catalog=catalog)
    assert diagnosis.evidence and diagnosis.remediation
    if not _has_keyword(line, catalog):  # nothing in it for a rule: the real error after it decides
        assert (diagnosis.category.value, diagnosis.cause) == ("python_dependencies", "module_not_found"), diagnosis
    notes = [e for e in diagnosis.evidence if e.source == CAP_SOURCE]
    longest = max(len(part) for part in line.split("\n"))
    if notes:
        assert f"first {matching.MAX_LINE_CHARS:,}" in notes[0].text
    else:
        # a line is cut only when a rule's keyword made it a candidate
        assert longest <= matching.MAX_LINE_CHARS or not _has_keyword(line, catalog)


def _has_keyword(line: str, catalog) -> bool:
    lowered = line.lower().encode("utf-8", "surrogatepass")
    return any(True for _ in catalog.automaton.find_matches_as_indexes(lowered, overlapping=False))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_line_is_redacted_whole(name: str) -> None:
    line = HOSTILE[name]
    out = redact(line)
    assert isinstance(out, str) and len(out) > 0
    lines = line.split("\n")
    assert len(redact_lines(lines)) == len(lines)


def test_the_cut_is_recorded_for_a_candidate_line_longer_than_the_cap(catalog) -> None:
    line = _fill("loss_", tail=" xnanx")
    diagnosis = classify(f"{line}\nstep 3: loss is nan", catalog=catalog)
    notes = [e for e in diagnosis.evidence if e.source == CAP_SOURCE]
    assert len(notes) == 1 and notes[0].line == 1 and f"{MIB:,} bytes" in notes[0].text
    assert diagnosis.cause == "non_finite_loss"


def test_a_secret_at_the_end_of_a_1_mib_line_is_redacted() -> None:
    secret = "".join(random.Random(9).choice(string.ascii_letters + string.digits) for _ in range(24))
    line = _fill("loss_", tail=f" DB_PASSWORD={secret}")
    assert secret not in redact(line)


def test_an_unknown_log_of_one_long_line_of_error_words_is_read_once():
    # The evidence search for an unknown cause used to make one match object per error word:
    # a 1 MB line of "error error ..." was 170,000 of them. Now the search counts lines.
    from incident_responder.classify import engine

    matches = list(engine._ERRORISH.finditer("error " * 170_000))
    assert len(matches) == 1
    assert engine.classify("error " * 170_000).evidence[0].line == 1
