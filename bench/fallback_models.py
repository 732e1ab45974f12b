#!/usr/bin/env python3
"""Is the learned fallback's model what holds it back on fresh logs? A stronger, independent text classifier, judged
on the same population (issue 11, round 19).

    python bench/prequential.py --json /tmp/answers.jsonl      # each wave's answers under the commit that judged it
    python bench/fallback_models.py --answers /tmp/answers.jsonl [--regimes earlier,others,no-rule]

The population is the fallback's own: the cases of the fresh waves (bench/prequential.WAVES) that the judging commit's
rules left unmatched. For each wave, a TF-IDF logistic regression (scikit-learn: word 1-2-grams and character 3-5-grams,
classes balanced) is trained on train as it reads it (engine.fallback_input) without that wave, and scores the wave's
no-rule cases. Training sets (`--regimes`):
- `earlier`: the cases that were in train before the wave was judged (what a retrain could have used then);
- `others`: every other wave and the cases before wave 4 (more data than was ever available, an upper bound);
- `no-rule`: only the other waves' no-rule cases (the fallback's population alone; few cases).

For each confidence cut it prints what answering there would have given, in bench/prequential.py --fallback-curve's
columns: answers, right, precision, answers on `unknown` cases, net right answers. If a stronger model's precision
levelled off where the committed fallback's does (0.8-0.88 at >= 0.8, round 18), the model is not what is missing.
Needs scikit-learn (requirements-dev.txt); the Lambda never imports this.

`--phrases N` also tries rules mined from wording instead of a model: every run of 3 normalised words (fallback.tokens,
on the lines the fallback reads) that N or more source threads of one guide category held before the wave, and no
thread of another label, answers that category on the wave's no-rule cases (a case whose phrases disagree is left
alone). Wording many threads share is what a hand-written rule generalises from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))
from bench.corpus_tool import thread_of  # noqa: E402
from bench.prequential import WAVES, _right as right, prefix_of  # noqa: E402
from incident_responder.classify import fallback, load_catalog  # noqa: E402
from incident_responder.classify.engine import fallback_input  # noqa: E402

CUTS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
REGIMES = ("earlier", "others", "no-rule")
TAIL_CHARS = 20_000  # the end of a long log decides; keeps the n-gram matrix small
PHRASE_WORDS = 3


def wave_of(case_id: str, waves=None) -> str | None:
    prefix = prefix_of(case_id)
    return next((w for w, prefixes, _ in waves or WAVES if prefix in prefixes), None)


def training_set(rows: list[dict], wave: str, regime: str, no_rule: set[str], waves=None) -> list[dict]:
    order = [w for w, _, _ in waves or WAVES]
    if regime == "earlier":
        return [r for r in rows if r["wave"] is None or order.index(r["wave"]) < order.index(wave)]
    if regime == "others":
        return [r for r in rows if r["wave"] != wave]
    if regime == "no-rule":
        return [r for r in rows if r["wave"] not in (None, wave) and r["id"] in no_rule]
    raise ValueError(f"unknown regime {regime!r}; choose from {', '.join(REGIMES)}")


def curve(scored: list[tuple[dict, str, float]], cuts=CUTS) -> list[tuple[float, int, int, int]]:
    """Per cut: answers, right answers, and answers that spoil a right `unknown` (label or `also` unknown)."""
    out = []
    for cut in cuts:
        chosen = [(row, guess) for row, guess, p in scored if guess != "unknown" and p >= cut]
        good = sum(right(row, guess) for row, guess in chosen)
        spoiled = sum(1 for row, guess in chosen if not right(row, guess) and right(row, "unknown"))
        out.append((cut, len(chosen), good, spoiled))
    return out


def score_wave(train: list[dict], test: list[dict]) -> list[tuple[dict, str, float]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    if not test:
        return []
    if len({r["label"] for r in train}) < 2:
        return [(row, "unknown", 1.0) for row in test]
    model = make_pipeline(
        make_union(TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                   token_pattern=r"[A-Za-z_][A-Za-z0-9_]+"),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True)),
        LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced"))
    model.fit([r["text"][-TAIL_CHARS:] for r in train], [r["label"] for r in train])
    probabilities = model.predict_proba([r["text"][-TAIL_CHARS:] for r in test])
    classes = list(model.classes_)
    return [(row, classes[max(range(len(p)), key=p.__getitem__)], float(max(p))) for row, p in zip(test, probabilities)]


def phrases(text: str) -> set[str]:
    """The runs of PHRASE_WORDS normalised words on the lines the fallback reads (not runs of placeholders alone)."""
    found = set()
    for _, line in fallback.select_lines(text):
        words = fallback.tokens(line)
        for i in range(len(words) - PHRASE_WORDS + 1):
            run = words[i:i + PHRASE_WORDS]
            if not all(w in ("<num>", "<id>", "<long>") or len(w) <= 2 for w in run):
                found.add(" ".join(run))
    return found


def mined_phrases(train: list[dict], threads: int) -> dict[str, str]:
    """phrase -> guide category, for the phrases `threads` or more threads of that category hold, and none of another."""
    holders: dict[str, dict[str, set[str]]] = {}
    for row in train:
        for phrase in row["phrases"]:
            holders.setdefault(phrase, {}).setdefault(row["label"], set()).add(row["thread"])
    return {phrase: label for phrase, by_label in holders.items() if len(by_label) == 1
            for label, seen in by_label.items() if label != "unknown" and len(seen) >= threads}


def phrase_answers(train: list[dict], test: list[dict], threads: int) -> list[tuple[dict, str, float]]:
    mined = mined_phrases(train, threads)
    scored = []
    for row in test:
        said = {mined[p] for p in row["phrases"] if p in mined}
        scored.append((row, said.pop() if len(said) == 1 else "unknown", 1.0))
    return scored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=Path, required=True, help="bench/prequential.py --json's output")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus" / "train.jsonl")
    parser.add_argument("--regimes", default=",".join(REGIMES), help=f"comma-separated, of {', '.join(REGIMES)}")
    parser.add_argument("--phrases", type=int, metavar="N", action="append", default=[],
                        help="also answer by mined phrases held by N or more threads of one category (repeatable)")
    args = parser.parse_args(argv)
    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    if bad := [r for r in regimes if r not in REGIMES]:
        parser.error(f"no regime {', '.join(bad)}; the regimes are {', '.join(REGIMES)}")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        parser.error("needs scikit-learn: `make .venv/.dev-installed` installs it (requirements-dev.txt)")
    try:
        answers = [json.loads(line) for line in args.answers.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"--answers {args.answers}: {exc}; write it with `python bench/prequential.py --json PATH`")
    no_rule = {a["id"] for a in answers if a.get("rule_id") is None}

    catalog = load_catalog()
    rows = []
    for line in args.corpus.read_text(encoding="utf-8").splitlines():
        if line.strip():
            case = json.loads(line)
            text = fallback_input(case["log"], catalog)
            rows.append({"id": case["id"], "label": case["label"], "also": case.get("also"), "text": text,
                         "wave": wave_of(case["id"]), "thread": thread_of(case["source"]),
                         "phrases": phrases(text) if args.phrases else set()})
    population = [r for r in rows if r["wave"] is not None and r["id"] in no_rule]
    categorised = sum(1 for r in population if r["label"] != "unknown")
    print(f"no rule matched: {len(population)} cases of the fresh waves, {categorised} of them labelled with a guide "
          f"category")
    for regime in regimes:
        scored = []
        for wave, _, _ in WAVES:
            test = [r for r in population if r["wave"] == wave]
            scored += score_wave(training_set(rows, wave, regime, no_rule), test)
        print(f"\nTF-IDF logistic regression, trained on `{regime}`:")
        print(f"{'confidence >=':>14} {'answers':>8} {'right':>6} {'precision':>9} {'on unknown':>10} {'net right':>9}")
        for cut, answered, good, spoiled in curve(scored):
            precision = f"{good / answered:.2f}" if answered else "-"
            print(f"{cut:>14} {answered:>8} {good:>6} {precision:>9} {spoiled:>10} {good - spoiled:>9}")
    for threads in args.phrases:
        scored = []
        for wave, _, _ in WAVES:
            test = [r for r in population if r["wave"] == wave]
            scored += phrase_answers(training_set(rows, wave, "earlier", no_rule), test, threads)
        (_, answered, good, spoiled), = curve(scored, cuts=(1.0,))
        precision = f"{good / answered:.2f}" if answered else "-"
        print(f"\nphrases of {PHRASE_WORDS} words held by >= {threads} threads of one category before the wave: "
              f"{answered} answers, {good} right ({precision}), {spoiled} on unknown, net {good - spoiled:+d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
