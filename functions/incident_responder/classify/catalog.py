"""Loading the rule catalog: YAML files -> validated models -> compiled rules + prefilter."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from incident_responder.classify.schema import Rule, RuleFile
from incident_responder.classify.text import required_literals
from incident_responder.matching import Pattern
from incident_responder.matching import compile_rule
from incident_responder.models import Category

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


class CatalogError(ValueError):
    """A rule file is wrong; the message names the file, the rule and what to fix."""


@dataclass(frozen=True)
class CompiledRule:
    spec: Rule
    category: Category
    patterns: tuple[Pattern, ...]  # RE2, case-insensitive: linear in the line whatever the line
    exclude: tuple[Pattern, ...]
    require_nearby: tuple[Pattern, ...]
    exclude_nearby: tuple[Pattern, ...]
    tb_exception: Pattern | None
    tb_last_frame: Pattern | None
    keywords: tuple[str, ...]
    source: str  # file name, for messages

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def cause(self) -> str:
        return self.spec.cause


@dataclass(frozen=True)
class CategoryInfo:
    category: Category
    title: str
    remediation: tuple[str, ...]
    commands: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    """Every rule, compiled, with the Aho-Corasick prefilter that finds candidate lines."""

    directory: Path
    categories: dict[Category, CategoryInfo]
    rules: tuple[CompiledRule, ...]
    line_rules: dict[str, tuple[int, ...]]  # prefilter keyword -> indexes of line rules
    traceback_rules: tuple[int, ...]
    keywords: tuple[str, ...]  # automaton pattern index -> keyword
    _automaton: Any = field(repr=False, compare=False, default=None)

    def rule(self, rule_id: str) -> CompiledRule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"no rule {rule_id!r} in the catalog at {self.directory}")

    @property
    def automaton(self) -> Any:
        return self._automaton


TRACEBACK_KEY = "traceback (most recent call last)"


def _load_yaml(path: Path) -> Any:
    import yaml  # imported here: `import incident_responder.classify` stays cheap

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path.name}: not valid YAML: {exc}") from exc


def _describe(path: Path, data: Any, exc: ValidationError) -> str:
    lines = [f"{path.name}: invalid rule file ({exc.error_count()} problem(s)):"]
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            try:
                rule_id = data["rules"][loc[1]].get("id", "?")
            except (KeyError, IndexError, TypeError, AttributeError):
                rule_id = "?"
            where = f"rule {rule_id!r}: " + ".".join(str(p) for p in loc[2:])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field; remove it or fix its spelling (see docs/classifier.md for the fields)"
        elif err["type"] == "missing":
            message = "required field is missing"
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def _compile(pattern: str) -> Pattern:
    # RE2; a pattern with bounded gaps (A.{0,400}?B) is searched part by part (matching.GapPattern)
    return compile_rule(pattern, ignore_case=True)


def _compile_rule(spec: Rule, category: Category, source: str) -> CompiledRule:
    keywords: list[str] = []
    if spec.keywords is not None:
        keywords = sorted({k.lower() for k in spec.keywords})
    elif spec.patterns:
        for pattern in spec.patterns:
            literals = required_literals(pattern)
            if literals is None:
                raise CatalogError(
                    f"{source}: rule {spec.id!r}: pattern {pattern!r} has no literal text of 3+ characters "
                    "that every match contains, so it cannot be prefiltered; add `keywords:` (literal "
                    "substrings, one of which every matching line contains)"
                )
            keywords.extend(literals)
    tb = spec.traceback
    return CompiledRule(
        spec=spec,
        category=category,
        patterns=tuple(_compile(p) for p in spec.patterns),
        exclude=tuple(_compile(p) for p in spec.exclude),
        require_nearby=tuple(_compile(p) for p in spec.require_nearby),
        exclude_nearby=tuple(_compile(p) for p in spec.exclude_nearby),
        tb_exception=_compile(tb.exception) if tb and tb.exception else None,
        tb_last_frame=_compile(tb.last_frame) if tb and tb.last_frame else None,
        keywords=tuple(sorted(set(keywords))),
        source=source,
    )


def build_catalog(directory: Path) -> Catalog:
    """Load and validate every *.yaml file in `directory` (uncached; see load_catalog)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogError(f"no rule files (*.yaml) in {directory}; point load_catalog at the rules/ directory")
    categories: dict[Category, CategoryInfo] = {}
    compiled: list[CompiledRule] = []
    seen: dict[str, str] = {}
    for path in files:
        data = _load_yaml(path)
        if not isinstance(data, dict):
            raise CatalogError(f"{path.name}: expected a mapping with category, title, remediation, rules")
        try:
            parsed = RuleFile.model_validate(data)
        except ValidationError as exc:
            raise CatalogError(_describe(path, data, exc)) from None
        if path.stem != parsed.category.value:
            raise CatalogError(f"{path.name}: declares category {parsed.category.value!r}; name the file "
                               f"{parsed.category.value}.yaml (one file per category)")
        categories[parsed.category] = CategoryInfo(
            parsed.category, parsed.title, tuple(parsed.remediation), tuple(parsed.commands)
        )
        for spec in parsed.rules:
            if spec.id in seen:
                raise CatalogError(f"{path.name}: duplicate rule id {spec.id!r} (first defined in {seen[spec.id]}); "
                                   "give each rule a unique id")
            seen[spec.id] = path.name
            compiled.append(_compile_rule(spec, parsed.category, path.name))
    if Category.unknown not in categories:
        raise CatalogError(f"{directory}: unknown.yaml is missing; it holds the fix steps used when no rule fits")
    line_rules: dict[str, list[int]] = {}
    for index, rule in enumerate(compiled):
        for keyword in rule.keywords:
            line_rules.setdefault(keyword, []).append(index)
    traceback_rules = tuple(i for i, r in enumerate(compiled) if r.spec.traceback is not None)
    return Catalog(
        directory=directory,
        categories=categories,
        rules=tuple(compiled),
        line_rules={k: tuple(v) for k, v in line_rules.items()},
        traceback_rules=traceback_rules,
        keywords=(*line_rules, TRACEBACK_KEY),
        _automaton=_build_automaton([*line_rules, TRACEBACK_KEY]),
    )


def _build_automaton(keywords: list[str]) -> Any:
    # Rust Aho-Corasick over bytes: one pass over a 50 MB log finds every keyword at
    # ~100 MB/s, where a loop of str.find or one big regex alternation manages ~10.
    import ahocorasick_rs

    return ahocorasick_rs.BytesAhoCorasick(
        [k.encode("utf-8") for k in keywords], implementation=ahocorasick_rs.Implementation.DFA
    )


@lru_cache(maxsize=8)
def _cached(directory: Path) -> Catalog:
    return build_catalog(directory)


def load_catalog(directory: Path | None = None) -> Catalog:
    """The validated catalog of `directory` (default: the package's rules/), loaded once per directory."""
    return _cached(Path(directory).resolve() if directory is not None else RULES_DIR)
