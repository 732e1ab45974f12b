#!/usr/bin/env python3
"""Fresh-wave figures, reproduced from the repository's history (issue 11).

    python bench/prequential.py                      # each wave under the commit that judged it, then pooled
    python bench/prequential.py --fallback-curve     # also: what a lower fallback threshold would have answered
    python bench/prequential.py --waves 9,10 --json answers.jsonl

Each neutral wave of `corpus/train.jsonl` (docs/classifier.md, rounds 11-17) was scored once, before it joined
train and before any rule was written from it, by the commit listed in WAVES. Those scores are the honest estimate
of what the classifier does on failures nobody has classified yet; `test` and `test2` have been looked at too often
to be that estimate. This script checks each judging commit out (`git worktree add --detach`, in a temporary
directory, removed at the end), classifies the wave's cases with that commit's rules and learned fallback, and prints
the figures of bench/classifier_eval.py per wave and pooled. Labels are today's (a later label fix counts), and the
cases are the ones train holds now (a few cases were left out when their wave joined train), so a figure may differ
by a case from the one docs/classifier.md recorded at the time.

`--fallback-curve` also scores, for each case that no rule matched, the fallback model of that commit with no
threshold, and prints how many answers, right answers and answers on `unknown` cases each operating point would have
given. It needs the git history (a clone, not an exported tree) and takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent

# (wave, id prefixes, the commit that judged it): the commit whose rules and fallback scored the wave before it
# joined train; docs/classifier.md gives each judge and its keep rule.
WAVES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("4", ("ya", "yb", "yc", "yd", "ye", "yf", "yg", "yh"), "bd5bb8c"),  # round 11's judge
    ("5", ("qa", "qb", "qc", "qd", "qe", "qf", "qg", "qh"), "1e009a6"),  # round 12's
    ("6", ("pa", "pb", "pc", "pd", "pe", "pf", "pg", "ph"), "a4ed74c"),  # round 13's
    ("7", ("na", "nb", "nc", "nd", "ne", "nf", "ng", "nh"), "1c44dfc"),  # round 14's
    ("8", ("ma", "mb", "mc", "md", "me", "mf", "mg", "mh"), "ec45f99"),  # round 15's
    ("9", ("la", "lb", "lc", "ld", "le", "lf", "lg", "lh"), "613b1b3"),  # round 16's
    ("10", ("ka", "kb", "kc", "kd", "ke", "kf", "kg", "kh"), "4c414d3"),  # round 17's
    ("11", ("ja", "jb", "jc", "jd", "je", "jf", "jg", "jh"), "a25f0d9"),  # round 18's: the committed rules
)
# The projects issue 11 names as the pipeline's own (plus SAM and the AWS CLI/SDKs, which the product itself uses),
# matched against a case's `tool` field: the fresh figures on those tools and on all others.
PIPELINE_TOOLS = re.compile(
    r"sagemaker|deep learning container|\bdlc\b|pytorch|torch|cuda|nvidia|nvcc|gsplat|gaussian|3dgs|nerf|instant-ngp|"
    r"nvdiffrast|colmap|\bpip\b|conda|mamba|\buv\b|poetry|pipenv|setuptools|wheel|docker|\becr\b|github actions|"
    r"actions/|\bact\b|configure-aws-credentials|cdk|cloudformation|step functions|states|\basl|aws[- ]cli|boto|\bsam\b",
    re.IGNORECASE)
CURVE = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)


class HistoryError(RuntimeError):
    pass


def prefix_of(case_id: str) -> str:
    match = re.match(r"[a-z]+", case_id)
    return match.group(0) if match else ""


def worker(root: Path, corpus: Path, prefixes: set[str]) -> None:
    """Runs inside a checkout of a judging commit: classify the wave with that commit's package, one JSON a line."""
    if not (root / "functions").is_dir():
        raise SystemExit(f"{root} has no functions/ folder: not a checkout of this repository")
    sys.path.insert(0, str(root / "functions"))
    import incident_responder
    from incident_responder.classify import classify, load_catalog
    from incident_responder.classify import engine, fallback

    loaded = Path(incident_responder.__file__).resolve()
    if not loaded.is_relative_to(root.resolve()):
        raise SystemExit(f"the worker imported incident_responder from {loaded}, not from the checkout {root}: "
                         "an installed copy shadows it; run with an environment where the package is not "
                         "installed from another path, or with PYTHONPATH unset")
    catalog = load_catalog()
    model = fallback.load_model()
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if prefix_of(row["id"]) not in prefixes:
            continue
        diagnosis = classify(row["log"], catalog=catalog)
        answer = {"id": row["id"], "category": diagnosis.category.value, "cause": diagnosis.cause,
                  "rule_id": diagnosis.rule_id, "confidence": diagnosis.confidence}
        if diagnosis.cause in ("no_matching_rule", fallback.CAUSE):
            guess = model.guess(engine.fallback_input(row["log"], catalog))
            answer["fallback"] = {"predicted": guess.predicted, "score": guess.score, "confidence": guess.confidence}
        print(json.dumps(answer), flush=True)


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise HistoryError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}; this script "
                           "needs the repository's history (a git clone with its commits, not an exported tree)")
    return done.stdout


def judge(wave: str, prefixes: tuple[str, ...], commit: str, corpus: Path, scratch: Path) -> list[dict]:
    tree = scratch / f"wave-{wave}"
    _git("worktree", "add", "--detach", "--force", str(tree), commit)
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLASSIFIER_FALLBACK")}
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(tree),
                               "--corpus", str(corpus), "--prefixes", ",".join(prefixes)],
                              cwd=tree, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise HistoryError(f"classifying with commit {commit} failed:\n{done.stderr[-2000:]}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    finally:
        _git("worktree", "remove", "--force", str(tree))


def _replay(rows: list[dict], answers: list[dict]):
    """A classifier for classifier_eval.evaluate() that gives back the recorded answers, row by row."""
    by_id = {a["id"]: a for a in answers}
    pending = iter(rows)

    def classifier(log: str, _catalog):
        row = next(pending)
        if row["log"] != log:
            raise AssertionError("classifier_eval.evaluate() no longer visits the rows in order")
        a = by_id[row["id"]]
        return SimpleNamespace(category=SimpleNamespace(value=a["category"]), cause=a["cause"],
                               rule_id=a["rule_id"], confidence=a["confidence"])
    return classifier


def _right(row: dict, category: str) -> bool:
    return category in (row["label"], row.get("also"))


INTERVAL_DRAWS = 2_000


def thread_interval(rows: list[dict], answers: dict[str, dict], draws: int = INTERVAL_DRAWS,
                    seed: int = 11) -> tuple[dict[str, tuple[float, float]], int]:
    """95 % intervals for the accuracy and for the share of answers other than `unknown` that are right, by resampling
    source threads with replacement (cases of one thread rise and fall together, so resampling cases would be too
    narrow). Fixed seed: the same corpus prints the same interval. Also returns how many threads there are."""
    sys.path.insert(0, str(ROOT))
    from bench.corpus_tool import thread_of

    threads: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for row in rows:
        category = answers[row["id"]]["category"]
        right = int(_right(row, category))
        claimed = int(category != "unknown")
        threads[thread_of(row.get("source", row["id"]))].append((right, claimed, right * claimed))
    sums = [tuple(map(sum, zip(*cases))) + (len(cases),) for cases in threads.values()]
    rng = random.Random(seed)
    accuracy, precision = [], []
    for _ in range(draws):
        right = claimed = claimed_right = total = 0
        for r, c, cr, n in (sums[rng.randrange(len(sums))] for _ in sums):
            right, claimed, claimed_right, total = right + r, claimed + c, claimed_right + cr, total + n
        accuracy.append(right / total)
        precision.append(claimed_right / claimed if claimed else 1.0)
    low, high = int(0.025 * draws), int(0.975 * draws) - 1
    intervals = {name: (sorted(v)[low], sorted(v)[high]) for name, v in (("accuracy", accuracy),
                                                                        ("claim_precision", precision))}
    return intervals, len(sums)


def fallback_curve(rows: list[dict], answers: dict[str, dict]) -> list[str]:
    """For the cases no rule matched: what answering at each fallback confidence would have given."""
    open_cases = [(r, answers[r["id"]]["fallback"]) for r in rows if "fallback" in answers[r["id"]]]
    covered = sum(1 for r, _ in open_cases if r["label"] != "unknown")
    lines = [f"no rule matched: {len(open_cases)} cases, {covered} of them labelled with a guide category",
             f"{'fallback confidence >=':>24} {'answers':>8} {'right':>6} {'precision':>9} "
             f"{'on unknown':>10} {'net right':>9}"]
    for cut in (*CURVE, "committed"):
        chosen = []
        for row, guess in open_cases:
            if guess["predicted"] == "unknown":
                continue
            if cut == "committed":
                if answers[row["id"]]["cause"] == "learned_fallback":
                    chosen.append((row, guess))
            elif guess["confidence"] >= cut:
                chosen.append((row, guess))
        right = sum(_right(r, g["predicted"]) for r, g in chosen)
        # an answer on a case whose `unknown` was right turns a right answer into a wrong one
        lost = sum(1 for r, g in chosen if not _right(r, g["predicted"]) and _right(r, "unknown"))
        precision = f"{right / len(chosen):.2f}" if chosen else "-"
        lines.append(f"{str(cut):>24} {len(chosen):>8} {right:>6} {precision:>9} {lost:>10} {right - lost:>9}")
    return lines


def rule_calibration(rows: list[dict], answers: dict[str, dict], waves: dict[str, str], prior: float) -> str:
    """Leave one wave out: lower each rule's confidence to its precision on the other waves (shrunk towards the
    authored confidence with `prior` answers' weight), then count the answers at >= HIGH_CONFIDENCE on the left-out
    wave. Would calibrating each rule on fresh answers make the confident answers on the next wave more often right?"""
    high = 0.8
    before = [0, 0]
    after = [0, 0]
    for wave in sorted(set(waves.values())):
        record: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            a = answers[row["id"]]
            if waves[row["id"]] != wave and a["category"] != "unknown" and a["cause"] != "learned_fallback":
                record[a["rule_id"]][0] += _right(row, a["category"])
                record[a["rule_id"]][1] += 1
        for row in rows:
            a = answers[row["id"]]
            if waves[row["id"]] != wave or a["category"] == "unknown":
                continue
            confidence = a["confidence"]
            if a["rule_id"] in record:
                right, n = record[a["rule_id"]]
                confidence = min(confidence, math.floor(100 * (right + prior * confidence) / (n + prior)) / 100)
            for tally, value in ((before, a["confidence"]), (after, confidence)):
                if value >= high:
                    tally[0] += _right(row, a["category"])
                    tally[1] += 1
    return (f"per-rule calibration, leave one wave out (prior weight {prior:g}): answers at confidence >= {high} "
            f"right {before[0]}/{before[1]} ({before[0] / max(1, before[1]):.3f}) as judged, "
            f"{after[0]}/{after[1]} ({after[0] / max(1, after[1]):.3f}) calibrated")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus" / "train.jsonl",
                        help="the corpus that holds the waves (default: corpus/train.jsonl)")
    parser.add_argument("--waves", help="comma-separated wave numbers (default: all of " +
                        ", ".join(w for w, _, _ in WAVES) + ")")
    parser.add_argument("--fallback-curve", action="store_true",
                        help="also print what lower fallback thresholds would have answered on the no-rule cases")
    parser.add_argument("--rule-calibration", type=float, metavar="PRIOR",
                        help="also test per-rule confidence calibration, leaving one wave out (PRIOR: the authored "
                        "confidence's weight, in answers)")
    parser.add_argument("--json", type=Path, help="write every answer (wave, commit, id, category, rule, "
                        "confidence, the fallback's guess on no-rule cases) to this JSON Lines file")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prefixes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    corpus = args.corpus.resolve()

    if args.worker:
        worker(args.worker, corpus, set(args.prefixes.split(",")))
        return 0

    sys.path.insert(0, str(ROOT / "bench"))
    import classifier_eval  # the figures and targets of the held-out parts, computed the same way

    chosen = WAVES
    if args.waves:
        wanted = {w.strip() for w in args.waves.split(",")}
        unknown = wanted - {w for w, _, _ in WAVES}
        if unknown:
            parser.error(f"no wave {', '.join(sorted(unknown))}; the waves are {', '.join(w for w, _, _ in WAVES)}")
        chosen = tuple(w for w in WAVES if w[0] in wanted)
    try:
        rows = classifier_eval.read_corpus(corpus)
    except classifier_eval.CorpusError as exc:
        parser.error(str(exc))

    with tempfile.TemporaryDirectory(prefix="prequential-") as scratch:
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(len(chosen), os.cpu_count() or 1))) as pool:
                runs = list(pool.map(lambda w: judge(*w, corpus, Path(scratch)), chosen))
        except HistoryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            _git("worktree", "prune")

    header = (f"{'wave':>5} {'commit':>8} {'cases':>6} {'correct':>8} {'accuracy':>8} {'macro-F1':>8} "
              f"{'min recall':>10} {'wrong on unknown':>16} {'non-unknown right':>17} {'conf>=0.8 right':>15}")
    print(header)
    pooled_rows: list[dict] = []
    pooled_answers: dict[str, dict] = {}
    wave_of: dict[str, str] = {}

    def line(name: str, commit: str, evaluation) -> str:
        e = evaluation
        return (f"{name:>5} {commit:>8} {e.total:>6} {e.correct:>8} {e.accuracy:>8.3f} {e.macro_f1:>8.3f} "
                f"{e.min_recall:>10.3f} {f'{e.unknown_wrong_claims}/{e.unknown_cases}':>16} "
                f"{f'{e.claims_correct}/{e.claims}':>17} {f'{e.high_confidence_correct}/{e.high_confidence}':>15}")

    out = args.json.open("w", encoding="utf-8") if args.json else None
    for (wave, prefixes, commit), answers in zip(chosen, runs):
        wave_rows = [r for r in rows if prefix_of(r["id"]) in prefixes]
        by_id = {a["id"]: a for a in answers}
        if not wave_rows:
            print(f"{wave:>5} {commit:>8}: no case of prefixes {','.join(prefixes)} in {corpus}")
            continue
        evaluation = classifier_eval.evaluate(wave_rows, catalog=object(), classifier=_replay(wave_rows, answers))
        print(line(wave, commit, evaluation))
        pooled_rows += wave_rows
        pooled_answers.update(by_id)
        wave_of.update({r["id"]: wave for r in wave_rows})
        if out:
            for a in answers:
                out.write(json.dumps({"wave": wave, "commit": commit, **a}) + "\n")
    if out:
        out.close()
    if len(chosen) > 1 and pooled_rows:
        pooled = classifier_eval.evaluate(pooled_rows, catalog=object(),
                                          classifier=_replay(pooled_rows, list(pooled_answers.values())))
        print(line("all", "-", pooled))
        interval, threads = thread_interval(pooled_rows, pooled_answers)
        print(f"  95% interval, resampling the {threads:,} source threads "
              f"({INTERVAL_DRAWS:,} draws): accuracy {interval['accuracy'][0]:.3f}-{interval['accuracy'][1]:.3f}, "
              f"answers other than unknown right {interval['claim_precision'][0]:.3f}-"
              f"{interval['claim_precision'][1]:.3f}")
        for name, keep in (("pipeline's own tools", True), ("other tools", False)):
            part = [r for r in pooled_rows if bool(PIPELINE_TOOLS.search(r.get("tool", ""))) == keep]
            if part:
                e = classifier_eval.evaluate(part, catalog=object(),
                                             classifier=_replay(part, list(pooled_answers.values())))
                print(f"  {name} (the `tool` field): {e.correct}/{e.total} ({e.accuracy:.3f}), non-unknown right "
                      f"{e.claims_correct}/{e.claims}, conf>=0.8 right {e.high_confidence_correct}/{e.high_confidence}")
        print("\npooled, per category (recall: right/cases; precision: right/answers):")
        for label, m in pooled.per_label.items():
            right = pooled.confusion[label][label]
            print(f"  {label:<24} recall {right:>4}/{m['support']:<4} {m['recall']:.3f}   "
                  f"precision {right:>4}/{m['predicted']:<4} {m['precision']:.3f}")
        print("\ntargets, pooled (issue 11's, as bench/classifier_eval.py reports them for a held-out part):")
        for name, value in pooled.figures().items():
            op, target = classifier_eval.TARGETS[name]
            print(f"  {'MET ' if classifier_eval._met(name, value) else 'MISS'} {name} = {value:.3f} "
                  f"(target {op} {target})")
    if args.fallback_curve and pooled_rows:
        print("\nthe learned fallback on the cases no rule matched, each wave under its judging commit's model:")
        print("\n".join(fallback_curve(pooled_rows, pooled_answers)))
    if args.rule_calibration is not None and pooled_rows:
        print("\n" + rule_calibration(pooled_rows, pooled_answers, wave_of, args.rule_calibration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
