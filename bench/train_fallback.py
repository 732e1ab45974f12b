#!/usr/bin/env python3
"""Train the classifier's learned fallback (logistic regression) on corpus/train.jsonl and write its model file.

    python bench/train_fallback.py                 # writes functions/incident_responder/classify/fallback_model.json
    python bench/train_fallback.py --check         # exit 1 if the committed model is not what training produces
    python bench/train_fallback.py --report [--corpus ../shared/corpus/dev.jsonl ...]
                                                   # figures: train out-of-fold, then each --corpus

Deterministic (no random state beyond a fixed salt for the folds; numpy sums without BLAS): the same
train file gives the same model file. numpy is needed here only; the Lambda scores in pure Python. Steps:
1. Folds: cases are grouped by source thread (bench/corpus_tool.thread_of) into FOLDS folds, so no thread
   is on both sides of a fold.
2. Out-of-fold scores: for each fold, a model trained on the other folds scores it.
3. Calibration: one temperature T for the posterior, fitted on the out-of-fold scores by minimising the
   negative log-likelihood; then an isotonic table (pool-adjacent-violators) from the scaled posterior of
   the predicted class to how often such out-of-fold non-unknown answers were right. The fallback only
   answers where no rule matched, and there failures outside the guide are far more common than in the
   whole corpus; so `unknown` cases are weighted up to UNKNOWN_SHARE of the calibration population, for
   the temperature, the table and the threshold alike.
4. Threshold: the lowest calibrated confidence at which the out-of-fold non-unknown answers at or above it
   are right >= TARGET_PRECISION of the (weighted) time; never below MIN_THRESHOLD. When no step of the table
   reaches it (a wrong answer pooled into the top step), the lowest posterior `min_score` at which the answers
   at or above it do, and the threshold is that posterior's calibrated confidence (choose_min_score).
5. The final model is trained on all of train, with T and the threshold from steps 3-4.

The model learns from `log` and `label` only; it reads each log as the Lambda's fallback does
(engine.fallback_input, the same engine.fallback_reading that classify() scores: the log's posted view,
escaped strings decoded and wrapped lines joined in place of their lines, without the lines a rule's
`exclude` refused). `also` is read for scoring alone: an out-of-fold answer equal to
a case's `also` counts as right in the calibration and the threshold, as bench/classifier_eval.py scores it
(a second answer that is equally right). `note` and `cause` are a labeller's words, not what the Lambda sees.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    from incident_responder.classify import fallback
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "functions"))
    from incident_responder.classify import fallback

sys.path.insert(0, str(ROOT))
from bench.corpus_tool import thread_of  # noqa: E402
from incident_responder.classify import classify, load_catalog  # noqa: E402
from incident_responder.classify.engine import fallback_input  # noqa: E402
from incident_responder.models import GUIDE_CATEGORIES  # noqa: E402

TRAIN = ROOT / "corpus" / "train.jsonl"
CLASSES: tuple[str, ...] = (*GUIDE_CATEGORIES, "unknown")
FOLDS = 10
SALT = "fallback-folds-v1"
MIN_DF = 3  # a feature must occur in at least this many training logs (one log's ids are not a pattern). 3 since
# 2,844 train cases: min_df 2 passed the 1 MB model budget (995 KiB; out-of-fold claims 341/342), 3 decimals instead
# gave 890 KiB and 287/288, min_df 3 gives 603 KiB and 266/266
# Logistic regression; chosen over naive Bayes (additive smoothing 0.1-1) by out-of-fold claims on train
# at the same precision. Then (helper fallback2, docs/classifier.md) L2 1e-5 to 3e-3 and 300 to 2000
# iterations, class weights, one-vs-rest, min_df 1, character n-grams, first-word and last-lines features
# and a words+characters ensemble were compared the same way: weaker regularisation (L2 1e-4 to 3e-4 at
# 600 to 2000 iterations) made more right claims at the same precision, every other change fewer.
L2 = 2e-4
STEP = 5.0
ITERATIONS = 1000
UNKNOWN_SHARE = 0.5
# The previous model's out-of-fold claims were right 212/213 (0.995); the threshold keeps that precision.
TARGET_PRECISION = 0.995
MIN_THRESHOLD = 0.5
DECIMALS = 4


def read_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        if row["label"] not in CLASSES:
            raise SystemExit(f"{path}: case {row.get('id')} has label {row['label']!r}, not one of {CLASSES}")
    return rows


def fold_of(rows: list[dict]) -> list[int]:
    """Each case's fold: threads sorted by a salted hash, dealt round-robin."""
    threads = sorted({thread_of(r["source"]) for r in rows},
                     key=lambda t: hashlib.sha256((SALT + t).encode()).hexdigest())
    fold = {t: i % FOLDS for i, t in enumerate(threads)}
    return [fold[thread_of(r["source"])] for r in rows]


def fit(docs: list[set[str]], labels: list[str]) -> dict:
    """Multinomial logistic regression with an L2 penalty, by full-batch gradient descent from zero.

    Features occur or not; a log's features are scaled by 1/sqrt(their number) (as Model.scores does).
    The sums run in numpy without BLAS (np.add.reduceat is sequential: once over each log's features for
    the scores, once over each feature's logs for the gradient), so the result does not depend on the
    machine's thread count. Returns the model's tables (no calibration yet).
    """
    import numpy as np  # training only: the Lambda scores in pure Python

    df = Counter(f for doc in docs for f in doc)
    vocab = sorted(f for f, n in df.items() if n >= MIN_DF)
    index = {f: i for i, f in enumerate(vocab)}
    rows_of = [sorted(index[f] for f in doc if f in index) for doc in docs]
    cols = np.array([c for row in rows_of for c in row], dtype=np.int64)
    scale = np.array([1.0 / math.sqrt(len(row)) if len(row) > 1 else 1.0 for row in rows_of])
    doc_of = np.array([i for i, row in enumerate(rows_of) for _ in row], dtype=np.int64)
    vals = scale[doc_of]
    has_features = np.array([bool(row) for row in rows_of])
    starts = np.array([0, *np.cumsum([len(row) for row in rows_of])[:-1]], dtype=np.int64)
    by_feature = np.argsort(cols, kind="stable")  # the gradient sums each feature's entries in log order
    present, feature_starts = np.unique(cols[by_feature], return_index=True)
    y = np.zeros((len(docs), len(CLASSES)))
    y[np.arange(len(docs)), [CLASSES.index(label) for label in labels]] = 1.0
    weights = np.zeros((len(vocab), len(CLASSES)))
    bias = np.zeros(len(CLASSES))
    n = float(len(docs))
    for _ in range(ITERATIONS):
        contributions = weights[cols] * vals[:, None]
        z = np.zeros((len(docs), len(CLASSES)))
        if len(cols):
            summed = np.add.reduceat(contributions, starts[has_features], axis=0)
            z[has_features] = summed
        z += bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        error = (p - y) / n
        gradient = np.zeros_like(weights)
        if len(cols):
            entries = (error[doc_of] * vals[:, None])[by_feature]
            gradient[present] = np.add.reduceat(entries, feature_starts, axis=0)
        weights -= STEP * (gradient + L2 * weights)
        bias -= STEP * error.sum(axis=0)
    return {"classes": list(CLASSES), "bias": [round(float(b), DECIMALS) for b in bias],
            "weights": {f: [round(float(w), DECIMALS) for w in weights[i]] for f, i in index.items()}}


def _model(tables: dict) -> fallback.Model:
    return fallback.Model.from_dict({"format": fallback.FORMAT, "format_version": fallback.FORMAT_VERSION,
                                     **tables, "temperature": 1.0, "calibration": [[0.0, 0.0]], "threshold": 1.0})


def out_of_fold(docs: list[set[str]], labels: list[str], folds: list[int]) -> list[list[float]]:
    """Each case's scores per class, from a model that never saw its fold."""
    scores: list[list[float]] = [[] for _ in docs]
    for k in range(FOLDS):
        train = [i for i, f in enumerate(folds) if f != k]
        model = _model(fit([docs[i] for i in train], [labels[i] for i in train]))
        for i, f in enumerate(folds):
            if f == k:
                scores[i] = model.scores(docs[i])
    return scores


def softmax(scores: list[float], temperature: float) -> list[float]:
    scaled = [s / temperature for s in scores]
    top = max(scaled)
    exps = [math.exp(s - top) for s in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def case_weights(labels: list[str]) -> list[float]:
    unknown = sum(label == "unknown" for label in labels)
    known = len(labels) - unknown
    if not unknown or not known:
        return [1.0] * len(labels)
    up = UNKNOWN_SHARE * known / ((1 - UNKNOWN_SHARE) * unknown)
    return [up if label == "unknown" else 1.0 for label in labels]


def fit_temperature(scores: list[list[float]], labels: list[str], weights: list[float]) -> float:
    """The T minimising the weighted negative log-likelihood (golden-section search on log T)."""
    truth = [CLASSES.index(label) for label in labels]

    def nll(log_t: float) -> float:
        t = math.exp(log_t)
        return -sum(w * math.log(max(softmax(s, t)[y], 1e-300)) for s, y, w in zip(scores, truth, weights))

    lo, hi = math.log(0.05), math.log(500.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return round(math.exp((lo + hi) / 2), DECIMALS)


def is_right(pred: str, accepted: str | frozenset[str]) -> bool:
    """`accepted`: the label, or every answer scored right for the case (its label and its `also`)."""
    return pred == accepted if isinstance(accepted, str) else pred in accepted


def accepted_answers(rows: list[dict]) -> list[frozenset[str]]:
    return [frozenset({r["label"], r["also"]} if isinstance(r.get("also"), str) else {r["label"]}) for r in rows]


def predictions(scores: list[list[float]], temperature: float) -> list[tuple[str, float]]:
    out = []
    for s in scores:
        probs = softmax(s, temperature)
        best = max(range(len(CLASSES)), key=lambda i: (probs[i], -i))
        out.append((CLASSES[best], probs[best]))
    return out


def isotonic(preds: list[tuple[str, float]], labels: list[str | frozenset[str]],
             weights: list[float]) -> list[list[float]]:
    """Pool-adjacent-violators over the non-unknown answers: [(lowest score, share right)], ascending."""
    points = sorted((conf, float(is_right(pred, label)), w) for (pred, conf), label, w in zip(preds, labels, weights)
                    if pred != "unknown")
    blocks: list[list[float]] = []  # [lowest score, weight, weighted right]
    for score, ok, w in points:
        if blocks and blocks[-1][0] == score:
            blocks[-1][1] += w
            blocks[-1][2] += w * ok
        else:
            blocks.append([score, w, w * ok])
        while len(blocks) > 1 and blocks[-2][2] / blocks[-2][1] >= blocks[-1][2] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1][1] += last[1]
            blocks[-1][2] += last[2]
    # A block of answers that were all right still does not make a guess certain: each block's share is
    # smoothed by one right and one wrong pseudo-answer (then kept non-decreasing).
    table: list[list[float]] = []
    for lowest, weight, right in blocks:
        share = (right + 1) / (weight + 2)
        table.append([round(lowest, DECIMALS), round(max(share, table[-1][1] if table else 0.0), DECIMALS)])
    table[0][0] = 0.0  # the first step covers every lower score
    return table


def calibrate(preds: list[tuple[str, float]], table: list[list[float]]) -> list[tuple[str, float]]:
    model = fallback.Model((), (), {}, 1.0, tuple((a, b) for a, b in table), 1.0, {})
    return [(pred, model.calibrated(score)) for pred, score in preds]


def _lowest_value_meeting_target(preds: list[tuple[str, float]], labels: list[str | frozenset[str]],
                                 weights: list[float]) -> float | None:
    """The lowest value (confidence or posterior) whose claims (non-unknown answers at or above it) are right
    >= TARGET_PRECISION of the (weighted) time, or None."""
    claims = sorted(((value, is_right(pred, label), w) for (pred, value), label, w in zip(preds, labels, weights)
                     if pred != "unknown"), key=lambda c: -c[0])
    best = None
    right = total = 0.0
    for i, (value, ok, w) in enumerate(claims):
        right += w * ok
        total += w
        last_at_this_value = i + 1 == len(claims) or claims[i + 1][0] < value
        if last_at_this_value and right / total >= TARGET_PRECISION:
            best = value
    return best


def choose_threshold(preds: list[tuple[str, float]], labels: list[str | frozenset[str]],
                     weights: list[float]) -> float:
    """The lowest calibrated confidence whose claims reach TARGET_PRECISION (1.0: none does)."""
    best = _lowest_value_meeting_target(preds, labels, weights)
    return round(max(1.0 if best is None else best, MIN_THRESHOLD), DECIMALS)


def choose_min_score(preds: list[tuple[str, float]], labels: list[str | frozenset[str]],
                     weights: list[float]) -> float | None:
    """The lowest posterior whose claims reach TARGET_PRECISION, or None.

    Used when no step of the calibrated table does: one wrong answer with a high posterior is pooled into the
    table's top step, every answer there then carries the same confidence, and no confidence threshold can leave
    it out; a threshold on the posterior itself can (the answers above the wrong one)."""
    return _lowest_value_meeting_target(preds, labels, weights)


def reliability(preds: list[tuple[str, float]], labels: list[str | frozenset[str]],
                weights: list[float]) -> list[dict]:
    """Per confidence band, the non-unknown answers: how many, their mean confidence, the (weighted) share right."""
    bands = ((0.0, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.01))
    out = []
    for lo, hi in bands:
        members = [(is_right(pred, label), conf, w) for (pred, conf), label, w in zip(preds, labels, weights)
                   if pred != "unknown" and lo <= conf < hi]
        if members:
            total = sum(w for _, _, w in members)
            out.append({"band": [lo, min(hi, 1.0)], "answers": len(members),
                        "mean_confidence": round(sum(c for _, c, _ in members) / len(members), 3),
                        "right": round(sum(ok for ok, _, _ in members) / len(members), 3),
                        "right_weighted": round(sum(w * ok for ok, _, w in members) / total, 3)})
    return out


def train(path: Path = TRAIN) -> tuple[dict, dict]:
    """(the model file's content, the out-of-fold details for the report)."""
    raw = path.read_bytes()
    rows = read_rows(path)
    # what the Lambda's fallback reads: the log's posted view without the lines a rule refused by its `exclude`
    catalog = load_catalog()
    docs = [fallback.document_features(fallback_input(r["log"], catalog)) for r in rows]
    labels = [r["label"] for r in rows]
    folds = fold_of(rows)
    oof = out_of_fold(docs, labels, folds)
    weights = case_weights(labels)
    temperature = fit_temperature(oof, labels, weights)
    accepted = accepted_answers(rows)
    posteriors = predictions(oof, temperature)
    table = isotonic(posteriors, accepted, weights)
    preds = calibrate(posteriors, table)
    threshold = choose_threshold(preds, accepted, weights)
    min_score = 0.0
    if threshold >= 1.0:  # no calibrated step reaches the target: choose on the posterior (choose_min_score)
        lowest = choose_min_score(posteriors, accepted, weights)
        if lowest is not None:
            min_score = round(lowest, DECIMALS)
            threshold = round(max(calibrate([("x", min_score)], table)[0][1], MIN_THRESHOLD), DECIMALS)
    claims = [is_right(p, acc) for (p, c), (_, score), acc in zip(preds, posteriors, accepted)
              if p != "unknown" and c >= threshold and score >= min_score]
    model = {
        "format": fallback.FORMAT,
        "format_version": fallback.FORMAT_VERSION,
        **fit(docs, labels),
        "temperature": temperature,
        "calibration": table,
        "threshold": threshold,
        "min_score": min_score,
        "meta": {
            "trained_on": "corpus/train.jsonl",
            "train_sha256": hashlib.sha256(raw).hexdigest(),
            "train_cases": len(rows),
            "class_counts": {c: labels.count(c) for c in CLASSES},
            "folds": FOLDS, "fold_salt": SALT, "l2": L2, "step": STEP, "iterations": ITERATIONS, "min_df": MIN_DF,
            "unknown_share": UNKNOWN_SHARE, "target_precision": TARGET_PRECISION,
            "out_of_fold": {"claims": len(claims), "claims_right": sum(claims),
                            "reliability": reliability(preds, accepted, weights)},
            "trainer": "bench/train_fallback.py",
        },
    }
    return model, {"rows": rows, "docs": docs, "labels": labels, "folds": folds, "model": model}


def _fold_models(details: dict) -> list[fallback.Model]:
    """Per fold, a model trained without it, with the final calibration and threshold (for out-of-fold figures)."""
    docs, labels, folds, final = details["docs"], details["labels"], details["folds"], details["model"]
    models = []
    for k in range(FOLDS):
        train_ = [i for i, f in enumerate(folds) if f != k]
        tables = fit([docs[i] for i in train_], [labels[i] for i in train_])
        models.append(fallback.Model.from_dict({**final, **tables}))
    return models


def _classifiers(catalog, model_for):
    """(rules alone, rules + fallback, fallback alone) as classifier_eval classifiers.

    `model_for(log)` picks the fallback model (on train: the one whose training folds left the log out).
    """
    # the engine's own no-rule answer, and what its fallback reads (from the same find_hits, not a second one)
    from incident_responder.classify.engine import _unknown, fallback_reading, fill_command, find_hits

    def fallback_alone(log, cat):
        _, tracebacks, doc = find_hits(log, cat)
        reading, shown = fallback_reading(doc)
        guessed = fallback.diagnose(reading, cat, lambda t: fill_command(t, {}), model_for(log), line_of=shown.line)
        return guessed or _unknown(doc, cat, {}, tracebacks)

    def rules_alone(log, cat):
        saved = os.environ.get(fallback.SWITCH)
        os.environ[fallback.SWITCH] = "off"
        try:
            return classify(log, catalog=cat)
        finally:
            if saved is None:
                del os.environ[fallback.SWITCH]
            else:
                os.environ[fallback.SWITCH] = saved

    def combined(log, cat):
        hits, _, _ = find_hits(log, cat)
        return rules_alone(log, cat) if hits else fallback_alone(log, cat)

    return {"rules alone": rules_alone, "rules + fallback": combined, "fallback alone": fallback_alone}


def _row(name: str, ev) -> str:
    recalls = " ".join(f"{ev.per_label[c]['recall']:.2f}" for c in CLASSES)
    return (f"  {name:<17}{ev.accuracy:>6.3f}{ev.macro_f1:>7.3f}{ev.min_recall:>7.3f} "
            f"{ev.unknown_wrong_claims:>4d}/{ev.unknown_cases:<4d}{ev.claims_correct:>5d}/{ev.claims:<4d}"
            f"{ev.claim_precision:>6.3f}{ev.high_confidence_correct:>5d}/{ev.high_confidence:<4d}"
            f"{ev.high_confidence_precision:>6.3f}{ev.fallback_correct:>4d}/{ev.fallback:<4d}  {recalls}")


def report(details: dict, corpora: list[Path]) -> str:
    from bench.classifier_eval import evaluate, read_corpus

    catalog = load_catalog()
    header = (f"  {'':<17}{'acc':>6}{'mF1':>7}{'minR':>7}{'wrong-unk':>10}{'non-unk right':>16}"
              f"{'conf>=.8 right':>16}{'fallback':>9}  recall: " + " ".join(c[:4] for c in CLASSES))
    out = []
    logs = {r["log"]: f for r, f in zip(details["rows"], details["folds"])}
    fold_models = _fold_models(details)
    name = "train, fallback out-of-fold (rules were written from train: rules alone are in-sample)"
    out += [f"{name} ({len(details['rows'])} cases)", header]
    for label, classifier in _classifiers(catalog, lambda log: fold_models[logs[log]]).items():
        out.append(_row(label, evaluate(details["rows"], catalog, classifier)))
    final = fallback.Model.from_dict(details["model"])
    for path in corpora:
        rows = read_corpus(path)
        out += ["", f"{path} ({len(rows)} cases, the committed model)", header]
        for label, classifier in _classifiers(catalog, lambda log: final).items():
            out.append(_row(label, evaluate(rows, catalog, classifier)))
    return "\n".join(out)


def dumps(model: dict) -> str:
    return json.dumps(model, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=TRAIN, help="the training corpus (default: corpus/train.jsonl)")
    parser.add_argument("--out", type=Path, default=fallback.MODEL_PATH, help="where to write the model")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    parser.add_argument("--report", action="store_true",
                        help="print figures (rules alone, rules + fallback, fallback alone) instead of writing")
    parser.add_argument("--corpus", type=Path, action="append", default=[],
                        help="with --report: also a held-out corpus (repeatable)")
    args = parser.parse_args(argv)
    model, details = train(args.train)
    if args.report:
        print(report(details, args.corpus))
        return 0
    text = dumps(model)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is not what bench/train_fallback.py produces from {args.train}: retrain",
                  file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    meta = model["meta"]
    print(f"wrote {args.out} ({len(text) / 1024:.0f} KiB, {len(model['weights'])} features); "
          f"T={model['temperature']} threshold={model['threshold']} min_score={model['min_score']}; out-of-fold claims "
          f"{meta['out_of_fold']['claims_right']}/{meta['out_of_fold']['claims']} right")
    for band in meta["out_of_fold"]["reliability"]:
        print(f"  confidence {band['band']}: {band['answers']} answers, mean {band['mean_confidence']}, "
              f"right {band['right']} (weighted {band['right_weighted']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
