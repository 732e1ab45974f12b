#!/usr/bin/env python3
"""Compare learned-fallback candidates by out-of-fold figures on corpus/train.jsonl only (never test).

    python bench/fallback_candidates.py                       # the table in docs/classifier.md (a few minutes)
    python bench/fallback_candidates.py "l2=1e-4,iters=600"   # any candidates: fit/feature keywords below

Each candidate is trained 10 times (bench/train_fallback.py's folds by source thread) and calibrated
(temperature, isotonic table, threshold at TARGET_PRECISION) on its out-of-fold scores, as the trainer
does. Figures per candidate:
- claims: out-of-fold answers other than unknown at or above the threshold, right/total (all 448 cases);
- no-rule proxy: the same on the train cases that the rules of commit PRE_CORPUS_RULES (the last commit
  before any rule was written from the corpus) do not match at all: logs in wordings the rules had not
  met, which is what the fallback sees in use (the present rules were written from train, so on train
  they leave almost nothing to the fallback); `covered` = right answers / such cases of a guide category;
- no-rule now: the same on the train cases that today's rules do not match;
- nested: claims when the temperature, table and threshold are fitted without the case's fold;
- conf>=0.8: out-of-fold answers with a calibrated confidence >= 0.8 (any threshold), right/total;
- top-1: share of cases whose most likely class is the label.
Needs git (the pre-corpus rules are read from history) and numpy. Dense numpy (BLAS) for speed: figures
may differ from the trainer's in the last digit of a score, never in what the trainer writes.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))
import bench.train_fallback as tf  # noqa: E402
from incident_responder.classify import fallback as fb  # noqa: E402
from incident_responder.classify import load_catalog  # noqa: E402
from incident_responder.classify.engine import find_hits  # noqa: E402

PRE_CORPUS_RULES = "3d10399"  # corpus/test.jsonl committed; no rule written from the corpus yet
CANDIDATES = (
    "l2=1e-3,iters=300,target=0.98",  # the previous model
    "l2=1e-3,iters=300",
    "l2=3e-3,iters=300", "l2=1e-4,iters=300", "l2=1e-3,iters=1000",
    "l2=1e-4,iters=600", "l2=1e-4,iters=1000", "l2=2e-4,iters=1000", "l2=1e-4,iters=2000", "l2=3e-4,iters=2000",
    "l2=3e-5,iters=1000", "l2=1e-5,iters=1000",
    "l2=1e-3,iters=300,cw='balanced'", "l2=1e-3,iters=300,ovr=True", "l2=1e-3,iters=300,min_df=1",
    "l2=1e-3,iters=300,bigrams=False", "l2=1e-3,iters=300,chars=True",
    "l2=2e-4,iters=1000,chars=True", "l2=2e-4,iters=1000,first_word=True", "l2=1e-3,iters=300,tail=5",
    "l2=2e-4,iters=1000,all_lines=True", "l2=2e-4,iters=1000,ensemble_chars=0.5",
    # at a 0.995 target most feature and model variants get no threshold at all: the same at 0.99
    "l2=1e-3,iters=300,target=0.99", "l2=2e-4,iters=1000,target=0.99",
    "l2=1e-3,iters=300,cw='balanced',target=0.99", "l2=1e-3,iters=300,ovr=True,target=0.99",
    "l2=1e-3,iters=300,min_df=1,target=0.99", "l2=1e-3,iters=300,bigrams=False,target=0.99",
    "l2=2e-4,iters=1000,chars=True,target=0.99", "l2=2e-4,iters=1000,first_word=True,target=0.99",
    "l2=1e-3,iters=300,tail=5,target=0.99", "l2=2e-4,iters=1000,all_lines=True,target=0.99",
    "l2=2e-4,iters=1000,ensemble_chars=0.5,target=0.99",
)


def pre_corpus_no_rule(rows: list[dict]) -> list[bool]:
    """Whether the rules of PRE_CORPUS_RULES (run by that commit's engine) match nothing in each log."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", PRE_CORPUS_RULES, "functions"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        script = ("import json,sys\nfrom incident_responder.classify import classify\n"
                  "print(json.dumps([classify(json.loads(l)['log']).cause == 'no_matching_rule' "
                  "for l in sys.stdin if l.strip()]))")
        out = subprocess.run([sys.executable, "-c", script], input=tf.TRAIN.read_text(encoding="utf-8"),
                             capture_output=True, text=True, check=True, cwd=tmp,
                             env={**os.environ, "PYTHONPATH": str(Path(tmp) / "functions")})
    flags = json.loads(out.stdout)
    assert len(flags) == len(rows)
    return flags


def char_grams(token: str) -> set[str]:
    if token.startswith("<") or len(token) < 3:
        return set()
    w = f"<{token}>"
    return {"c:" + w[i:i + n] for n in (3, 4, 5) for i in range(len(w) - n + 1)}


def features(text: str, words=True, bigrams=True, chars=False, first_word=False, tail=0, all_lines=False) -> set[str]:
    saved = fb._looks_like_error
    if all_lines:
        fb._looks_like_error = lambda line: True
    try:
        lines = fb.select_lines(text)
    finally:
        fb._looks_like_error = saved
    out: set[str] = set()
    for i, (_, line) in enumerate(lines):
        toks = fb.tokens(line)
        if words:
            out.update(toks)
        if bigrams:
            out.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
        if chars:
            for t in toks:
                out.update(char_grams(t))
        if first_word and toks:
            out.add("f:" + toks[0])
        if tail and i >= len(lines) - tail:
            out.update("t:" + t for t in toks)
    return out


def oof_scores(docs, y, folds, min_df=2, l2=1e-3, iters=300, step=5.0, cw=None, ovr=False) -> np.ndarray:
    k_classes = len(tf.CLASSES)
    scores = np.zeros((len(docs), k_classes))
    weights_of = None
    if cw == "balanced":
        weights_of = len(y) / (k_classes * np.bincount(y, minlength=k_classes))
    for k in range(tf.FOLDS):
        train = [i for i, f in enumerate(folds) if f != k]
        test = [i for i, f in enumerate(folds) if f == k]
        df = Counter(f for i in train for f in docs[i])
        index = {f: j for j, f in enumerate(sorted(f for f, n in df.items() if n >= min_df))}

        def matrix(ids):
            x = np.zeros((len(ids), len(index)))
            for r, i in enumerate(ids):
                cols = [index[f] for f in docs[i] if f in index]
                if cols:
                    x[r, cols] = 1.0 / math.sqrt(len(cols)) if len(cols) > 1 else 1.0
            return x

        x, yy = matrix(train), y[train]
        n = len(train)
        target = np.zeros((n, k_classes))
        target[np.arange(n), yy] = 1
        sample = np.ones(n) if weights_of is None else weights_of[yy] / weights_of[yy].mean()
        w, b = np.zeros((len(index), k_classes)), np.zeros(k_classes)
        for _ in range(iters):
            z = x @ w + b
            if ovr:
                p = 1 / (1 + np.exp(-z))
            else:
                p = np.exp(z - z.max(1, keepdims=True))
                p /= p.sum(1, keepdims=True)
            err = (p - target) * sample[:, None] / n
            w -= step * (x.T @ err + l2 * w)
            b -= step * err.sum(0)
        scores[test] = matrix(test) @ w + b
    return scores


def figures(scores: np.ndarray, labels, folds, masks, target) -> dict:
    tf.TARGET_PRECISION = target
    s = scores.tolist()
    weights = tf.case_weights(labels)
    temperature = tf.fit_temperature(s, labels, weights)
    raw = tf.predictions(s, temperature)
    table = tf.isotonic(raw, labels, weights)
    preds = tf.calibrate(raw, table)
    threshold = tf.choose_threshold(preds, labels, weights)

    def claims(mask, cut, answers=preds):
        return [(p == label, label) for (p, c), label, m in zip(answers, labels, mask)
                if m and p != "unknown" and c >= cut]

    nested: list[tuple[str, float]] = [("unknown", 0.0)] * len(labels)
    cuts = [1.0] * len(labels)
    for k in range(tf.FOLDS):
        fit_ids = [i for i, f in enumerate(folds) if f != k]
        lab = [labels[i] for i in fit_ids]
        w = tf.case_weights(lab)
        t = tf.fit_temperature([s[i] for i in fit_ids], lab, w)
        tab = tf.isotonic(tf.predictions([s[i] for i in fit_ids], t), lab, w)
        cut = tf.choose_threshold(tf.calibrate(tf.predictions([s[i] for i in fit_ids], t), tab), lab, w)
        ids = [i for i, f in enumerate(folds) if f == k]
        for i, pc in zip(ids, tf.calibrate(tf.predictions([s[i] for i in ids], t), tab)):
            nested[i], cuts[i] = pc, cut
    nested_claims = [(p == label, label) for (p, c), cut, label in zip(nested, cuts, labels)
                     if p != "unknown" and c >= cut]
    everything = [True] * len(labels)
    proxy = masks["proxy"]
    proxy_covered = sum(m and label != "unknown" for m, label in zip(proxy, labels))
    return {"T": temperature, "threshold": threshold, "claims": claims(everything, threshold),
            "proxy": claims(proxy, threshold), "proxy_covered": proxy_covered,
            "now": claims(masks["now"], threshold), "nested": nested_claims,
            "high": claims(everything, 0.8),
            "top1": sum(p == label for (p, _), label in zip(raw, labels)) / len(labels)}


def fmt(pairs) -> str:
    right = sum(ok for ok, _ in pairs)
    wrong_unknown = sum(not ok and label == "unknown" for ok, label in pairs)
    return f"{right}/{len(pairs)}" + (f" ({wrong_unknown} on unknown)" if wrong_unknown else "")


def main(argv: list[str]) -> int:
    rows = tf.read_rows(tf.TRAIN)
    labels = [r["label"] for r in rows]
    y = np.array([tf.CLASSES.index(label) for label in labels])
    folds = tf.fold_of(rows)
    catalog = load_catalog()
    masks = {"proxy": pre_corpus_no_rule(rows), "now": [not find_hits(r["log"], catalog)[0] for r in rows]}
    print(f"train {len(rows)} cases; no-rule proxy (rules of {PRE_CORPUS_RULES}): {sum(masks['proxy'])} "
          f"({sum(m and label != 'unknown' for m, label in zip(masks['proxy'], labels))} of a guide category); "
          f"no rule now: {sum(masks['now'])}")
    print("| candidate | T | threshold | claims right | no-rule proxy right (covered) | no-rule now | nested claims "
          "| conf>=0.8 right | top-1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    cache: dict = {}
    for spec_text in argv or CANDIDATES:
        spec = eval(f"dict({spec_text})", {})  # a bench script's own argument: keyword list of a candidate
        target = spec.pop("target", 0.995)
        mix = spec.pop("ensemble_chars", 0.0)
        fkeys = ("words", "bigrams", "chars", "first_word", "tail", "all_lines")
        fspec = {k: spec.pop(k) for k in list(spec) if k in fkeys}
        key = tuple(sorted(fspec.items()))
        if key not in cache:
            cache[key] = [features(r["log"], **fspec) for r in rows]
        scores = oof_scores(cache[key], y, folds, **spec)
        if mix:
            chars_key = (("bigrams", False), ("chars", True), ("words", False))
            if chars_key not in cache:
                cache[chars_key] = [features(r["log"], words=False, bigrams=False, chars=True) for r in rows]
            scores = scores + mix * oof_scores(cache[chars_key], y, folds, **spec)
        f = figures(scores, labels, folds, masks, target)
        covered = sum(ok for ok, _ in f["proxy"])
        print(f"| `{spec_text}`{'' if 'target' in spec_text else f' (target {target})'} | {f['T']} | {f['threshold']} "
              f"| {fmt(f['claims'])} | {fmt(f['proxy'])} ({covered}/{f['proxy_covered']}) | {fmt(f['now'])} "
              f"| {fmt(f['nested'])} | {fmt(f['high'])} | {f['top1']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
