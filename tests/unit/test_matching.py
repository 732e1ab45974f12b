"""The linear-time matcher: RE2 everywhere, and rule patterns with bounded gaps searched part by
part (matching.GapPattern), which must agree with the whole pattern."""

from __future__ import annotations

import random

import pytest
import re2

from bench.matching import literals
from incident_responder import matching
from incident_responder.classify import load_catalog
from incident_responder.classify.text import mask

CATALOG = load_catalog()
GAPPED = [p for rule in CATALOG.rules
          for p in (*rule.patterns, *rule.exclude, *rule.require_nearby, *rule.exclude_nearby,
                    rule.tb_exception, rule.tb_last_frame)
          if isinstance(p, matching.GapPattern)]


def _fixture_lines() -> list[str]:
    lines = []
    for rule in CATALOG.rules:
        for text in (*rule.spec.fixtures.positive, *rule.spec.fixtures.negative):
            lines.extend(mask(line) for line in text.split("\n"))
    return lines


def _scattered(words: list[str], rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 60)):
        draw = rng.random()
        if draw < 0.3:
            parts.append(rng.choice(words))
        elif draw < 0.4:
            parts.append(" " * rng.randint(1, 200))  # gaps near the bound
        else:
            parts.append(rng.choice(" :_=/-.ab\n"))
    return "".join(parts)


def test_the_catalog_has_gapped_patterns() -> None:
    assert len(GAPPED) >= 30


@pytest.mark.parametrize("pattern", GAPPED, ids=lambda p: p.pattern[:50])
def test_a_gapped_pattern_agrees_with_the_whole_pattern(pattern) -> None:
    # the whole pattern as RE2 runs it (outside the size budget the parts keep)
    whole = re2.compile(pattern.pattern, matching._options(True, False))
    rng = random.Random(pattern.pattern)
    words = literals(pattern.pattern)
    lines = _fixture_lines() + [_scattered(words, rng) for _ in range(200)]
    disagree = [line for line in lines if bool(pattern.search(line)) != bool(whole.search(line))]
    assert disagree == []


def test_the_generated_lines_exercise_matches_and_misses() -> None:
    # the agreement above means something only if the generated lines often match
    rng = random.Random(1)
    matched = sum(bool(p.search(_scattered(literals(p.pattern), rng))) for p in GAPPED for _ in range(50))
    assert 0.1 * 50 * len(GAPPED) < matched < 0.9 * 50 * len(GAPPED)


@pytest.mark.parametrize(
    ("pattern", "branches", "gaps"),
    [
        ("a.{0,400}?b", ["ab"], [[(0, 400)]]),
        ("(?:x|y).{1,40}?z|w", ["(?:x|y)z", "w"], [[(1, 40)], []]),
        (r"a[.{]\.{0,3}b", [r"a[.{]\.{0,3}b"], [[]]),
        ("(a.{0,4}?b)c", ["(a.{0,4}?b)c"], [[]]),
        ("p.{0,9}q.{2,5}r", ["pqr"], [[(0, 9), (2, 5)]]),
    ],
)
def test_top_level_split(pattern: str, branches: list[str], gaps) -> None:
    split = matching._top_level(pattern)
    assert split is not None
    assert (split[0], split[1]) == (branches, gaps)


def test_a_global_inline_flag_is_not_split() -> None:
    assert matching._top_level("(?s)a.{0,4}?b") is None
    assert not isinstance(matching.compile_rule("(?s)a.{0,4}?b"), matching.GapPattern)


def test_a_pattern_with_groups_keeps_its_groups() -> None:
    pattern = matching.compile_rule("(?P<x>a).{0,4}?b")
    assert pattern.search("a  b").groupdict() == {"x": "a"}


def test_gaps_do_not_cross_a_line_break() -> None:
    pattern = matching.compile_rule("foo.{0,10}?bar")
    assert pattern.search("foo bar") and not pattern.search("foo\nbar")


def test_the_gap_counts_characters_not_bytes() -> None:
    pattern = matching.compile_rule("foo.{0,3}?bar")
    assert pattern.search("foo✓✓✓bar") and not pattern.search("foo✓✓✓✓bar")


@pytest.mark.parametrize(("pattern", "message"), [
    ("a(?=b)", "no lookahead/lookbehind"),
    ("(a)\\1", "no backreferences"),
    ("x.{0,900}?y.{0,900}?z.{0,900}?w", "RE2 instructions"),
])
def test_patterns_a_linear_engine_cannot_run_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(matching.PatternError, match=message):
        matching.compile(pattern)
