#!/usr/bin/env python3
"""Evaluate the root-cause classifier on a labelled corpus and measure its throughput.

    python bench/classifier_eval.py --corpus ../shared/corpus/dev.jsonl [--synthetic-mb 50] [--json]

The corpus is JSON Lines with at least `label` (a guide category id or `unknown`) and `log`; an
optional `also` names a second answer that is equally right (an answer equal to it is scored as right,
and the case counts under that category in the per-category figures and the confusion matrix).
Prints accuracy, macro-F1, per-category precision/recall, the confusion matrix, the rate of
wrong claims on `unknown` cases, calibration of high-confidence answers, how often answers other
than `unknown` are right and how many came from the learned fallback (`--no-fallback`: rules
alone), and throughput in MB/s over a synthetic training log; then whether each target is met. Always exits 0 when the
evaluation ran (the targets are reported, not enforced: the tests enforce them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

try:
    from incident_responder.classify import classify, load_catalog
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))
    from incident_responder.classify import classify, load_catalog

from incident_responder.classify.catalog import RULES_DIR  # noqa: E402
from incident_responder.classify.fallback import CAUSE as FALLBACK_CAUSE, SWITCH as FALLBACK_SWITCH  # noqa: E402
from incident_responder.models import GUIDE_CATEGORIES  # noqa: E402

LABELS: tuple[str, ...] = (*GUIDE_CATEGORIES, "unknown")
HIGH_CONFIDENCE = 0.8
CONFIDENCE_BANDS = (("0 (unknown)", 0.0, 0.0001), ("(0, 0.5)", 0.0001, 0.5), ("[0.5, 0.8)", 0.5, 0.8),
                    ("[0.8, 1]", 0.8, 1.0001))

# issue 11's targets for a corpus of real logs (and the speed promises)
TARGETS = {
    "accuracy": (">=", 0.95),
    "macro_f1": (">=", 0.93),
    "min_recall": (">=", 0.85),
    "unknown_wrong_claim_rate": ("<=", 0.10),
    "claim_precision": (">=", 0.98),
    "high_confidence_precision": (">=", 0.99),
    "throughput_mb_s": (">=", 20.0),
    "one_mb_ms": ("<=", 100.0),
    "one_mb_no_rule_ms": ("<=", 100.0),
}


class CorpusError(ValueError):
    pass


@dataclass
class Evaluation:
    total: int
    correct: int
    per_label: dict[str, dict[str, float]]
    confusion: dict[str, dict[str, int]]
    unknown_cases: int
    unknown_wrong_claims: int
    high_confidence: int
    high_confidence_correct: int
    mistakes: list[dict[str, object]] = field(default_factory=list)
    calibration: dict[str, list[int]] = field(default_factory=dict)  # band -> [answers, right]
    claims: int = 0  # answers other than unknown
    claims_correct: int = 0
    fallback: int = 0  # answers from the learned fallback (no rule matched)
    fallback_correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def macro_f1(self) -> float:
        present = [m["f1"] for label, m in self.per_label.items() if m["support"] or m["predicted"]]
        return sum(present) / len(present) if present else 0.0

    @property
    def min_recall(self) -> float:
        recalls = [m["recall"] for m in self.per_label.values() if m["support"]]
        return min(recalls) if recalls else 0.0

    @property
    def unknown_wrong_claim_rate(self) -> float:
        return self.unknown_wrong_claims / self.unknown_cases if self.unknown_cases else 0.0

    @property
    def high_confidence_precision(self) -> float:
        return self.high_confidence_correct / self.high_confidence if self.high_confidence else 1.0

    @property
    def claim_precision(self) -> float:
        return self.claims_correct / self.claims if self.claims else 1.0

    def figures(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "min_recall": self.min_recall,
            "unknown_wrong_claim_rate": self.unknown_wrong_claim_rate,
            "claim_precision": self.claim_precision,
            "high_confidence_precision": self.high_confidence_precision,
        }


def read_corpus(path: Path) -> list[dict]:
    if not path.is_file():
        raise CorpusError(f"corpus {path} does not exist; pass --corpus PATH to a JSON Lines file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{number}: not JSON ({exc.msg}); each line must be one JSON object") from None
        if not isinstance(row, dict) or not isinstance(row.get("log"), str) or not isinstance(row.get("label"), str):
            raise CorpusError(f"{path}:{number}: needs string fields `label` and `log`")
        if "also" in row and not isinstance(row["also"], str):
            raise CorpusError(f"{path}:{number}: `also` must be a string (a second category that is equally right)")
        rows.append(row)
    if not rows:
        raise CorpusError(f"{path}: no cases")
    return rows


def _gold(row: dict, predicted: str) -> str:
    """The label the answer is scored against: `also` when the answer equals it (equally right), else `label`."""
    label = row["label"] if row["label"] in LABELS else "unknown"
    also = row.get("also")
    return predicted if isinstance(also, str) and also in LABELS and also == predicted else label


def evaluate(rows: list[dict], catalog=None, classifier=None) -> Evaluation:
    """`classifier(log, catalog) -> Diagnosis` defaults to the engine (bench/train_fallback.py passes its own)."""
    catalog = catalog or load_catalog()
    classifier = classifier or (lambda log, cat: classify(log, catalog=cat))
    confusion = {g: {p: 0 for p in LABELS} for g in LABELS}
    correct = unknown_cases = unknown_wrong = high = high_ok = claims = claims_ok = learned = learned_ok = 0
    mistakes = []
    calibration = {band: [0, 0] for band, _, _ in CONFIDENCE_BANDS}
    for row in rows:
        diagnosis = classifier(row["log"], catalog)
        predicted = diagnosis.category.value  # categories beyond the guide's are already `unknown`
        gold = _gold(row, predicted)
        confusion[gold][predicted] += 1
        correct += predicted == gold
        if predicted != "unknown":
            claims += 1
            claims_ok += predicted == gold
        if diagnosis.cause == FALLBACK_CAUSE:
            learned += 1
            learned_ok += predicted == gold
        if gold == "unknown":
            unknown_cases += 1
            unknown_wrong += predicted != "unknown"
        if diagnosis.confidence >= HIGH_CONFIDENCE:
            high += 1
            high_ok += predicted == gold
        for band, low, high_end in CONFIDENCE_BANDS:
            if low <= diagnosis.confidence < high_end:
                calibration[band][0] += 1
                calibration[band][1] += predicted == gold
        if predicted != gold:
            mistakes.append({"id": row.get("id"), "label": gold, "predicted": predicted,
                             "cause": diagnosis.cause, "rule": diagnosis.rule_id, "confidence": diagnosis.confidence})
    per_label = {}
    for label in LABELS:
        tp = confusion[label][label]
        support = sum(confusion[label].values())
        predicted = sum(confusion[g][label] for g in LABELS)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support,
                            "predicted": predicted}
    return Evaluation(len(rows), correct, per_label, confusion, unknown_cases, unknown_wrong, high, high_ok, mistakes,
                      calibration, claims, claims_ok, learned, learned_ok)


# ------------------------------------------------------------------ throughput


def synthetic_log(size_bytes: int, seed: int = 7, failure: bool = True) -> str:
    """A gsplat training log of about `size_bytes`: steps, progress bars, warnings, checkpoints, then a failure
    (`failure=False`: the log just stops, no rule matches, and the learned fallback runs: its worst case)."""
    rng = random.Random(seed)
    parts: list[str] = [
        "AlgorithmError: ExecuteUserScriptError: ExitCode 1",
        "2026-11-29T01:00:00Z Starting training job on ml.g4dn.xlarge",
    ]
    size = sum(len(p) + 1 for p in parts)
    step = 0
    while size < size_bytes:
        step += 1
        kind = rng.random()
        if kind < 0.80:
            line = (f"2026-11-29 01:{step // 6000 % 60:02d}:{step // 100 % 60:02d},{step % 1000:03d} INFO trainer "
                    f"step={step} loss={rng.uniform(0.01, 0.2):.4f} l1={rng.uniform(0.01, 0.1):.4f} "
                    f"ssim={rng.uniform(0.6, 0.99):.4f} psnr={rng.uniform(18, 32):.2f} "
                    f"num_gaussians={rng.randint(100_000, 3_000_000)} mem={rng.uniform(1, 12):.2f}GiB lr=1.6e-4")
        elif kind < 0.92:
            pct = step % 100
            line = (f"Training progress: {pct:3d}%|{'#' * (pct // 10):<10}| {step}/30000 "
                    f"[{step // 60:02d}:{step % 60:02d}<12:00, {rng.uniform(80, 150):.2f}it/s]")
        elif kind < 0.96:
            line = (f"2026-11-29 01:00:00,000 INFO densify step={step} split={rng.randint(0, 9999)} "
                    f"clone={rng.randint(0, 9999)} prune={rng.randint(0, 9999)} opacity_reset=False")
        elif kind < 0.98:
            line = (f"/usr/local/lib/python3.11/site-packages/torch/utils/data/dataloader.py:557: UserWarning: "
                    f"This DataLoader will create 4 worker processes in total. step={step}")
        elif kind < 0.99:
            line = f"2026-11-29 01:00:00,000 INFO Saving checkpoint to /opt/ml/checkpoints/ckpt_{step:06d}.pt"
        else:  # benign lines that the prefilter lets through, so the regexes run too
            line = (f"2026-11-29 01:00:00,000 INFO Uploading s3://sagemaker-us-west-2-000000000000/3dgs/"
                    f"ckpt_{step:06d}.pt (exit code of uploader: 0; no error)")
        parts.append(line)
        size += len(line) + 1
    if not failure:
        return "\n".join(parts)
    parts += [
        "Traceback (most recent call last):",
        '  File "/opt/ml/code/train_gaussian_production.py", line 412, in <module>',
        "    main()",
        '  File "/usr/local/lib/python3.11/site-packages/gsplat/rendering.py", line 530, in rasterization',
        "    colors = rasterize_to_pixels(",
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total "
        "capacity of 14.75 GiB of which 1.06 GiB is free.",
    ]
    return "\n".join(parts)


def throughput(megabytes: float, catalog) -> dict[str, float]:
    big = synthetic_log(int(megabytes * 1_000_000))
    start = time.perf_counter()
    diagnosis = classify(big, catalog=catalog)
    seconds = time.perf_counter() - start
    one_mb = synthetic_log(1_000_000, seed=11)
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        classify(one_mb, catalog=catalog)
        timings.append((time.perf_counter() - t0) * 1000)
    no_rule = synthetic_log(1_000_000, seed=13, failure=False)
    no_rule_timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        no_rule_diagnosis = classify(no_rule, catalog=catalog)
        no_rule_timings.append((time.perf_counter() - t0) * 1000)
    return {
        "one_mb_no_rule_ms": statistics.median(no_rule_timings),
        "no_rule_diagnosis": f"{no_rule_diagnosis.category.value}/{no_rule_diagnosis.cause}",
        "synthetic_mb": len(big.encode()) / 1e6,
        "seconds": seconds,
        "throughput_mb_s": len(big.encode()) / 1e6 / seconds,
        "one_mb_ms": statistics.median(timings),
        "synthetic_diagnosis": f"{diagnosis.category.value}/{diagnosis.cause}",
    }


# ------------------------------------------------------------------ output


def _met(name: str, value: float) -> bool:
    op, target = TARGETS[name]
    return value >= target if op == ">=" else value <= target


def render(evaluation: Evaluation, speed: dict[str, float] | None, cases: bool = True) -> str:
    out = [f"cases: {evaluation.total}   correct: {evaluation.correct}",
           f"accuracy: {evaluation.accuracy:.3f}   macro-F1: {evaluation.macro_f1:.3f}   "
           f"min recall: {evaluation.min_recall:.3f}",
           f"wrong claims on unknown cases: {evaluation.unknown_wrong_claims}/{evaluation.unknown_cases} "
           f"({evaluation.unknown_wrong_claim_rate:.2f})",
           f"confidence >= {HIGH_CONFIDENCE}: {evaluation.high_confidence_correct}/{evaluation.high_confidence} right "
           f"({evaluation.high_confidence_precision:.3f})",
           f"answers other than unknown: {evaluation.claims_correct}/{evaluation.claims} right "
           f"({evaluation.claim_precision:.3f})",
           f"from the learned fallback (no rule matched): {evaluation.fallback_correct}/{evaluation.fallback} "
           "right", "",
           f"{'category':<24}{'precision':>10}{'recall':>8}{'f1':>7}{'support':>9}"]
    for label in LABELS:
        m = evaluation.per_label[label]
        out.append(f"{label:<24}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}{m['support']:>9d}")
    short = {label: label[:6] for label in LABELS}
    out += ["", "confusion (rows: label, columns: predicted)",
            f"{'':<24}" + "".join(f"{short[p]:>8}" for p in LABELS)]
    for gold in LABELS:
        out.append(f"{gold:<24}" + "".join(f"{evaluation.confusion[gold][p]:>8d}" for p in LABELS))
    out += ["", "calibration (confidence band: answers, right):"]
    out += [f"  {band:<12} {n:>4} {right:>4}" + (f"  ({right / n:.2f})" if n else "")
            for band, (n, right) in evaluation.calibration.items()]
    if evaluation.mistakes and cases:
        out += ["", "mistakes:"]
        out += [f"  {m['id']}: {m['label']} -> {m['predicted']} ({m['rule']}, {m['confidence']})"
                for m in evaluation.mistakes]
    figures = evaluation.figures()
    if speed:
        out += ["", f"throughput: {speed['synthetic_mb']:.1f} MB in {speed['seconds']:.2f} s = "
                    f"{speed['throughput_mb_s']:.1f} MB/s (one core); 1 MB log: {speed['one_mb_ms']:.1f} ms "
                    f"(median of 5); synthetic log diagnosed as {speed['synthetic_diagnosis']}",
                f"1 MB log that no rule matches (the learned fallback runs): {speed['one_mb_no_rule_ms']:.1f} ms "
                f"(median of 5), diagnosed as {speed['no_rule_diagnosis']}"]
        figures.update({k: speed[k] for k in ("throughput_mb_s", "one_mb_ms", "one_mb_no_rule_ms")})
    out += ["", "targets:"]
    for name, value in figures.items():
        op, target = TARGETS[name]
        out.append(f"  {'MET ' if _met(name, value) else 'MISS'} {name} = {value:.3f} (target {op} {target})")
    return "\n".join(out)


def _rule_ids(path: Path) -> set[str]:
    ids = {line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()}
    return ids - {""}


def rules_without(source: Path | None, ids_file: Path, dest: Path) -> Path:
    """Copy the rule directory to `dest` without the rules `ids_file` lists; an id not in it is an error."""
    ids = _rule_ids(ids_file)
    found: set[str] = set()
    for path in sorted((source or RULES_DIR).glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        found |= {rule["id"] for rule in data.get("rules", []) if rule["id"] in ids}
        data["rules"] = [rule for rule in data.get("rules", []) if rule["id"] not in ids]
        (dest / path.name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    if ids - found:
        raise ValueError(f"{ids_file}: no such rule in the catalog: {', '.join(sorted(ids - found))}")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="JSON Lines with `label` and `log`")
    parser.add_argument("--synthetic-mb", type=float, default=50.0, help="size of the throughput log (0: skip)")
    parser.add_argument("--rules", type=Path, default=None, help="rule directory (default: the package's)")
    parser.add_argument("--without-rules", type=Path, default=None, metavar="FILE",
                        help="leave out the rules whose ids FILE lists (one a line, `#` comments), e.g. "
                             "bench/tainted_rules.txt, to report a figure with and without them")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-cases", action="store_true",
                        help="figures only, no case ids (the frozen test part: whoever runs it sees no case)")
    parser.add_argument("--no-fallback", action="store_true",
                        help=f"rules alone: no learned fallback on the no-rule path (sets {FALLBACK_SWITCH}=off)")
    args = parser.parse_args(argv)
    if args.no_fallback:
        os.environ[FALLBACK_SWITCH] = "off"
    try:
        rows = read_corpus(args.corpus)
    except CorpusError as exc:
        parser.error(str(exc))
    if args.without_rules is not None:
        try:
            rules_dir = rules_without(args.rules, args.without_rules, Path(tempfile.mkdtemp(prefix="rules-without-")))
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
        print(f"rules left out ({args.without_rules}): {', '.join(sorted(_rule_ids(args.without_rules)))}",
              file=sys.stderr)
    else:
        rules_dir = args.rules
    catalog = load_catalog(rules_dir)
    evaluation = evaluate(rows, catalog)
    speed = throughput(args.synthetic_mb, catalog) if args.synthetic_mb > 0 else None
    if args.json:
        figures = evaluation.figures()
        if speed:
            figures.update(speed)
        figures.update({"claims": evaluation.claims,
                        "fallback_answers": evaluation.fallback, "fallback_right": evaluation.fallback_correct,
                        "per_category": evaluation.per_label, "confusion": evaluation.confusion,
                        "calibration": evaluation.calibration,
                        "mistakes": [] if args.no_cases else evaluation.mistakes,
                        "targets_met": {k: _met(k, v) for k, v in figures.items() if k in TARGETS}})
        print(json.dumps(figures, indent=2))
    else:
        print(render(evaluation, speed, cases=not args.no_cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
