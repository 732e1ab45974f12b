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
from typing import Any

import re2

#: Longest part of one line that rules and masks read (a FailureReason is at most 1,024).
MAX_LINE_CHARS = 20_000

#: Budget on a compiled pattern's program size (RE2 instructions). RE2's DFA runs in
#: constant time per byte; when a pattern's DFA outgrows its memory budget RE2 falls back
#: to its NFA, whose time per byte grows with the program size. A bounded program keeps even
#: that fallback fast (bench/matching.py prints each pattern's worst case).
MAX_PROGRAM_SIZE = 10_000

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
def compile(pattern: str, *, ignore_case: bool = False, dot_nl: bool = False) -> Pattern:  # noqa: A001
    """The RE2 form of `pattern` (cached). Raises PatternError naming what to change."""
    try:
        compiled = re2.compile(pattern, _options(ignore_case, dot_nl))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        hint = ""
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
    return isinstance(pattern, re2._Regexp)


def cap(line: str) -> str:
    """The part of one line that is matched."""
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS]
