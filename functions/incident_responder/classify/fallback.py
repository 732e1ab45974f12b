"""The learned fallback: a statistical guess at the category when no rule matches.

The engine calls `diagnose()` only on its no-rule path, so a rule is never overridden. The model
is a multinomial logistic regression over the normalised words and word pairs of the log's
error-looking lines (present or not, scaled by 1/sqrt(their number)), trained by
`bench/train_fallback.py` on `corpus/train.jsonl` only and stored as a small JSON file next to
this module (loaded once per process; CLASSIFIER_FALLBACK=off in the environment turns it off).
Its posterior, softened by a temperature, is mapped to a calibrated confidence by an isotonic
table: both are fitted on out-of-fold predictions on train, so the confidence is how often
answers with that score were right there. It answers only when the confidence reaches the
threshold chosen on those predictions (precision of its answers >= 99.5%), and, where the model
file sets `min_score`, when the posterior reaches it (the trainer sets it when no calibrated step
reaches the precision); below either the answer stays `unknown`.

It reads the log as rules do, as it was posted (the engine passes `engine.fallback_reading`: the
posted view, colour codes and CI prefixes gone, escaped strings decoded and wrapped lines joined in
place of the lines they come from, refused lines emptied); the trainer reads train through the same
function, so a word split by a colour code or glued to an escape is the word the model learned.

Everything here is linear in the text: the text is cut to its first and last `WINDOW_CHARS`,
lines to `LINE_CHARS`, and tokenised with `str.translate` + `str.split` (no regular expressions).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from incident_responder.models import Category, Diagnosis, EvidenceLine

if TYPE_CHECKING:
    from incident_responder.classify.catalog import Catalog

MODEL_PATH = Path(__file__).with_name("fallback_model.json")
FORMAT = "incident-responder/fallback-logreg"
FORMAT_VERSION = 1

WINDOW_CHARS = 32_768  # first and last 32 kB: the failure is at one end of a log
LINE_CHARS = 1_000
MAX_LINES = 400
MAX_EVIDENCE_LINES = 3
MAX_TITLE_TOKENS = 4

# A line "looks like an error" when it holds one of these (lowercased) words. When a log has
# no such line, all of its lines are used (a one-line FailureReason says nothing else).
ERROR_HINTS: tuple[str, ...] = (
    "error", "exception", "fatal", "fail", "denied", "traceback", "invalid", "cannot", "can't",
    "unable", "not found", "no such", "refused", "timeout", "timed out", "forbidden", "unauthorized",
    "missing", "abort", "killed", "panic", "not allowed", "not authorized", "unrecognized", "unexpected",
    "expired", "exit code", "exit status", "exited", "no module", "could not", "couldn't", "mismatch",
    "incompatible", "unsupported", "not supported", "limit", "exceeded", "out of memory", "oom",
)

_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
# Every ASCII character that is not part of a word becomes a space; other characters (letters
# of other scripts) stay inside their word.
_TO_SPACE = str.maketrans({chr(c): " " for c in range(128) if chr(c) not in _WORD})
_HEX = frozenset("0123456789abcdef")


@lru_cache(maxsize=1 << 16)  # logs repeat their words: most calls are one dict look-up
def normalize_token(token: str) -> str:
    """A word as the model sees it: ids, hashes and long numbers become placeholders.

    Short numbers stay (exit codes, errnos, HTTP statuses and CUDA versions decide causes).
    """
    if len(token) > 30:
        return "<long>"
    digits = sum(ch.isdigit() for ch in token)
    if digits == len(token):
        return token if len(token) <= 4 else "<num>"
    if digits >= 4 and (len(token) >= 8 or set(token) <= _HEX):
        return "<id>"
    return token


def tokens(line: str) -> list[str]:
    """The normalised words of one line (lowercased, split on ASCII punctuation and spaces)."""
    return [normalize_token(t) for t in line[:LINE_CHARS].lower().translate(_TO_SPACE).split()]


def line_features(line: str) -> list[str]:
    """Words and adjacent word pairs of one line, each once."""
    words = tokens(line)
    out = dict.fromkeys(words)
    out.update(dict.fromkeys(f"{a} {b}" for a, b in zip(words, words[1:])))
    return list(out)


def select_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of the error-looking lines near both ends of the text.

    All lines of the window when none looks like an error. At most MAX_LINES, earliest first.
    """
    if len(text) <= 2 * WINDOW_CHARS:
        chunks = [(0, text)]
    else:
        tail_start = len(text) - WINDOW_CHARS
        chunks = [(0, text[:WINDOW_CHARS]), (tail_start, text[tail_start:])]
    numbered: list[tuple[int, str]] = []
    for base, chunk in chunks:
        first = text.count("\n", 0, base) + 1 if base else 1
        for offset, line in enumerate(chunk.split("\n")):
            if line.strip():
                numbered.append((first + offset, line[:LINE_CHARS]))
    errorish = [(n, line) for n, line in numbered if _looks_like_error(line)]
    chosen = errorish or numbered
    if len(chosen) > MAX_LINES:  # keep both ends: the first error and the last words
        half = MAX_LINES // 2
        chosen = chosen[:half] + chosen[-half:]
    return chosen


def _looks_like_error(line: str) -> bool:
    lower = line.lower()
    return any(hint in lower for hint in ERROR_HINTS)


def document_features(text: str) -> set[str]:
    """The set of features of a text (what the model is trained and scored on)."""
    features: set[str] = set()
    for _, line in select_lines(text):
        features.update(line_features(line))
    return features


class ModelError(ValueError):
    pass


@dataclass(frozen=True)
class Guess:
    """The fallback's answer: `category` is None when it abstains (below the threshold)."""

    category: str | None
    predicted: str  # the most likely class, even when abstaining ("unknown" is a class)
    score: float  # the temperature-scaled posterior of `predicted`
    confidence: float  # calibrated: how often out-of-fold answers with this score were right
    top_tokens: tuple[str, ...]
    evidence: tuple[tuple[int, str], ...]  # (line, text) that pushed most towards `predicted`


@dataclass(frozen=True)
class Model:
    classes: tuple[str, ...]
    bias: tuple[float, ...]
    weights: dict[str, tuple[float, ...]]  # feature -> one weight per class
    temperature: float
    calibration: tuple[tuple[float, float], ...]  # (lowest score, confidence), ascending
    threshold: float
    meta: dict[str, Any]
    min_score: float = 0.0  # the posterior an answer also needs (0: the confidence threshold alone decides)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Model":
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"fallback model has format {data.get('format')!r} v{data.get('format_version')!r}; "
                             f"this code reads {FORMAT!r} v{FORMAT_VERSION}: retrain with bench/train_fallback.py")
        classes = tuple(data["classes"])
        width = len(classes)
        weights = {f: tuple(w) for f, w in data["weights"].items()}
        if any(len(w) != width for w in weights.values()) or len(data["bias"]) != width:
            raise ModelError("fallback model rows do not have one value per class: "
                             "retrain with bench/train_fallback.py")
        temperature = float(data["temperature"])
        if not temperature > 0:
            raise ModelError(f"fallback model temperature must be > 0, got {temperature}")
        calibration = tuple((float(a), float(b)) for a, b in data["calibration"])
        if not calibration or any(x[0] >= y[0] or x[1] > y[1] for x, y in zip(calibration, calibration[1:])):
            raise ModelError("fallback model calibration must be a non-empty table ascending in score and confidence")
        return cls(classes, tuple(data["bias"]), weights, temperature, calibration,
                   float(data["threshold"]), dict(data.get("meta", {})), float(data.get("min_score", 0.0)))

    def calibrated(self, score: float) -> float:
        """The confidence for a posterior `score`: the value of the table's last step at or below it."""
        value = self.calibration[0][1]
        for lowest, confidence in self.calibration:
            if score < lowest:
                break
            value = confidence
        return value

    @property
    def margins(self) -> dict[str, tuple[float, ...]]:
        """Per feature, how much it favours each class over the average class; computed once."""
        cached = self.__dict__.get("_margins")
        if cached is None:
            cached = {f: tuple(w - sum(row) / len(row) for w in row) for f, row in self.weights.items()}
            object.__setattr__(self, "_margins", cached)
        return cached

    def scores(self, features: set[str]) -> list[float]:
        """Per class: bias + the sum of the known features' weights / sqrt(their number)."""
        sums = [0.0] * len(self.classes)
        known = 0
        for feature in features:
            row = self.weights.get(feature)
            if row is None:
                continue  # a feature never seen in training says nothing
            known += 1
            for i, w in enumerate(row):
                sums[i] += w
        scale = 1.0 / math.sqrt(known) if known > 1 else 1.0
        return [b + s * scale for b, s in zip(self.bias, sums)]

    def probabilities(self, features: set[str]) -> list[float]:
        """Class probabilities: softmax of the scores divided by the temperature."""
        scaled = [s / self.temperature for s in self.scores(features)]
        top = max(scaled)
        exps = [math.exp(s - top) for s in scaled]
        total = sum(exps)
        return [e / total for e in exps]

    def guess(self, text: str) -> Guess:
        known: dict[str, list[str]] = {}  # a repeated line is tokenised once
        per_line = []
        for n, line in select_lines(text):
            features = known.get(line)
            if features is None:
                features = known[line] = line_features(line)
            per_line.append((n, line, features))
        features = {f for _, _, fs in per_line for f in fs}
        probs = self.probabilities(features)
        best = max(range(len(self.classes)), key=lambda i: (probs[i], -i))
        predicted, score = self.classes[best], probs[best]
        confidence = self.calibrated(score)
        sure = confidence >= self.threshold and score >= self.min_score
        answer = predicted if predicted != "unknown" and sure else None
        return Guess(answer, predicted, score, confidence, self._top_tokens(features, best),
                     self._evidence(per_line, best))

    def _top_tokens(self, features: set[str], index: int) -> tuple[str, ...]:
        margins = self.margins
        ranked = sorted(((margins[f][index], f) for f in features if f in margins), key=lambda p: (-p[0], p[1]))
        return tuple(f for margin, f in ranked[:MAX_TITLE_TOKENS] if margin > 0)

    def _evidence(self, per_line, index: int) -> tuple[tuple[int, str], ...]:
        margins = self.margins
        scores: dict[str, float] = {}
        scored = []
        for number, line, features in per_line:
            score = scores.get(line)
            if score is None:
                score = scores[line] = sum(margins[f][index] for f in features if f in margins)
            if score > 0:
                scored.append((score, number, line))
        top = sorted(scored, key=lambda s: (-s[0], s[1]))[:MAX_EVIDENCE_LINES]
        return tuple((number, line) for _, number, line in sorted(top, key=lambda s: s[1]))


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_PATH) -> Model:
    """The model at `path`, read once per process (one Lambda container)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"fallback model {path} is missing: run `python bench/train_fallback.py`") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"fallback model {path} is not JSON ({exc.msg}): "
                         "run `python bench/train_fallback.py`") from None
    return Model.from_dict(data)


# ------------------------------------------------------------------ the engine's no-rule path

CAUSE = "learned_fallback"
SWITCH = "CLASSIFIER_FALLBACK"  # "off": rules alone (the no-rule path answers unknown)
RULE_PREFIX = "fallback."
EVIDENCE_CHARS = 300


# Below its answer threshold the fallback still names the category it leans to, as a lead on the `unknown` report
# (engine._unknown), never as the answer. bench/prequential.py --fallback-curve measures what such leads are worth on
# failures nobody had classified yet: over the eight fresh waves of issue 11 (1,519 cases, 559 of them left to
# `unknown` by the rules and the fallback), each judging commit's model leaned to a category at confidence >= 0.7 on
# 95 of those 559 and was right on 67 (0.71); at >= 0.8 on 46 of 58 (0.79); at >= 0.5 on 94 of 143 (0.66).
# LEAD_RECORD says so in the report; tests/unit/classify/test_prequential.py holds it to the waves.
LEAD_CONFIDENCE = 0.7
LEAD_RECORD = "right about 7 times in 10"


def consult(text: str, model: Model | None = None) -> Guess | None:
    """The model's guess for a text no rule matched, or None when the fallback is switched off."""
    if os.environ.get(SWITCH, "on").strip().lower() in ("off", "0", "false", "no"):
        return None
    return (model or load_model()).guess(text)


def lead(guess: Guess | None) -> Guess | None:
    """The guess when it is worth naming on an `unknown` answer: a category below the answer threshold, at least
    LEAD_CONFIDENCE. None when the fallback answered (its answer is the diagnosis), leans to `unknown` or is unsure."""
    if guess is None or guess.category is not None or guess.predicted == "unknown":
        return None
    return guess if guess.confidence >= LEAD_CONFIDENCE else None


def diagnose(text: str, catalog: Catalog, fill: Callable[[str], str], model: Model | None = None,
             line_of: Callable[[int], int] | None = None) -> Diagnosis | None:
    """The fallback's Diagnosis for a text no rule matched, or None when it abstains (consult, then answer)."""
    guess = consult(text, model)
    return answer(guess, catalog, fill, line_of) if guess is not None else None


def answer(guess: Guess, catalog: Catalog, fill: Callable[[str], str],
           line_of: Callable[[int], int] | None = None) -> Diagnosis | None:
    """The Diagnosis for a guess that reached the threshold, or None when it abstains.

    `line_of` maps the fallback's line numbers (of the engine's fallback_reading, the log's posted view) to the
    log's own (the view's `line`) for the evidence. `fill` turns an investigation-command template into a command
    (the engine's, with the incident's names).
    """
    if guess.category is None:
        return None
    category = Category(guess.category)
    info = catalog.categories.get(category) or catalog.categories[Category.unknown]
    title = (f"Statistical guess, no rule matched: looks like {category.value} "
             f"(learned fallback, p={guess.confidence:.2f}); driven by {drivers(guess)}")
    evidence = [EvidenceLine(line=line_of(n) if line_of else n, text=_clip(line), source="input")
                for n, line in guess.evidence]
    return Diagnosis(
        category=category,
        cause=CAUSE,
        confidence=round(min(max(guess.confidence, 0.0), 1.0), 3),
        title=title,
        rule_id=RULE_PREFIX + category.value,
        evidence=evidence,
        remediation=["No rule recognised this log; a model trained on labelled public logs guesses the category "
                     "from its wording. Confirm it from the evidence lines before acting.",
                     *info.remediation],
        commands=[fill(c) for c in info.commands],
    )


def drivers(guess: Guess) -> str:
    """The words that pushed the model most towards its guess, quoted, for a title."""
    return ", ".join(f"'{t}'" for t in guess.top_tokens) or "the log's wording as a whole"


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"
