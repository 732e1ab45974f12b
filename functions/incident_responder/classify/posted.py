"""The log as its author saw it, whatever form it was posted or stored in.

Rules are written for a tool's message as the tool prints it. Logs reach the classifier in other
forms: coloured by a terminal, prefixed by a CI runner's timestamps, copied from a web page with
HTML entities and curly quotes, stored as a JSON string or a Python repr with `\\n` escapes, or
cut by a terminal at its width and continued on the next line. `view(text)` returns the text
rules read:

- Line for line (each line of the text is one line of the view, so line numbers stay): CRLF
  becomes LF; ANSI/VT escape sequences go (and colour codes that lost their ESC in a copy, only
  when the text also holds such a reset code `[0m`); a line's CI prefix goes (GitHub Actions' and
  `docker logs --timestamps`' ISO time, CodeBuild's `[Container] <time>`, a CloudWatch console
  column `<time><TAB>`), and GitHub's `##[error]`/`##[warning]` read as its web page shows them
  (`Error: `, `Warning: `); HTML entities are decoded (never into a line break); non-breaking and
  zero-width spaces and curly quotes read as their ASCII forms.
- Extra lines, each inserted after the lines it comes from and carrying the number of its first
  one (the original lines stay too, so nothing that matched before stops matching):
  * a line holding escaped text (two or more of `\\n`, `\\"`, `\\'`; up to three nested levels),
    decoded into the lines it stands for;
  * a terminal-wrapped run: a line exactly as long as the text's wrap width, joined to the lines
    that continue it. The width is inferred, never assumed: the longest line length (40 to 400
    characters) that at least two lines reach and that more lines reach than exceed it (a
    terminal cuts every longer line there; in a text over 128 KiB, on its first 64 KiB, its last
    64 KiB and what lies between, each on its own); a line at a common terminal width (80, 100, 120, 132
    columns, or one less) whose cut falls inside a word ("con" / "tainer") is joined even without
    that evidence. Never joined to an empty, indented (two spaces, a TAB) or
    Markdown fence line; joined as cut and with a space at each cut (a cut at a word boundary loses
    its space when copied);
  * a quotation cut at a word boundary: two lines of at most 400 characters, each holding an odd
    number of one kind of quote (the first opens a quotation the second closes), joined with a
    space (at most 200 such joins). The engine keeps a rule's hit on a joined line only
    when none of the lines it joins matches that rule alone: a joined line adds only matches
    that cross the cut.

Bounded work, whatever the input: escaped lines are found by one RE2 pass over the bytes, the wrap
width by one split of the text into lines and a count of their lengths (skipped when the lines
average fewer than `MIN_MEAN_LINE_CHARS` characters: a million empty lines); colour codes, runner
times and common entities go by splitting and plain replacement, not a call per match; at most
`MAX_EXTRA_LINES` extra lines and `MAX_EXTRA_CHARS` characters in all;
a line is decoded on its first `MAX_DECODE_CHARS` characters; a wrapped run joins at most
`MAX_JOIN_LINES` lines and `MAX_LINE_CHARS` characters.
"""

from __future__ import annotations

import html
from collections import Counter
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import accumulate

import incident_responder.matching as matching
from incident_responder.matching import MAX_LINE_CHARS, replace

MAX_EXTRA_LINES = 20_000
MAX_EXTRA_CHARS = 1 << 20
MAX_DECODE_CHARS = 64 * 1024
MAX_DECODE_DEPTH = 3
MAX_OTHER_ESCAPES = 10_000
MAX_JOIN_LINES = 64
MIN_WRAP_WIDTH, MAX_WRAP_WIDTH = 40, 400
#: Terminal widths a copied line is cut at (and one less: a terminal that leaves its last column
#: empty); a line this long that ends inside a word is joined even where no wrap width is inferred.
TERMINAL_WIDTHS = frozenset({79, 80, 99, 100, 119, 120, 131, 132})

# ANSI/VT escape sequences: CSI (colours, cursor), OSC (titles, hyperlinks; ends at BEL or ST),
# two-character ESC sequences. None spans a line break.
_ANSI = matching.compile(r"\x1b(?:\[[0-?]{0,32}[ -/]{0,4}[@-~]|\][^\x07\x1b\n]{0,512}(?:\x07|\x1b\\)?|[@-Z\\-_])")
# A CI runner's prefix on a line (GitHub Actions and `docker logs --timestamps`: ISO time; CodeBuild),
# and GitHub's error/warning commands after it.
_CI_PREFIX = matching.compile(
    r"(?m)^(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})[ \t]"
    r"|\[Container\] \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,9})? )(?:##\[(?:error|warning)\])?"
    r"|(?m)^##\[(?:error|warning)\]"
)
# A time column copied from a console table (CloudWatch): the time, then a TAB.
_CONSOLE_PREFIX = matching.compile(r"(?m)^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?\t")
_CI_HINT = matching.compile(r"(?m)^(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}|\[Container\] |##\[)")
_ENTITY = matching.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_LOOKALIKES = {
    "\u00a0": " ", "\u2007": " ", "\u2009": " ", "\u202f": " ", "\u3000": " ",
    "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None,
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
}
_LOOKALIKE_TABLE = str.maketrans(_LOOKALIKES)
_LOOKALIKE = matching.compile("[" + "".join(_LOOKALIKES) + "]")

# A line that holds an escaped line break or quote (found over bytes: one match per such line).
_ESCAPED_LINE = matching.compile(rb'[^\n]*\\[n"\'][^\n]*')
_UNICODE_ESCAPE = matching.compile(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\(?:033|e)\[")
# Two lines, each with an odd number of one kind of quote: a quotation cut at a word boundary
# ("... 'Unrecognized" / "named-value: secrets' ..."), as a reply or a narrow editor wraps prose.
_QUOTE_CUTS = tuple(
    (quote, matching.compile(
        rb"(?m)^[^Q\n]*(?:Q[^Q\n]*Q[^Q\n]*)*Q[^Q\n]*\n[^Q\n]*(?:Q[^Q\n]*Q[^Q\n]*)*Q[^Q\n]*$".replace(b"Q", quote.encode())))
    for quote in ("'", '"')
)
MAX_QUOTE_CUT_CHARS = 400
MAX_QUOTE_JOINS = 200
_DIGITS = frozenset("0123456789")
_SEPARATORS = frozenset("-/:.")


def _starts_record(line: str) -> bool:
    """Whether `line` starts with a date or a time (`2024-05-01`, `10:00:01`: two to four digits, then twice a
    separator from `-/:.` and two digits), without a call into RE2 (a long log has thousands of candidate
    lines, and a call costs more than this check)."""
    digits = 0
    while digits < 5 and line[digits:digits + 1] in _DIGITS:
        digits += 1
    if not 2 <= digits <= 4:
        return False
    rest = line[digits:digits + 6]
    return (len(rest) == 6 and rest[0] in _SEPARATORS and rest[1] in _DIGITS and rest[2] in _DIGITS
            and rest[3] in _SEPARATORS and rest[4] in _DIGITS and rest[5] in _DIGITS)


#: Wrap widths are looked for only in texts whose lines average this many characters or more
#: (a terminal's output; not a million empty lines).
MIN_MEAN_LINE_CHARS = 16


class View:
    """What rules read (`text`), and the way back to the lines of the text it was made from.

    The view holds every line of the text, in order, with extra lines (decoded or joined) inserted
    after the lines they come from; `line(v)` is the original line of view line v (an extra
    line: the first line it comes from), `covers(v)` all the original lines it stands for."""

    def __init__(self, text: str, blocks: list[tuple[int, list[tuple[int, int]]]] | None = None,
                 changed: bool = False) -> None:
        self.text = text
        self.changed = changed or bool(blocks)  # whether a line of the view differs from the text's
        self._starts: list[int] = []  # view line of each block's first extra line
        self._blocks: list[list[tuple[int, int]]] = []  # (first, last) original line of each extra line
        self._before: list[int] = []  # extra lines before each block
        added = 0
        for after, lines in blocks or ():
            self._starts.append(after + added + 1)
            self._blocks.append(lines)
            self._before.append(added)
            added += len(lines)

    @property
    def identity(self) -> bool:
        return not self._starts

    def _find(self, view_line: int) -> tuple[int, int]:
        index = bisect_right(self._starts, view_line) - 1
        return index, (view_line - self._starts[index] if index >= 0 else -1)

    def line(self, view_line: int) -> int:
        if not self._starts:
            return view_line
        index, offset = self._find(view_line)
        if index < 0:
            return view_line
        block = self._blocks[index]
        if offset < len(block):
            return block[offset][0]
        return view_line - self._before[index] - len(block)

    def is_extra(self, view_line: int) -> bool:
        if not self._starts:
            return False
        index, offset = self._find(view_line)
        return index >= 0 and offset < len(self._blocks[index])

    def replaced(self) -> set[int]:
        """View lines of the text that added lines stand for: a line whose escaped text was decoded,
        the lines of a joined wrapped run or cut quotation. Read in place of them, the added lines
        give the log as its author saw it, once (what the learned fallback reads)."""
        afters = [start - before - 1 for start, before in zip(self._starts, self._before)]
        total = self._before[-1] + len(self._blocks[-1]) if self._blocks else 0
        out: set[int] = set()
        for first, last in {span for block in self._blocks for span in block}:
            for line in range(first, last + 1):
                index = bisect_left(afters, line)  # blocks inserted before this line of the text
                out.add(line + (self._before[index] if index < len(afters) else total))
        return out

    def covers(self, view_line: int) -> range:
        """The original lines a view line stands for."""
        if self.is_extra(view_line):
            index, offset = self._find(view_line)
            first, last = self._blocks[index][offset]
            return range(first, last + 1)
        line = self.line(view_line)
        return range(line, line + 1)


#: An escaped ESC (in a JSON string, a Python repr, a shell string): the colour code after it is decoded
#: with it (`\u001b[31m` reads as ESC [31m, then goes), never taken for one that lost its ESC.
_ESCAPED_ESC = ("\\x1b", "\\x1B", "\\u001b", "\\u001B", "\\033", "\\e")


def _without_sgr(text: str, opener: str, least: int) -> str:
    """`text` without SGR colour codes (`<opener>1;31m`), by splitting: a coloured log holds one
    or two per line, and a call per code would cost more than the rest of the view."""
    pieces = text.split(opener)
    out = [pieces[0]]
    lost_esc = opener == "["
    for piece in pieces[1:]:
        rest = piece.lstrip("0123456789;")
        if (rest[:1] == "m" and least <= len(piece) - len(rest) <= 48
                and not (lost_esc and out[-1].endswith(_ESCAPED_ESC))):
            out.append(rest[1:])
        else:
            out.append(opener)
            out.append(piece)
    return "".join(out)


def _ansi_free(text: str) -> str:
    if "\x1b" in text:
        text = _without_sgr(text, "\x1b[", 0)
        # cursor moves, titles, hyperlinks: rarer, and removed by a call each, so only while few
        # (a text denser in them is a terminal animation or binary, not a log to read)
        if "\x1b" in text and text.count("\x1b") <= MAX_OTHER_ESCAPES:
            text = replace(_ANSI, "", text)
    if _has_reset(text):
        text = _without_sgr(text, "[", 1)
    return text


_RESET = matching.compile(r"\[0m")


def _has_reset(text: str) -> bool:
    """Whether the text holds a colour reset that lost its ESC (`[0m`): RE2 finds it faster than `in`
    (whose search for a short needle slows down on a log full of `[`)."""
    return "[" in text and _RESET.search(text) is not None


def shown_line(line: str) -> str:
    """One line of the text as a terminal shows it: without colour codes or a CR at its end."""
    return _ansi_free(line.rstrip("\r"))


def _ci_prefix(match_text: str) -> str:
    if match_text.endswith("##[error]"):
        return "Error: "
    if match_text.endswith("##[warning]"):
        return "Warning: "
    return ""


_NAMED_ENTITIES = (("&quot;", '"'), ("&#34;", '"'), ("&#39;", "'"), ("&#x27;", "'"), ("&apos;", "'"),
                   ("&lt;", "<"), ("&gt;", ">"), ("&nbsp;", " "), ("&#x2F;", "/"), ("&#47;", "/"))
MAX_NUMERIC_ENTITIES = 10_000


_RUNNER_TIME = matching.compile(r"(?m)^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z ")


def _without_runner_times(text: str) -> str:
    """GitHub Actions' time on every line, cut by its fixed width (the runner writes one width
    throughout; a call per line would cost more than the rest of the view). Lines of another form
    are left to _CI_PREFIX."""
    first = _RUNNER_TIME.search(text)
    if first is None:
        return text
    width = len(first.group(0))
    sample = text[:1 << 16]
    if sample.count("Z ") * 2 < sample.count("\n") or sample.count("\n") < 8:
        return text  # on few lines: _CI_PREFIX's calls cost less than splitting every line
    lines = text.split("\n")
    cut = [line[width:] if line[width - 2:width] == "Z " and line[10:11] == "T" and line[:4].isdigit()
           and line[width - 1:width + 9] != " ##[error]" and line[width - 1:width + 11] != " ##[warning]" else line
           for line in lines]
    return "\n".join(cut)


def _entity(token: str) -> str:
    char = html.unescape(token)
    return token if char == token or any(ord(c) < 32 for c in char) else char


def _entities(text: str) -> str:
    """HTML entities decoded once (`&amp;quot;` reads `&quot;`): the common ones by plain
    replacement, other numeric ones only while there are few of them (each costs a call)."""
    for entity, char in _NAMED_ENTITIES:
        if entity in text:
            text = text.replace(entity, char)
    if "&#" in text and text.count("&#") <= MAX_NUMERIC_ENTITIES:
        text = replace(_ENTITY, _entity, text.replace("&amp;", "&#38;"))
        return text.replace("&#38;", "&")
    return text.replace("&amp;", "&")


#: In a text longer than twice this, the forms a program writes on every line (a CI runner's time, a
#: console's time column) are looked for at its two ends (a log is in one such form throughout); each
#: wrap width is inferred on the first and last this many characters and on what lies between.
SAMPLE_CHARS = 64 * 1024


def _sample(text: str) -> str:
    return text if len(text) <= 2 * SAMPLE_CHARS else text[:SAMPLE_CHARS] + "\n" + text[-SAMPLE_CHARS:]


def clean(text: str) -> str:
    """The text line for line, as it was shown (see the module's doc).

    Forms that one line of a long log may be in (a coloured line, one copied from a web page) are looked
    for in the whole text (a scan for a character costs well under 1 ms a MB); the forms a program writes
    on every line (a CI runner's time, a console's time column) on the text's two ends."""
    sample = _sample(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\x1b" in text or _has_reset(text):
        text = _ansi_free(text)
    if _CI_HINT.search(sample) is not None:
        text = replace(_CI_PREFIX, _ci_prefix, _without_runner_times(text))
    if "\t" in sample and _CONSOLE_PREFIX.search(sample) is not None:
        text = replace(_CONSOLE_PREFIX, "", text)
    if "&" in text and _ENTITY.search(text) is not None:
        text = _entities(text)
    if not text.isascii() and _LOOKALIKE.search(text) is not None:
        text = text.translate(_LOOKALIKE_TABLE)
    return text


def _escape_count(line: str) -> int:
    return line.count("\\n") + line.count('\\"') + line.count("\\'")


def _unicode_escape(token: str) -> str:
    if token.endswith("["):
        return "\x1b["
    char = chr(int(token[2:], 16))
    return char if char == "\x1b" or ord(char) >= 32 else token


def decode(line: str) -> str:
    """One level of JSON/Python string escapes undone (`\\n`, `\\t`, `\\"`, `\\'`, `\\/`, `\\\\`,
    `\\uXXXX`, `\\xXX`). A lone `\\r` stays as written: it is what the CRLF rules read."""
    parts = line.split("\\\\")
    for index, part in enumerate(parts):
        if "\\" not in part:
            continue
        part = (part.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\t", "\t")
                .replace('\\"', '"').replace("\\'", "'").replace("\\/", "/"))
        if "\\u" in part or "\\x" in part or "\\e" in part or "\\0" in part:
            part = replace(_UNICODE_ESCAPE, _unicode_escape, part)
        parts[index] = part
    return "\\".join(parts)


def _decoded(line: str) -> list[str]:
    text = line[:MAX_DECODE_CHARS]
    for _ in range(MAX_DECODE_DEPTH):
        if _escape_count(text) < 2:
            break
        text = decode(text)
    return clean(text).split("\n")


def _wrap_width(lengths: Counter) -> int | None:
    longer = 0
    for width in sorted(lengths, reverse=True):
        count = lengths[width]
        # a terminal cuts every longer line at the width, so more lines end there than exceed it,
        # and more than in the ten lengths below it (where only a cut line's last part ends; a
        # log of fixed-format records has a smooth peak instead)
        if (MIN_WRAP_WIDTH <= width <= MAX_WRAP_WIDTH and count >= 2 and count > longer
                and count > sum(lengths.get(below, 0) for below in range(width - 10, width))):
            return width
        longer += count
        if longer > 1_000:
            return None
    return None


def view(text: str) -> View:
    """The text rules read, with the map back to the lines of `text`."""
    shown = clean(text)
    changed = shown is not text and shown != text
    # 0-based line after which extra lines go -> (where that line ends in `shown` (ASCII texts),
    # [(text, first line, last line)] (1-based))
    extra: dict[int, tuple[int, list[tuple[str, int, int]]]] = {}
    budget = [MAX_EXTRA_LINES, MAX_EXTRA_CHARS]
    ascii_only = shown.isascii()

    def add(after: int, end: int, lines: list[str], first: int, last: int) -> bool:
        size = sum(len(line) for line in lines)
        if len(lines) > budget[0] or size > budget[1]:
            return False
        budget[0] -= len(lines)
        budget[1] -= size
        extra.setdefault(after, (end, []))[1].extend((line, first, last) for line in lines)
        return True

    if "\\" in shown:
        data = shown.encode("utf-8", "surrogatepass")
        line_no, last = 0, 0
        for match in _ESCAPED_LINE.finditer(data):
            start = match.start()
            line_no += data.count(b"\n", last, start)
            last = start
            line = match.group(0).decode("utf-8", "replace")
            if _escape_count(line) >= 2 and not add(line_no, match.end(), _decoded(line), line_no + 1, line_no + 1):
                break

    # Wrapped runs and cut quotations are looked for in the whole text: a short text (a posted log) as
    # one, a long one as its first 64 KiB, its last 64 KiB (where its header and its error are; each
    # with its own wrap width) and what lies between (a wrapped or quoted line in the middle of a long log).
    segments: list[tuple[int, int, str]] = [(0, 0, shown)]  # (first line, first character, text)
    if ascii_only and len(shown) > 2 * SAMPLE_CHARS:
        head_end = shown.rfind("\n", 0, SAMPLE_CHARS)
        tail_start = shown.find("\n", len(shown) - SAMPLE_CHARS) + 1
        if 0 < head_end < tail_start:
            tail_line = shown.count("\n", 0, tail_start)
            # the middle last: the extra lines' budget goes to the ends first
            segments = [(0, 0, shown[:head_end]), (tail_line, tail_start, shown[tail_start:]),
                        (shown.count("\n", 0, head_end + 1), head_end + 1, shown[head_end + 1:tail_start - 1])]
        else:
            segments = []  # a few huge lines: nothing a terminal wrapped
    for first_line, first_char, segment in segments:
        _find_cuts(segment, first_line, first_char, add)

    if not extra:
        return View(shown, changed=changed)
    pieces: list[str] = []
    blocks: list[tuple[int, list[tuple[int, int]]]] = []
    if ascii_only:
        position = 0
        for after in sorted(extra):
            end, added = extra[after]
            pieces.append(shown[position:end])
            pieces.append("\n" + "\n".join(text for text, _, _ in added))
            blocks.append((after + 1, [(first, last) for _, first, last in added]))
            position = end
        pieces.append(shown[position:])
        return View("".join(pieces), blocks, changed)
    lines = shown.split("\n")
    position = 0
    for after in sorted(extra):
        added = extra[after][1]
        pieces.append("\n".join(lines[position:after + 1]))
        pieces.append("\n".join(text for text, _, _ in added))
        blocks.append((after + 1, [(first, last) for _, first, last in added]))
        position = after + 1
    if position < len(lines):
        pieces.append("\n".join(lines[position:]))
    return View("\n".join(pieces), blocks, changed)


def _find_cuts(segment: str, first_line: int, first_char: int, add) -> None:
    """Terminal-wrapped runs and cut quotations in `segment` (line `first_line`, character
    `first_char` of the text), each given to `add` as extra lines."""
    newlines = segment.count("\n", 0, SAMPLE_CHARS)
    head = min(len(segment), SAMPLE_CHARS)
    if newlines and head >= MIN_MEAN_LINE_CHARS * (newlines + 1):
        lines = segment.split("\n")
        ends: list[int] = []  # where each line ends (without its line break: + the line breaks before it)
        for first, cont in _wrapped_runs(lines):  # found one at a time: none past the budget
            if not ends:
                ends = list(accumulate(map(len, lines)))
            # A terminal cuts inside a word ("con" / "tainer"); a cut at a word boundary loses the
            # space (a copy trims it): both joins are read.
            joined = ["".join(lines[first:cont + 1])[:MAX_LINE_CHARS], " ".join(lines[first:cont + 1])[:MAX_LINE_CHARS]]
            if not add(first_line + cont, first_char + ends[cont] + cont, joined, first_line + first + 1,
                       first_line + cont + 1):
                return
    if "'" not in segment and '"' not in segment:
        return
    data = segment.encode("utf-8", "surrogatepass")
    ascii_only = len(data) == len(segment)
    for quote, pattern in _QUOTE_CUTS:
        if quote not in segment:
            continue
        line_no, last, joins = 0, 0, 0
        for match in pattern.finditer(data):
            start, end = match.span()
            line_no += data.count(b"\n", last, start)
            last = start
            if end - start > 2 * MAX_QUOTE_CUT_CHARS:
                continue
            first, second = match.group(0).decode("utf-8", "replace").split("\n")
            if not first.strip() or not second[:1].strip() or second.startswith("```"):
                continue
            joins += 1
            end_char = end if ascii_only else -1  # only ASCII texts are rebuilt by offsets
            if joins > MAX_QUOTE_JOINS or not add(first_line + line_no + 1, first_char + end_char, [f"{first} {second}"],
                                                  first_line + line_no + 1, first_line + line_no + 2):
                return


def _continues(cut: str, following: str, at_inferred_width: bool) -> bool:
    """Whether `following` continues the line `cut` a terminal cut. Not an empty, indented (two
    spaces, a TAB) or Markdown fence line, nor one that starts a log record (a date, a time); at a
    common terminal width alone (no inferred width), only a cut inside a word."""
    if not following or following[:1] == "\t" or following[:2] == "  " or following.startswith("```"):
        return False
    if _starts_record(following):
        return False
    return at_inferred_width or (cut[-1:].isalnum() and following[:1].isalnum())


def _indexes(lengths: list[int], width: int) -> list[int]:
    """Where `width` occurs in `lengths` (list.index scans in C: cheaper than a loop per line)."""
    found = []
    position = -1
    try:
        while True:
            position = lengths.index(width, position + 1)
            found.append(position)
    except ValueError:
        return found


def _wrapped_runs(lines: list[str]) -> Iterator[tuple[int, int]]:
    """Runs of lines cut at the text's wrap width: (first cut line, the line that continues the
    run), 0-based."""
    lengths = list(map(len, lines))
    counts = Counter(lengths)
    wrap = _wrap_width(counts)
    widths = TERMINAL_WIDTHS if wrap is None else TERMINAL_WIDTHS | {wrap}
    at_wrap = sorted(index for width in widths if counts.get(width) for index in _indexes(lengths, width))
    position = 0
    while position < len(at_wrap):
        first = last = at_wrap[position]
        position += 1
        inferred = wrap is not None and lengths[first] == wrap
        while (position < len(at_wrap) and at_wrap[position] == last + 1 and lengths[last + 1] == lengths[first]
               and last - first + 1 < MAX_JOIN_LINES and (last - first + 2) * MAX_WRAP_WIDTH < MAX_LINE_CHARS
               and _continues(lines[last], lines[last + 1], inferred)):
            last += 1
            position += 1
        cont = last + 1
        if cont >= len(lines) or not _continues(lines[last], lines[cont], inferred):
            cont = last  # nothing continues the run: its cut lines are still one line
        if cont > first:
            yield first, cont
