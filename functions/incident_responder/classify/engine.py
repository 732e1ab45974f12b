"""The classifier: find the lines that rules recognise, pick the root cause, explain it.

Reasoning, in order:
1. A structured failure line written by our own training image (`[category/cause] message`,
   possibly after SageMaker's `AlgorithmError: `) decides outright, but only inside the
   FailureReason (the first `trusted_lines` lines of the text, where only the image can put
   it); anywhere else it is an ordinary log line.
2. Otherwise every rule hit is ranked by the rule's priority (specific causes above the
   generic symptoms they produce: a `libcudart` ImportError is a CUDA problem before it is
   an import problem) and then by position: the earliest error is the likeliest cause,
   later ones are usually its consequences. Hits on warning/retry/progress lines count
   only for rules that opt in, and then below real errors.
3. No hit: the learned fallback (fallback.py) may guess a category, saying so; when it abstains,
   `unknown`, with the first error-looking lines as evidence for a human.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from string import Formatter

from incident_responder.classify import fallback, posted
from incident_responder.classify.catalog import TRACEBACK_KEY, Catalog, CompiledRule, load_catalog
from incident_responder.classify.schema import TEMPLATE_NAMES
from incident_responder.classify.text import Traceback, is_noise, mask, parse_traceback
import incident_responder.matching as matching
from incident_responder.matching import MAX_LINE_CHARS
from incident_responder.models import GUIDE_CATEGORIES, Category, Diagnosis, EvidenceLine

EVIDENCE_CHARS = 300
MAX_EVIDENCE = 5
MAX_TRACEBACKS = 200
MAX_MATCH_CHARS = MAX_LINE_CHARS  # a single huge line (a JSON blob) is matched on its first 20,000 characters
NOISE_PRIORITY_PENALTY = 30
NOISE_CONFIDENCE_FACTOR = 0.8
COMPETITOR_MARGIN = 10
COMPETITOR_CONFIDENCE_FACTOR = 0.8
_EDGE_BYTES = 256 * 1024
_MEMO_LINES = 10_000
QUOTE_ORIGINAL_CHARS = 256 * 1024
_UNKNOWN_LINES = 1_000  # error-looking lines read for the evidence of an unknown cause, at each end of the text
# An error word and the rest of its line: one match per line, however many error words the line
# holds (a 1 MB line of "error error ..." is one match, not 170,000 match objects).
_ERRORISH = matching.compile(r"\b(?:error|exception|fatal|failed|failure|denied|traceback)\b[^\n]*",
                             ignore_case=True)
#: EvidenceLine.source of the note that says a line was matched on its first part only.
CAP_SOURCE = "matching_cap"


@dataclass
class Hit:
    rule: CompiledRule
    line: int
    text: str
    noise: bool
    groups: dict[str, str | None] = field(default_factory=dict)
    support: list[tuple[int, str]] = field(default_factory=list)

    @property
    def priority(self) -> int:
        return self.rule.spec.priority - (NOISE_PRIORITY_PENALTY if self.noise else 0)

    @property
    def rank(self) -> tuple[int, int]:
        return (self.priority, -self.line)


class _Document:
    """The text as UTF-8 bytes (the prefilter scans bytes), with line access by byte offset.

    `bytes.lower()` lowercases ASCII only, so offsets in the lowered copy stay aligned.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8", "surrogatepass")
        self.lower = self.data.lower()
        self.capped: dict[int, int] = {}  # line number -> UTF-8 bytes, for each line matched on its first part only
        self.view: posted.View = posted.View(text)
        self.original: str | None = None  # the text the view was made from, when they differ
        # lines that rules' patterns matched and their `exclude` refused, and no rule took (a known
        # non-deciding form of a message): view line numbers while matching, the text's own after find_hits
        self.refused: set[int] = set()
        self.refused_view: set[int] = set()  # the same, as view lines (added lines included)
        self._original_lines: list[str] | None = None

    def quote(self, view_line: int, shown: str) -> str:
        """What evidence quotes for a view line: the text's own line (without colour codes) for
        a line of the text, the decoded or joined line for an added one. In a text longer than
        QUOTE_ORIGINAL_CHARS, a line as rules read it (finding a line of the text costs a split of it)."""
        if self.original is None or self.view.is_extra(view_line) or len(self.original) > QUOTE_ORIGINAL_CHARS:
            return shown
        if self._original_lines is None:
            self._original_lines = self.original.split("\n")
        line = self.view.line(view_line)
        if not 0 < line <= len(self._original_lines):
            return shown
        return posted.shown_line(self._original_lines[line - 1][:MAX_MATCH_CHARS])

    def capped_line(self, line_no: int, text: str, size: int) -> str:
        """`text` (a line of `size` bytes) cut to what rules read, the cut recorded (it becomes evidence)."""
        if len(text) > MAX_MATCH_CHARS:
            self.capped.setdefault(line_no, size)
            return text[:MAX_MATCH_CHARS]
        return text

    def line_bounds(self, pos: int) -> tuple[int, int]:
        start = self.data.rfind(b"\n", 0, pos) + 1
        end = self.data.find(b"\n", pos)
        return start, (len(self.data) if end == -1 else end)

    def decode(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8", "replace")

    def line_text(self, start: int, end: int) -> str:
        return self.decode(start, end).rstrip("\r")

    def following_lines(self, start: int, count: int, line_no: int) -> Iterator[str]:
        """Up to `count` lines from `start` (line `line_no`), decoded one at a time as the caller
        reads them, each cut to what rules read."""
        pos = start
        for offset in range(count):
            if pos > len(self.data):
                break
            end = self.data.find(b"\n", pos)
            end = len(self.data) if end == -1 else end
            yield self.capped_line(line_no + offset, self.line_text(pos, min(end, pos + 4 * MAX_MATCH_CHARS + 4)),
                                   end - pos)
            pos = end + 1

    def region(self, start: int, end: int, window: int, line_no: int) -> str:
        """The lines within `window` lines of the line [start, end) (line `line_no`), each cut."""
        lo, first = start, line_no
        for _ in range(window):
            if lo <= 0:
                break
            lo = self.data.rfind(b"\n", 0, lo - 1) + 1
            first -= 1
        hi = end
        for _ in range(window):
            nxt = self.data.find(b"\n", hi + 1)
            if nxt == -1:
                hi = len(self.data)
                break
            hi = nxt
        lines = []
        pos = lo
        while pos <= hi:
            stop = self.data.find(b"\n", pos, hi)
            stop = hi if stop == -1 else stop
            text = self.decode(pos, min(stop, pos + 4 * MAX_MATCH_CHARS + 4))
            lines.append(self.capped_line(first + len(lines), text, stop - pos))
            pos = stop + 1
        return "\n".join(lines)


def _candidates(doc: _Document, catalog: Catalog) -> tuple[list[tuple[int, int, int, set[int]]], list[tuple[int, int]]]:
    """Lines that contain a prefilter keyword, with the rules to try; and traceback headers.

    One non-overlapping pass over the whole text finds the candidate lines; each of those
    (few) lines is then searched with overlapping matches for its full set of keywords.
    Returns ([(line_no, start, end, rule indexes)], [(line_start, line_no)]).
    """
    automaton = catalog.automaton
    keywords = catalog.keywords
    lines: list[tuple[int, int, int, set[int]]] = []
    tracebacks: list[tuple[int, int]] = []
    line_no, last, line_end = 1, 0, -1
    seen: dict[bytes, tuple[set[int], bool]] = {}  # a repeated line is searched once
    for _, pos, _ in automaton.find_matches_as_indexes(doc.lower, overlapping=False):
        if pos < line_end:
            continue  # this line is already a candidate
        start, line_end = doc.line_bounds(pos)
        line_no += doc.data.count(b"\n", last, start)
        last = start
        line = doc.lower[start:line_end]
        known = seen.get(line)
        if known is None:
            rules: set[int] = set()
            has_traceback = False
            for index, _, _ in automaton.find_matches_as_indexes(line, overlapping=True):
                keyword = keywords[index]
                has_traceback = has_traceback or keyword == TRACEBACK_KEY
                rules.update(catalog.line_rules.get(keyword, ()))
            known = (rules, has_traceback)
            if len(seen) < _MEMO_LINES:
                seen[line] = known
        rules, has_traceback = known
        if has_traceback:
            tracebacks.append((start, line_no))
        if rules:
            lines.append((line_no, start, line_end, rules))
    return lines, tracebacks


def _nearby_ok(rule: CompiledRule, doc: _Document, start: int, end: int, line_no: int) -> bool:
    if not rule.require_nearby and not rule.exclude_nearby:
        return True
    region = mask(doc.region(start, end, rule.spec.window, line_no))
    if rule.require_nearby and not any(p.search(region) for p in rule.require_nearby):
        return False
    return not any(p.search(region) for p in rule.exclude_nearby)


def _line_hits(doc: _Document, catalog: Catalog, candidates) -> list[Hit]:
    hits: list[Hit] = []
    # A rule's earliest real hits decide for it; once it has enough for the evidence, later
    # lines cannot change the outcome. With the per-text memo below, this bounds the work on
    # a log that repeats one error a million times.
    real_hits: dict[int, int] = {}
    memo: dict[str, tuple[bool, list[tuple[int, dict[str, str | None]]], bool]] = {}
    for line_no, start, end, rule_indexes in candidates:
        pending = [i for i in sorted(rule_indexes) if real_hits.get(i, 0) < MAX_EVIDENCE]
        if not pending:
            continue
        # A line longer than the cap is decoded only as far as the cap needs (4 bytes a character).
        raw = doc.line_text(start, min(end, start + 4 * MAX_MATCH_CHARS + 4))
        if end - start > MAX_MATCH_CHARS:
            doc.capped_line(line_no, raw, end - start)
        known = memo.get(raw)
        if known is None:
            known = _match_line(raw, pending, catalog)
            if len(memo) < _MEMO_LINES:
                memo[raw] = known
        noise, matched, refused = known
        if refused:
            doc.refused.add(line_no)
        for index, groups in matched:
            if index not in pending:
                continue
            rule = catalog.rules[index]
            if not _nearby_ok(rule, doc, start, end, line_no):
                continue
            hits.append(Hit(rule, line_no, raw, noise, groups))
            if not noise:
                real_hits[index] = real_hits.get(index, 0) + 1
    return hits


def _match_line(raw: str, rule_indexes: list[int], catalog: Catalog) -> tuple[bool, list[tuple[int, dict]], bool]:
    """Which of the rules match this line on its own (nearby conditions are checked per occurrence), and
    whether rules' patterns matched it only for their `exclude` to refuse it, and no rule took it."""
    masked = mask(raw[:MAX_MATCH_CHARS])
    noise = is_noise(raw[:MAX_MATCH_CHARS])
    matched = []
    refused = False
    for index in rule_indexes:
        rule = catalog.rules[index]
        if noise and not rule.spec.match_noise:
            continue
        match = next((m for m in (p.search(masked) for p in rule.patterns) if m), None)
        if match is None:
            continue
        if any(p.search(masked) for p in rule.exclude):
            refused = True
            continue
        matched.append((index, match.groupdict()))
    # refused only when no rule takes the line: a line one rule leaves to a more specific one is not ruled out
    return noise, matched, refused and not matched


def _tracebacks(doc: _Document, headers: list[tuple[int, int]]) -> list[Traceback]:
    parsed = []
    for start, line_no in headers[:MAX_TRACEBACKS]:
        line_start, line_end = doc.line_bounds(start)
        header = doc.line_text(line_start, min(line_end, line_start + 4 * MAX_MATCH_CHARS + 4))[:MAX_MATCH_CHARS]
        column = max(header.lower().find(TRACEBACK_KEY), 0)
        parsed.append(parse_traceback(doc.following_lines(start, 400, line_no), line_no, column))
    return parsed


def _traceback_hits(catalog: Catalog, tracebacks: list[Traceback]) -> list[Hit]:
    hits = []
    for tb in tracebacks:
        frame = tb.last_frame
        exception = mask(tb.exception) if tb.exception is not None else None
        frame_text = mask(frame.matchable) if frame is not None else None
        for index in catalog.traceback_rules:
            rule = catalog.rules[index]
            if rule.tb_exception is not None:
                if exception is None or not rule.tb_exception.search(exception):
                    continue
            if exception is not None and any(p.search(exception) for p in rule.exclude):
                continue
            if rule.tb_last_frame is not None:
                if frame_text is None or not rule.tb_last_frame.search(frame_text):
                    continue
            support = []
            if frame is not None:
                support.append((frame.line, frame.text))
                if frame.code_line is not None and frame.code is not None:
                    support.append((frame.code_line, frame.code))
            if tb.exception_line is not None and tb.exception is not None:
                line, text = tb.exception_line, tb.exception
            elif frame is not None:
                line, text = frame.line, frame.text
            else:
                continue
            hits.append(Hit(rule, line, text, False, {}, [s for s in support if s[0] != line]))
    return hits


def fill_command(template: str, names: Mapping[str, str]) -> str:
    out = []
    for literal, name, _, _ in Formatter().parse(template):
        out.append(literal)
        if name is not None:
            value = names.get(name)
            out.append(shlex.quote(value) if value else f"<{name}>")
    return "".join(out)


def _check_names(names: Mapping[str, str] | None) -> dict[str, str]:
    if names is None:
        return {}
    if not isinstance(names, Mapping):
        raise TypeError(f"names must be a mapping of {sorted(TEMPLATE_NAMES)} to strings, got {type(names).__name__}")
    unknown = sorted(set(names) - TEMPLATE_NAMES)
    if unknown:
        raise ValueError(
            f"unknown name(s) {unknown} for the investigation commands; use only {sorted(TEMPLATE_NAMES)}"
        )
    clean = {}
    for key, value in names.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"names[{key!r}] must be a string, got {type(value).__name__}; convert it with str()")
        clean[key] = value
    return clean


def _line_evidence(line: int, text: str) -> EvidenceLine:
    text = text.strip()
    if len(text) > EVIDENCE_CHARS:
        text = text[: EVIDENCE_CHARS - 1] + "…"
    return EvidenceLine(line=line, text=text, source="input")


def _merge(*lists: tuple[str, ...] | list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        for item in items:
            seen.setdefault(item, None)
    return list(seen)


def _unknown(doc: _Document, catalog: Catalog, names: Mapping[str, str], tracebacks: list[Traceback],
             lead: fallback.Guess | None = None) -> Diagnosis:
    info = catalog.categories[Category.unknown]
    evidence: list[EvidenceLine] = []
    for tb in tracebacks[-1:]:
        if tb.exception_line is not None and tb.exception:
            evidence.append(_line_evidence(tb.exception_line, tb.exception))
    if not evidence:
        text = doc.text
        head = text[:_EDGE_BYTES]
        tail_start = max(len(head), len(text) - _EDGE_BYTES)
        for base, chunk in ((0, head), (tail_start, text[tail_start:])):
            line_end = -1  # each line is looked at once, however many error words it holds
            looked = 0
            for match in _ERRORISH.finditer(chunk):
                pos = base + match.start()
                if pos < line_end:
                    continue
                looked += 1
                if looked > _UNKNOWN_LINES:
                    break
                start = text.rfind("\n", 0, pos) + 1
                end = text.find("\n", pos)
                line_end = len(text) if end == -1 else end
                raw = text[start:min(line_end, start + MAX_MATCH_CHARS)].rstrip("\r")
                if not is_noise(raw):
                    view_line = text.count("\n", 0, start) + 1
                    line_no = doc.view.line(view_line)
                    if all(e.line != line_no for e in evidence):
                        evidence.append(_line_evidence(line_no, doc.quote(view_line, raw)))
                if len(evidence) >= 3:
                    break
            if len(evidence) >= 3:
                break
    title = "No rule in the catalog explains this failure; read the evidence lines and the log"
    remediation = list(info.remediation)
    templates = list(info.commands)
    leaning = next((i for c, i in catalog.categories.items() if lead is not None and c.value == lead.predicted), None)
    if lead is not None and leaning is not None:
        # The answer stays `unknown` (the lead is below the confidence the fallback answers at); the engineer still
        # learns where to look first, and the category's own checks come after the generic ones.
        title = (f"No rule in the catalog explains this failure; its wording is nearest {lead.predicted} "
                 f"(a lead, not a diagnosis: learned fallback p={lead.confidence:.2f})")
        remediation.insert(0, f"Lead: a model trained on labelled public logs finds this log's wording nearest "
                              f"{lead.predicted} ({leaning.title.rstrip('.')}), driven by {fallback.drivers(lead)}, "
                              f"but below the confidence at which it answers. On failures nobody had classified, "
                              f"such leads were {fallback.LEAD_RECORD}: check {lead.predicted} first, from the "
                              f"evidence lines, then read the log.")
        templates = _merge(info.commands, leaning.commands)
    return Diagnosis(
        category=Category.unknown,
        cause="no_matching_rule",
        confidence=0.0,
        title=title,
        rule_id=None,
        evidence=evidence,
        remediation=remediation,
        commands=[fill_command(c, names) for c in templates],
    )


def _diagnose(best: Hit, hits: list[Hit], catalog: Catalog, names: Mapping[str, str]) -> Diagnosis:
    rule = best.rule
    category, cause, title = rule.category, rule.cause, rule.spec.title
    confidence = rule.spec.confidence
    message = ""
    if rule.spec.from_groups:
        named = (best.groups.get("category") or "").strip()
        cause = (best.groups.get("cause") or cause).strip()
        message = (best.groups.get("message") or "").strip()
        title = message[:200] if len(message) >= 3 else title
        if named in GUIDE_CATEGORIES:
            category = Category(named)
        else:
            category, confidence = Category.unknown, confidence * 0.5
    else:
        if best.noise:
            confidence *= NOISE_CONFIDENCE_FACTOR
        rivals = [
            h for h in hits
            if h.rule.category is not category and h.priority >= best.priority - COMPETITOR_MARGIN
        ]
        if rivals:
            confidence *= COMPETITOR_CONFIDENCE_FACTOR
    info = catalog.categories.get(category) or catalog.categories[Category.unknown]
    # The training image writes "<problem>: <remedy>" for the person on call: show it first.
    reported = [f"The training image reports: {message}"] if rule.spec.from_groups and len(message) >= 3 else []
    lines: dict[int, str] = {best.line: best.text}
    for line, text in best.support:
        lines.setdefault(line, text)
    for other in sorted(hits, key=lambda h: h.line):
        if len(lines) >= MAX_EVIDENCE:
            break
        if other.rule.category is category and other.line not in lines and not other.noise:
            lines.setdefault(other.line, other.text)
    evidence = [_line_evidence(line, lines[line]) for line in sorted(lines)]
    return Diagnosis(
        category=category,
        cause=cause,
        confidence=round(min(max(confidence, 0.0), 1.0), 3),
        title=title,
        rule_id=rule.id,
        evidence=evidence,
        remediation=_merge(reported, rule.spec.remediation, info.remediation),
        commands=[fill_command(c, names) for c in _merge(rule.spec.commands, info.commands)],
    )


def find_hits(text: str, catalog: Catalog) -> tuple[list[Hit], list[Traceback], _Document]:
    """Every rule hit in `text` (for the engine and for the catalog's overlap report).

    Rules read the text's view (posted.view: the log as shown, with decoded and joined lines
    added); hit, traceback and cap line numbers are the text's own lines."""
    shown = posted.view(text)
    doc = _Document(shown.text)
    candidates, headers = _candidates(doc, catalog)
    hits = _line_hits(doc, catalog, candidates)
    doc.view = shown
    if shown.changed:
        doc.original = text
        for hit in hits:
            hit.text = doc.quote(hit.line, hit.text)
    tracebacks = _tracebacks(doc, headers) if headers else []
    if tracebacks and catalog.traceback_rules:
        hits.extend(_traceback_hits(catalog, tracebacks))
    doc.refused_view = doc.refused
    doc.refused = {shown.line(line) for line in doc.refused if not shown.is_extra(line)}
    if not shown.identity:
        hits = _on_text_lines(hits, shown)
        tracebacks = [_traceback_on_text_lines(tb, shown) for tb in tracebacks]
        doc.capped = {shown.line(line): size for line, size in sorted(doc.capped.items(), reverse=True)}
    return hits, tracebacks, doc


def _on_text_lines(hits: list[Hit], shown: posted.View) -> list[Hit]:
    """Hits numbered by the text's lines. A hit on an added line (a decoded string, a joined
    wrapped run) stays only when no line it comes from matched the same rule on its own (a
    joined line adds only matches across the cut); the structured failure line decides only
    from a line of the text itself."""
    alone = {(id(h.rule), shown.line(h.line)) for h in hits if not shown.is_extra(h.line)}
    kept = []
    for hit in hits:
        if shown.is_extra(hit.line):
            if hit.rule.spec.from_groups or any((id(hit.rule), line) in alone for line in shown.covers(hit.line)):
                continue
        hit.support = [(shown.line(line), text) for line, text in hit.support]
        hit.line = shown.line(hit.line)
        kept.append(hit)
    return kept


def _traceback_on_text_lines(tb: Traceback, shown: posted.View) -> Traceback:
    for frame in tb.frames:
        frame.line = shown.line(frame.line)
        if frame.code_line is not None:
            frame.code_line = shown.line(frame.code_line)
    tb.start = shown.line(tb.start)
    if tb.exception_line is not None:
        tb.exception_line = shown.line(tb.exception_line)
    return tb


def _without_lines(text: str, lines: set[int]) -> str:
    """`text` with these (1-based) lines emptied, the others on their own line numbers."""
    if not lines:
        return text
    parts = text.split("\n")
    for line in lines:
        if 0 < line <= len(parts):
            parts[line - 1] = ""
    return "\n".join(parts)


def fallback_reading(doc: _Document) -> tuple[str, posted.View]:
    """What the learned fallback reads of a text (from find_hits' document), and the view that maps its
    lines back to the text's: the posted view, as rules read it (colour codes, CI prefixes, entities and
    curly quotes gone), with each escaped line replaced by the lines it decodes into and each wrapped run
    or cut quotation by its joined lines (the log as its author saw it, once), and without the lines a rule
    refused by its `exclude` (a wording the catalog knows does not decide, such as a warning the run
    survives), so that the statistical guess cannot decide on what a rule has ruled out. Line for line
    with the view (emptied lines stay, empty)."""
    shown = doc.view
    blank = doc.refused_view if shown.identity else doc.refused_view | shown.replaced()
    return _without_lines(doc.text, blank), shown


def fallback_input(text: str, catalog: Catalog | None = None) -> str:
    """What the learned fallback reads of a text (fallback_reading). The trainer reads train through this."""
    _, _, doc = find_hits(text, catalog or load_catalog())
    return fallback_reading(doc)[0]


def _cap_note(doc: _Document) -> list[EvidenceLine]:
    """One evidence entry saying which lines rules read only in part (never a silent cut)."""
    if not doc.capped:
        return []
    first = min(doc.capped)
    others = len(doc.capped) - 1
    more = f" (and {others} other line(s) as long)" if others else ""
    text = (f"[line {first} is {doc.capped[first]:,} bytes long; rules matched its first "
            f"{MAX_MATCH_CHARS:,} characters only{more}]")
    return [EvidenceLine(line=first, text=text, source=CAP_SOURCE)]


def classify(text: str, *, names: Mapping[str, str] | None = None, catalog: Catalog | None = None,
             trusted_lines: int = 0) -> Diagnosis:
    """Diagnose the root cause of a failure from its FailureReason/error lines and log lines.

    `trusted_lines`: how many lines at the start of `text` are the job's FailureReason (triage
    puts it first). Only there does a structured line `[category/cause] message` (written by our
    training image, the only writer of FailureReason) decide outright; anywhere else it is an
    ordinary log line. Default 0: nothing is trusted.
    """
    if not isinstance(text, str):
        raise TypeError(f"classify() needs the failure text as str, got {type(text).__name__}; "
                        "decode bytes first (text.decode('utf-8', 'replace'))")
    if isinstance(trusted_lines, bool) or not isinstance(trusted_lines, int) or trusted_lines < 0:
        raise ValueError(f"trusted_lines must be a count of lines >= 0 (the FailureReason's lines at the start "
                         f"of the text), got {trusted_lines!r}")
    clean_names = _check_names(names)
    catalog = catalog or load_catalog()
    hits, tracebacks, doc = find_hits(text, catalog)
    structured = [h for h in hits if h.rule.spec.from_groups and h.line <= trusted_lines]
    hits = [h for h in hits if not h.rule.spec.from_groups]
    if structured:
        diagnosis = _diagnose(min(structured, key=lambda h: h.line), [], catalog, clean_names)
    elif not hits:  # only here may the learned fallback answer: it never overrides a rule
        reading, shown = fallback_reading(doc)
        guess = fallback.consult(reading)
        guessed = None if guess is None else fallback.answer(
            guess, catalog, lambda template: fill_command(template, clean_names), line_of=shown.line)
        diagnosis = guessed or _unknown(doc, catalog, clean_names, tracebacks, lead=fallback.lead(guess))
    else:
        diagnosis = _diagnose(max(hits, key=lambda h: h.rank), hits, catalog, clean_names)
    note = _cap_note(doc)
    return diagnosis.model_copy(update={"evidence": [*diagnosis.evidence, *note]}) if note else diagnosis
