"""The shape of a rule file (rules/<category>.yaml), validated when the catalog loads.

A mistake in a rule must fail the tests, not a live incident: unknown fields, bad
regexes, unknown template names, duplicate ids and missing fixtures are all errors.
"""

from __future__ import annotations

import re
from string import Formatter
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from incident_responder.classify.text import _sre_c, parse_pattern
from incident_responder.matching import PatternError, _top_level, compile_rule
from incident_responder.matching import compile as compile_linear
from incident_responder.models import Category

#: The names an investigation command may use, e.g. ``aws logs tail {log_group}``.
TEMPLATE_NAMES: frozenset[str] = frozenset(
    {
        "job_name",
        "execution_arn",
        "state_machine_arn",
        "log_group",
        "log_stream",
        "region",
        "account",
        "image_uri",
        "repository",
        "image_tag",
        "build_id",
        "project_name",
        "stack_name",
        "failed_resource",
        "github_repository",
        "run_id",
        "workflow_path",
    }
)

SnakeId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=80)]


def _check_regex(pattern: str) -> str:
    """The pattern compiles with RE2, the linear-time engine every rule runs on (no lookaround, no
    backreferences), within its size budget; and Python's parser reads it (for the prefilter)."""
    try:
        # as the engine compiles it, so the catalog's own compile of the pattern is a cache hit
        compile_rule(pattern, ignore_case=True)
    except PatternError as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}; fix the pattern (RE2 syntax: "
                         "https://github.com/google/re2/wiki/Syntax)") from None
    try:
        parse_pattern(pattern)
    except re.error as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}; write it in the syntax RE2 and Python share") from None
    return pattern


def _has_unbounded_gap(items) -> bool:
    """Whether a parsed pattern repeats `.` without an upper bound (`.*`, `.+`, `.{3,}`)."""
    for op, av in items:
        if op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, getattr(_sre_c, "POSSESSIVE_REPEAT", None)):
            body = list(av[2])
            if av[1] is _sre_c.MAXREPEAT and any(sub_op is _sre_c.ANY for sub_op, _ in body):
                return True
            if _has_unbounded_gap(body):
                return True
        elif op is _sre_c.SUBPATTERN and _has_unbounded_gap(list(av[3])):
            return True
        elif op is _sre_c.BRANCH and any(_has_unbounded_gap(list(b)) for b in av[1]):
            return True
    return False


_NESTED_GAP_LIMIT = 40


def _nested_gap(pattern: str) -> str | None:
    """A bounded gap `.{m,n}` (n > 40) that is not at the pattern's top level, if any.

    RE2 is linear, but on a line that scatters the parts around a long gap its DFA overflows
    and it falls back to ~1 MB/s; a gap at the top level is searched part by part instead
    (matching.GapPattern), one inside a group cannot be."""
    split = _top_level(pattern)
    rest = pattern if split is None else "|".join(split[0])
    for index in range(len(rest)):
        if rest.startswith(".{", index) and (index == 0 or rest[index - 1] != "\\"):
            close = rest.find("}", index)
            bounds = rest[index + 2:close].split(",") if close != -1 else []
            if len(bounds) == 2 and bounds[1].isdigit() and int(bounds[1]) > _NESTED_GAP_LIMIT:
                return rest[index:close + 1]
    return None


def _check_matching_regex(pattern: str) -> str:
    """A pattern that rules match against log lines: valid, and linear on long lines."""
    gap = _nested_gap(pattern)  # before compiling: the specific advice beats the size budget's
    if gap is not None:
        raise ValueError(f"pattern {pattern!r} has the gap {gap} inside a group, where it cannot be searched part by "
                         "part and runs at ~1 MB/s on a line that scatters its parts; put the gap at the top level "
                         "(write A.{0,400}?B|C, not (?:A.{0,400}?B|C)) or keep it within "
                         f"{_NESTED_GAP_LIMIT} characters")
    _check_regex(pattern)
    if not pattern.startswith("^") and _has_unbounded_gap(list(parse_pattern(pattern))):
        # RE2 runs `A.*B` in linear time too, but an unbounded gap pairs words a whole (long) line
        # apart; a bounded top-level gap keeps the parts close and is searched part by part.
        raise ValueError(f"pattern {pattern!r} has an unbounded gap (.* or .+); write .{{0,400}}? instead "
                         "(or anchor the pattern with ^)")
    return pattern


def template_fields(template: str) -> list[str]:
    """The placeholder names in a command template; raises ValueError for a malformed one."""
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad command template {template!r}: {exc}; write literal braces as {{{{ and }}}}") from exc
    names = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_NAMES or spec or conversion:
            raise ValueError(
                f"command template {template!r} uses {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}; allowed placeholders are "
                f"{', '.join(sorted(TEMPLATE_NAMES))} (plain, no format spec); write literal braces as {{{{ and }}}}"
            )
        names.append(field)
    return names


def _check_commands(values: list[str]) -> list[str]:
    for template in values:
        template_fields(template)
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fixtures(_Strict):
    """Log excerpts that prove the rule: positives it must decide, negatives it must not."""

    positive: list[str] = Field(min_length=1)
    negative: list[str] = Field(min_length=1)


class TracebackMatch(_Strict):
    """Matches a parsed Python traceback rather than a single line."""

    exception: str | None = Field(None, description="regex on the final 'Type: message' line")
    last_frame: str | None = Field(None, description="regex on the last frame ('File ...' line and its code line)")

    @field_validator("exception", "last_frame")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else _check_matching_regex(value)

    @model_validator(mode="after")
    def _something(self) -> TracebackMatch:
        if self.exception is None and self.last_frame is None:
            raise ValueError("traceback needs `exception` and/or `last_frame`")
        return self


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", description="<category>.<name>")
    cause: SnakeId
    title: str = Field(min_length=3, max_length=200)
    patterns: list[str] = Field([], description="regexes matched (case-insensitive) against masked lines")
    traceback: TracebackMatch | None = None
    keywords: list[str] | None = Field(
        None, description="literal substrings that prefilter lines; derived from the patterns when left out"
    )
    exclude: list[str] = Field([], description="a match on the same line vetoes the rule")
    require_nearby: list[str] = Field([], description="one must match within `window` lines of the hit")
    exclude_nearby: list[str] = Field([], description="a match within `window` lines vetoes the rule")
    window: int = Field(8, ge=1, le=200)
    match_noise: bool = Field(False, description="also match warning/retry/progress lines (at a discount)")
    from_groups: bool = Field(False, description="category and cause come from named groups in the line")
    priority: int = Field(50, ge=0, le=100, description="precedence: specific causes above generic symptoms")
    confidence: float = Field(ge=0.0, le=1.0)
    remediation: list[str] = []
    commands: list[str] = []
    fixtures: Fixtures

    @field_validator("patterns", "exclude", "require_nearby", "exclude_nearby")
    @classmethod
    def _regexes(cls, values: list[str]) -> list[str]:
        return [_check_matching_regex(v) for v in values]

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, values: list[str] | None) -> list[str] | None:
        if values is not None and any(len(v.strip()) < 3 for v in values):
            raise ValueError("every keyword needs at least 3 characters (short ones match everything)")
        return values

    @field_validator("commands")
    @classmethod
    def _commands(cls, values: list[str]) -> list[str]:
        return _check_commands(values)

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if bool(self.patterns) == (self.traceback is not None):
            raise ValueError("a rule needs either `patterns` (line rule) or `traceback` (traceback rule), not both")
        if self.from_groups:
            for p in self.patterns:
                groups = compile_linear(p, ignore_case=True).groupindex
                if "category" not in groups or "cause" not in groups:
                    raise ValueError(f"from_groups rule pattern {p!r} needs named groups (?P<category>) and (?P<cause>)")
        return self


class RuleFile(_Strict):
    """One guide category: its fix steps, its investigation commands, its rules."""

    category: Category
    title: str
    remediation: list[str] = Field(min_length=1)
    commands: list[str] = []
    rules: list[Rule] = []

    @field_validator("commands")
    @classmethod
    def _commands(cls, values: list[str]) -> list[str]:
        return _check_commands(values)

    @model_validator(mode="after")
    def _rule_ids_in_category(self) -> RuleFile:
        for rule in self.rules:
            prefix = rule.id.split(".", 1)[0]
            if prefix != self.category.value:
                raise ValueError(f"rule id {rule.id!r} must start with '{self.category.value}.' (the file's category)")
        return self
