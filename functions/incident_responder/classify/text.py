"""Line-level helpers: masking, noise, tracebacks, and literal extraction for the prefilter."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from re import _constants as _sre_c  # Python 3.11+ (pyproject); sre_constants is the deprecated alias
from re import _parser as _sre_parse
from typing import Iterable, Iterator

import incident_responder.matching as matching
from incident_responder.matching import cap, replace

# Python's `re` appears here only to read the parse tree of a rule's own pattern (trusted
# data, for the prefilter's literals); every pattern that runs on log text is RE2
# (incident_responder.matching): linear in the line, whatever the line.

# Masks turn the parts of a line that differ between incidents (ids, digests, accounts,
# install prefixes, home directories) into stable tokens, so a rule written for one log
# matches the same failure elsewhere. Each mask has a cheap substring guard: masking runs
# on every candidate line, and most lines need only one or two of them.
_TIME = matching.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_DIGEST = matching.compile(r"sha256:[0-9a-fA-F]{64}")
_UUID = matching.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# RE2 has no lookaround. A hex word must hold a letter and a digit: decided in _number_token
# from the whole word the pattern takes. An account id is a run of exactly 12 digits with no
# digit or dot on either side: the pattern takes the character before it (given back), and
# _number_token looks at the character after it.
_NUMBERS = matching.compile(
    r"(?P<hex>\b[0-9a-fA-F]{16,}\b)"
    r"|(?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b)"
    r"|(?P<account>(?:^|[^\d.])\d{12})"
)
_SITE_PACKAGES = matching.compile(r"(?:[A-Za-z]:)?/[^\s'\":]*?/(?:site|dist)-packages/")
_HOME = matching.compile(r"(?:[A-Za-z]:)?/(?:home|Users)/[^/\s'\"]+")
_WINDOWS_PATH = matching.compile(r"[A-Za-z]:\\\\?[^\s'\"]*")
_ANY_DIGIT = matching.compile(r"\d")
_HEX_LETTERS = frozenset("abcdefABCDEF")


def _posix_path(path: str) -> str:
    return path.replace("\\\\", "/").replace("\\", "/")


def _number_token(match) -> str:
    kind, run = match.lastgroup, match.group(0)
    if kind == "hex":
        has_letter = not _HEX_LETTERS.isdisjoint(run)
        has_digit = _ANY_DIGIT.search(run) is not None
        return "<hex>" if has_letter and has_digit else run
    if kind == "account":
        after = match.string[match.end():match.end() + 1]
        if after.isdigit() or after == ".":
            return run
        return run[:-12] + "<account>"
    return f"<{kind}>"


def mask(line: str) -> str:
    """The line with incident-specific parts replaced by tokens: <time>, sha256:<digest>,
    <uuid>, <hex>, <account>, <ip>, <site-packages>/, ~ (a home directory)."""
    if ":\\" in line:  # Windows paths read like POSIX ones (only there: "\n" in JSON must stay)
        line = replace(_WINDOWS_PATH, _posix_path, line)
    if "sha256:" in line:
        line = replace(_DIGEST, "sha256:<digest>", line)
    if "-" in line:
        if ":" in line:
            line = replace(_TIME, "<time>", line)
        line = replace(_UUID, "<uuid>", line)
    if _ANY_DIGIT.search(line):
        line = _NUMBERS.sub(_number_token, line)
    if "-packages/" in line:
        line = replace(_SITE_PACKAGES, "<site-packages>/", line)
    if "/home/" in line or "/Users/" in line:
        line = replace(_HOME, "~", line)
    return line


# Lines that describe retries, progress or warnings: they rarely decide a root cause, so
# rules skip them unless they opt in (match_noise), and then at a discount.
_NOISE_PARTS = (
    r"\b(?:User|Deprecation|Future|Runtime|Resource|Pending)?Warning\b\s*:",  # Python warnings
    r"^\W*(?:\[?\s*)?warn(?:ing)?\b[\]:\s]",  # "WARNING: ...", "[warn] ..."
    # log-level columns are upper case: a prose "warn others" or "warning you" is not one (wave 8, mg011)
    r"\s(?-i:WARN|WARNING|Warning)\s+[-\w.:\[\]]*\s",
    r"^\s*(?:npm|yarn|pnpm) warn\b",
    r"\bRetrying\s*\(Retry\(",  # pip / urllib3 retries
    r"\bretry(?:ing)?\s+(?:in|after)\s+\d",
    r"\battempt\s+\d+\s*(?:/|of)\s*\d+",
    r"\d+%\|",  # tqdm bars
    r"\d+(?:\.\d+)?\s*it/s\]",
    r"\bDownloading\b.*\d+%",
)
NOISE = matching.compile("|".join(_NOISE_PARTS), ignore_case=True)


_NOISE_HINTS = ("warn", "retry", "retrying", "attempt", "%|", "it/s", "downloading")


def is_noise(line: str) -> bool:
    line = cap(line)
    lower = line.lower()
    if not any(hint in lower for hint in _NOISE_HINTS):
        return False
    return NOISE.search(line) is not None


# ------------------------------------------------------------------ tracebacks

_FRAME = matching.compile(r'^\s*File "[^"]*", line \d+')
_EXCEPTION = matching.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")


@dataclass
class Frame:
    line: int  # 1-based line of 'File "...", line N, in f'
    text: str
    code_line: int | None = None  # the source line printed under it, if any
    code: str | None = None

    @property
    def matchable(self) -> str:
        """The frame as rules see it: the File line, then its code line."""
        return self.text if self.code is None else f"{self.text}\n{self.code}"


@dataclass
class Traceback:
    """One parsed Python traceback: its frames and its final exception."""

    start: int  # 1-based line of "Traceback (most recent call last):"
    frames: list[Frame] = field(default_factory=list)
    exception_line: int | None = None
    exception: str | None = None  # "Type: message"

    @property
    def last_frame(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    @property
    def deciding_line(self) -> int:
        if self.exception_line is not None:
            return self.exception_line
        return self.frames[-1].line if self.frames else self.start


def parse_traceback(lines: Iterable[str], start_line: int, marker_col: int) -> Traceback:
    """Parse a traceback from the lines following its header.

    The first line is the header; `marker_col` is where "Traceback" starts in it, so a
    prefix shared by every line (a container name, a log timestamp) can be stripped. Lines
    are read only up to the traceback's end, so `lines` may be a lazy iterator.
    """
    it: Iterator[str] = iter(lines)
    prefix = next(it)[:marker_col]
    tb = Traceback(start=start_line)
    for offset, raw in enumerate(it, start=1):
        body = raw[len(prefix):] if prefix and raw.startswith(prefix) else raw
        if _FRAME.match(body):
            tb.frames.append(Frame(start_line + offset, body.strip()))
            continue
        stripped = body.strip()
        if not stripped or body[:1] in (" ", "\t") or stripped.startswith("[Previous line repeated"):
            frame = tb.frames[-1] if tb.frames else None
            if frame is not None and frame.code is None and stripped and not set(stripped) <= {"^", "~", " "}:
                frame.code_line, frame.code = start_line + offset, stripped
            continue
        match = _EXCEPTION.match(stripped)
        if match and (match.group(2) is not None or match.group(1)[:1].isupper()):
            tb.exception_line = start_line + offset
            tb.exception = stripped
        break
    return tb


# ------------------------------------------------------------------ prefilter literals


@lru_cache(maxsize=1024)
def parse_pattern(pattern: str):
    """The parse tree of a rule pattern (as the engine compiles it: case-insensitive), parsed once
    for the catalog's checks and its literal extraction. Callers only read it."""
    return _sre_parse.parse(pattern, re.IGNORECASE)


def required_literals(pattern: str) -> list[str] | None:
    """Literal substrings of which at least one appears in every match of `pattern`.

    Used to build the prefilter, so a rule author writes regexes and never keywords.
    Returns None when no literal of 3+ characters is certain (the author must then give
    `keywords`). The literals are lowercased: the prefilter runs on lowercased text.
    """
    try:
        parsed = parse_pattern(pattern)
    except re.error:
        return None
    best = _best_in_sequence(list(parsed))
    if best is None or min(len(s) for s in best) < 3:
        return None
    return sorted({s.lower() for s in best})


def _score(candidate: list[str] | None) -> int:
    return -1 if not candidate else min(len(s) for s in candidate)


def _best_in_sequence(items: list) -> list[str] | None:
    best: list[str] | None = None
    run: list[str] = []

    def consider(candidate: list[str] | None) -> None:
        nonlocal best
        if _score(candidate) > _score(best):
            best = candidate

    for op, av in items:
        letter = _as_letter(op, av)
        if letter is not None:
            run.append(letter)
            continue
        if run:
            consider(["".join(run)])
            run = []
        if op is _sre_c.SUBPATTERN:
            consider(_best_in_sequence(list(av[3])))
        elif op is _sre_c.BRANCH:
            alternatives = [_best_in_sequence(list(branch)) for branch in av[1]]
            if all(alternatives):
                consider([s for alt in alternatives for s in alt])  # type: ignore[union-attr]
        elif op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT) and av[0] >= 1:
            consider(_best_in_sequence(list(av[2])))
    if run:
        consider(["".join(run)])
    return best


def _as_letter(op, av) -> str | None:
    if op is _sre_c.LITERAL:
        return chr(av)
    if op is _sre_c.IN and av and all(kind is _sre_c.LITERAL for kind, _ in av):
        # A class such as [Ee] reads as one letter under the case-insensitive prefilter.
        letters = {chr(v).lower() for _, v in av}
        if len(letters) == 1:
            return letters.pop()
    return None
