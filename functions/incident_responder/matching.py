"""Linear-time matching: every pattern the responder runs on untrusted text is an RE2 pattern.

Python's `re` backtracks: `loss\\w*.{0,400}?nan` needs 32 s for an 8 KB line of repeated
`loss_`, and one crafted log line can hold triage past the Lambda timeout on every retry.
RE2 (google-re2) runs in time linear in the input whatever the pattern and the input, by
construction (automata, no backtracking). Its syntax has no lookaround and no backreferences:
a rule needing one is written with `exclude:` or a second pattern instead.

Rules, masks (classify/text.py) and redaction (redact.py) compile here, so a test can check
that nothing on the untrusted path is a Python `re` pattern (`is_linear`).

On top of that, a line is matched on its first `MAX_LINE_CHARS` characters only: the cost of
one line is bounded by a constant whatever its length, and the classifier records every cut
in the diagnosis's evidence (never silently).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import re2

#: Longest part of one line that rules and masks read (a FailureReason is at most 1,024).
MAX_LINE_CHARS = 20_000

#: Budget on a compiled pattern's program size (RE2 instructions). RE2's DFA runs in
#: constant time per byte; when a pattern's DFA outgrows its memory budget RE2 falls back
#: to its NFA, whose time per byte grows with the program size. A bounded program keeps even
#: that fallback fast (bench/matching.py prints each pattern's worst case).
MAX_PROGRAM_SIZE = 8_000

Pattern = Any  # re2._Regexp: search, match, fullmatch, finditer, sub, subn, groupindex


class PatternError(ValueError):
    """A pattern RE2 cannot compile, or one too large to run fast; the message says what to do."""


def _options(ignore_case: bool, dot_nl: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error comes back as an exception; no stderr noise
    options.case_sensitive = not ignore_case
    options.dot_nl = dot_nl
    return options


@lru_cache(maxsize=2048)
def compile(pattern: str | bytes, *, ignore_case: bool = False, dot_nl: bool = False) -> Pattern:  # noqa: A001
    """The RE2 form of `pattern` (cached). Raises PatternError naming what to change."""
    try:
        compiled = re2.compile(pattern, _options(ignore_case, dot_nl))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        hint = ""
        if isinstance(pattern, bytes):
            pattern = pattern.decode("utf-8", "replace")
        if "(?=" in pattern or "(?!" in pattern or "(?<" in pattern.replace("(?<name>", "").replace("(?P<", ""):
            hint = ("; RE2 has no lookahead/lookbehind: move a negative condition to `exclude:` "
                    "or drop it when a \\b already implies it")
        elif "\\1" in pattern or "(?P=" in pattern:
            hint = "; RE2 has no backreferences: match each alternative explicitly"
        raise PatternError(f"{reason}{hint}") from None
    size = compiled.programsize
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"compiles to {size} RE2 instructions (budget {MAX_PROGRAM_SIZE}): too large to stay fast on "
            "adversarial lines; shorten bounded gaps (.{0,400}? counts 400 times) or split the pattern"
        )
    return compiled


def is_linear(pattern: object) -> bool:
    """Whether `pattern` runs on the linear-time engine (an RE2 pattern, not a Python `re` one)."""
    return isinstance(pattern, (re2._Regexp, GapPattern))


# ------------------------------------------------------------------ bounded gaps
#
# `A.{0,400}?B` ("A, then B within 400 characters") is how rules say two parts of a message
# belong together. RE2 runs it in linear time, but on a line that scatters A's and B's (an
# adversary's, or a dense log) its DFA must track every A seen in the last 400 characters;
# the state cache overflows, RE2 falls back to its NFA and runs at ~1 MB/s. A rule only needs
# to know whether the line matches, so such a pattern is split at its gap and searched as
# parts: find an A, the first B after it, and if that B is too far, the last A before that B
# (one anchored `(?s:.*)(A)` search). Each round moves past a stretch of the line longer than
# the gap, so the work stays linear with a small constant, at DFA speed (bench/matching.py).

_MAX_PART_CHARS = 256  # how far back an A that may pair with a B can start (longer A's are rare)


def _top_level(pattern: str) -> tuple[list[str], list[list[tuple[int, int]]], list[list[str]]] | None:
    """Split `pattern` at top-level `|` and, in each branch, at top-level `.{lo,hi}?` gaps.
    Returns (branches, gaps per branch, parts per branch), or None when a global inline flag
    (e.g. a leading `(?i)`) would not carry over to the parts."""
    branches: list[list[str]] = [[""]]
    gaps: list[list[tuple[int, int]]] = [[]]
    depth, i, n = 0, 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            branches[-1][-1] += pattern[i:i + 2]
            i += 2
            continue
        if char == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            branches[-1][-1] += pattern[i:j + 1]
            i = j + 1
            continue
        if char == "(":
            if depth == 0 and pattern.startswith("(?", i) and i + 2 < n and pattern[i + 2] not in ":P<=!":
                close = pattern.find(")", i)
                if ":" not in pattern[i:close]:
                    return None  # (?i) and the like apply to the rest of the pattern
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and char == "|":
            branches.append([""])
            gaps.append([])
            i += 1
            continue
        elif depth == 0 and char == "." and pattern.startswith(".{", i):
            close = pattern.find("}", i)
            bounds = pattern[i + 2:close].split(",") if close != -1 else []
            if len(bounds) == 2 and all(b.isdigit() for b in bounds):
                end = close + 1
                if end < n and pattern[end] == "?":
                    end += 1
                gaps[-1].append((int(bounds[0]), int(bounds[1])))
                branches[-1].append("")
                i = end
                continue
        branches[-1][-1] += char
        i += 1
    return ["".join(b) for b in branches], gaps, branches


class _Chain:
    """Parts of one branch with the gaps between them, searched over UTF-8 bytes."""

    def __init__(self, parts: list[str], gaps: list[tuple[int, int]], ignore_case: bool) -> None:
        self.first = compile(parts[0].encode(), ignore_case=ignore_case)
        self.last_first = compile(b"(?s:.*)(" + parts[0].encode() + b")", ignore_case=ignore_case)
        self.lo, self.hi = gaps[0] if gaps else (0, 0)
        self.rest = _Chain(parts[1:], gaps[1:], ignore_case) if len(parts) > 1 else None

    def _fits(self, data: bytes, end: int, start: int) -> bool:
        if start - end < self.lo:
            return False
        between = data[end:start]
        return b"\n" not in between and len(between.decode("utf-8", "replace")) <= self.hi

    def search(self, data: bytes, pos: int, ascii_only: bool) -> tuple[int, int] | None:
        if self.rest is None:
            match = self.first.search(data, pos)
            return None if match is None else match.span()
        reach = self.hi if ascii_only else 4 * self.hi
        while True:
            a = self.first.search(data, pos)
            if a is None:
                return None
            b = self.rest.search(data, a.end() + self.lo, ascii_only)
            if b is None:
                return None
            if self._fits(data, a.end(), b[0]):
                return a.start(), b[1]
            window = max(a.start() + 1, b[0] - reach - _MAX_PART_CHARS)
            if window <= b[0] - self.lo:
                last = self.last_first.match(data, window, b[0] - self.lo)
                if last is not None and self._fits(data, last.end(1), b[0]):
                    return last.start(1), b[1]
            pos = max(a.start() + 1, b[0] - self.lo + 1)


class _Found:
    """What GapPattern.search returns on a match: truthy, no groups."""

    def groupdict(self) -> dict[str, str | None]:
        return {}


_FOUND = _Found()


class GapPattern:
    """A rule pattern with top-level bounded gaps, searched part by part (see above).

    Only `search` (does the line match?) is offered: that is all a rule's pattern is used for,
    and the patterns with named groups (the structured line) have no gaps."""

    def __init__(self, pattern: str, ignore_case: bool) -> None:
        self.pattern = pattern
        split = _top_level(pattern)
        assert split is not None
        branches, gaps, parts = split
        plain = [b for b, g in zip(branches, gaps) if not g]
        self._plain = compile("|".join(f"(?:{b})" for b in plain), ignore_case=ignore_case) if plain else None
        self._chains = [_Chain(p, g, ignore_case) for p, g in zip(parts, gaps) if g]

    def search(self, text: str) -> _Found | None:
        if self._plain is not None and self._plain.search(text) is not None:
            return _FOUND
        data = text.encode("utf-8", "surrogatepass")
        ascii_only = data.isascii()
        for chain in self._chains:
            if chain.search(data, 0, ascii_only) is not None:
                return _FOUND
        return None


def _has_groups(pattern: str) -> bool:
    """Whether the pattern may capture (then it runs whole, so its groups are there to read)."""
    index = pattern.find("(")
    while index != -1:
        if (index == 0 or pattern[index - 1] != "\\") and not pattern.startswith("(?", index) \
                or pattern.startswith("(?P<", index) or pattern.startswith("(?<", index):
            return True
        index = pattern.find("(", index + 1)
    return False


@lru_cache(maxsize=2048)
def compile_rule(pattern: str, *, ignore_case: bool = True) -> Pattern:
    """A rule's pattern: split at its top-level bounded gaps when it has any (GapPattern: only its
    parts are compiled, each within the size budget), else plain RE2. Raises PatternError."""
    split = _top_level(pattern)
    if split is None or not any(split[1]) or _has_groups(pattern):
        return compile(pattern, ignore_case=ignore_case)
    return GapPattern(pattern, ignore_case)


@lru_cache(maxsize=256)
def _bytes_twin(pattern: Pattern) -> Pattern:
    source = pattern.pattern
    options = pattern.options
    return compile(source.encode("utf-8"), ignore_case=not options.case_sensitive, dot_nl=options.dot_nl)


def replace(pattern: Pattern, repl: str | Callable[[str], str], text: str) -> str:
    """`pattern.sub` for a replacement that needs only the matched text (a constant, or a function
    of the match's text). ASCII text is matched as bytes, where the binding's work per match is a
    third of that on str: what a line dense with matches costs."""
    if not text.isascii():
        return pattern.sub(repl if isinstance(repl, str) else (lambda m: repl(m.group(0))), text)
    out: list[str] = []
    last = 0
    for match in _bytes_twin(pattern).finditer(text.encode("ascii")):
        start, end = match.span()
        out.append(text[last:start])
        out.append(repl if isinstance(repl, str) else repl(text[start:end]))
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def cap(line: str) -> str:
    """The part of one line that is matched."""
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS]
