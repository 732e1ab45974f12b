#!/usr/bin/env python3
"""Build the labelled failure-log corpus (issue 11): merge raw case files, drop duplicates, split by thread.

    python bench/corpus_tool.py build RAW.jsonl [RAW.jsonl ...] [--dev ../shared/corpus/dev.jsonl] [--out corpus]
    python bench/corpus_tool.py stats [corpus/train.jsonl corpus/test.jsonl corpus/test2.jsonl]
    python bench/corpus_tool.py reposts corpus/train.jsonl corpus/test.jsonl [../shared/corpus/dev.jsonl]
    python bench/corpus_tool.py distinct corpus/test2.jsonl --out /tmp/test2-distinct.jsonl

`build` reads the raw JSON Lines files in the order given (one case a line: id, source, log, label, cause,
optional also, tool, note), then

1. drops a case whose log is an exact duplicate (after stripping surrounding whitespace) of an earlier one;
2. drops a case whose source thread is one of the dev corpus's (those logs are already known to the rules);
3. groups the cases by source thread (`thread_of`: scheme and host lowercased, fragment, query, trailing
   slash and a `/comments...`, `/files`, `/commits` suffix removed; a Stack Overflow question is
   `/questions/<id>`), so one thread never lands in both parts;
4. splits deterministically: within each category (a thread counts under its first case's label) the
   threads are ordered by SHA-256 of `SALT + thread` and taken into `test` until the category has
   max(--min-per-category, round(--test-fraction * its cases)) test cases (never all of them);
5. writes `<out>/train.jsonl` and `<out>/test.jsonl`, cases sorted by id, and prints the counts.

Standard library only. The same inputs always give the same split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SALT = "issue-11-corpus-split-v1:"
LABELS: tuple[str, ...] = (
    "entry_point", "cuda_gpu", "python_dependencies", "sagemaker_environment", "file_permissions_paths",
    "workflow_parsing", "aws_credentials", "cdk_bootstrap_trust", "unknown",
)
REQUIRED = ("id", "source", "log", "label", "cause")
FIELD_ORDER = ("id", "source", "label", "also", "cause", "tool", "note", "log")
_SUFFIX = re.compile(r"/(?:comments?|files|commits|checks)(?:/.*)?$")
_SO_QUESTION = re.compile(r"^(/questions/\d+)(?:/.*)?$")


class CorpusError(ValueError):
    pass


def thread_of(url: str) -> str:
    """The source thread a URL belongs to: the same issue, PR, discussion or question gives the same string."""
    parts = urlsplit(url.strip())
    path = _SUFFIX.sub("", parts.path).rstrip("/")
    host = parts.netloc.lower()
    if host.endswith("stackoverflow.com") or host.endswith("stackexchange.com") or host.endswith("serverfault.com"):
        path = _SO_QUESTION.sub(r"\1", path)
    return urlunsplit((parts.scheme.lower(), host, path, "", ""))


def _split_key(thread: str) -> str:
    return hashlib.sha256((SALT + thread).encode("utf-8")).hexdigest()


def read_cases(path: Path) -> list[dict]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{number}: not JSON ({exc.msg})") from None
        missing = [f for f in REQUIRED if not isinstance(case.get(f), str) or not case[f].strip()]
        if missing:
            raise CorpusError(f"{path}:{number}: missing or empty field(s) {', '.join(missing)}")
        if case["label"] not in LABELS:
            raise CorpusError(f"{path}:{number}: label {case['label']!r} is not one of {', '.join(LABELS)}")
        also = case.get("also")
        if also is not None and (also not in LABELS or also == case["label"]):
            raise CorpusError(f"{path}:{number}: also {also!r} must be another category from {', '.join(LABELS)}")
        cases.append(case)
    return cases


def merge(raw: list[list[dict]], dev_sources: set[str]) -> tuple[list[dict], dict[str, list[str]]]:
    """All cases in input order, without duplicate logs and dev threads; also what was dropped and why."""
    seen_logs: dict[str, str] = {}
    seen_ids: set[str] = set()
    kept: list[dict] = []
    dropped: dict[str, list[str]] = defaultdict(list)
    for cases in raw:
        for case in cases:
            if case["id"] in seen_ids:
                raise CorpusError(f"duplicate id {case['id']!r}: give every raw case its own id")
            seen_ids.add(case["id"])
            text = case["log"].strip()
            if text in seen_logs:
                dropped["duplicate_log"].append(f"{case['id']} (same log as {seen_logs[text]})")
                continue
            if thread_of(case["source"]) in dev_sources:
                dropped["dev_thread"].append(case["id"])
                continue
            seen_logs[text] = case["id"]
            kept.append(case)
    return kept, dropped


def split(cases: list[dict], test_fraction: float, min_per_category: int) -> tuple[list[dict], list[dict]]:
    threads: dict[str, list[dict]] = defaultdict(list)
    for case in cases:
        threads[thread_of(case["source"])].append(case)
    by_label: dict[str, list[str]] = defaultdict(list)
    for thread, members in threads.items():
        by_label[members[0]["label"]].append(thread)
    test_threads: set[str] = set()
    for label, label_threads in by_label.items():
        total = sum(len(threads[t]) for t in label_threads)
        target = min(max(min_per_category, round(test_fraction * total)), total - 1)
        taken = 0
        for thread in sorted(label_threads, key=_split_key):
            if taken >= target:
                break
            test_threads.add(thread)
            taken += len(threads[thread])
    test = [c for c in cases if thread_of(c["source"]) in test_threads]
    train = [c for c in cases if thread_of(c["source"]) not in test_threads]
    return train, test


def _ordered(case: dict) -> dict:
    out = {k: case[k] for k in FIELD_ORDER if k in case}
    out.update({k: v for k, v in case.items() if k not in out})
    return out


def _id_key(case: dict) -> tuple[str, int]:
    match = re.match(r"^(\D*)(\d+)$", case["id"])
    return (match.group(1), int(match.group(2))) if match else (case["id"], 0)


def write(path: Path, cases: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(_ordered(c), ensure_ascii=False) for c in sorted(cases, key=_id_key)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def table(parts: dict[str, list[dict]]) -> str:
    counts = {name: Counter(c["label"] for c in cases) for name, cases in parts.items()}
    names = list(parts)
    out = [f"{'category':<24}" + "".join(f"{n:>8}" for n in names) + f"{'all':>8}"]
    for label in LABELS:
        row = [counts[n][label] for n in names]
        out.append(f"{label:<24}" + "".join(f"{v:>8}" for v in row) + f"{sum(row):>8}")
    totals = [len(parts[n]) for n in names]
    out.append(f"{'total':<24}" + "".join(f"{v:>8}" for v in totals) + f"{sum(totals):>8}")
    also = {n: sum(1 for c in parts[n] if c.get("also")) for n in names}
    threads = {n: len({thread_of(c["source"]) for c in parts[n]}) for n in names}
    out.append(f"{'with also':<24}" + "".join(f"{also[n]:>8}" for n in names))
    out.append(f"{'threads':<24}" + "".join(f"{threads[n]:>8}" for n in names))
    return "\n".join(out)


def build(args: argparse.Namespace) -> int:
    raw = [read_cases(Path(p)) for p in args.raw]
    dev_sources: set[str] = set()
    if args.dev:
        dev_sources = {thread_of(c["source"]) for c in read_cases_loose(Path(args.dev))}
    cases, dropped = merge(raw, dev_sources)
    train, test = split(cases, args.test_fraction, args.min_per_category)
    out = Path(args.out)
    write(out / "train.jsonl", train)
    write(out / "test.jsonl", test)
    print(f"read {sum(len(r) for r in raw)} raw cases from {len(raw)} file(s); kept {len(cases)}")
    for reason, ids in sorted(dropped.items()):
        print(f"dropped ({reason}): {len(ids)}: {', '.join(ids)}")
    print(table({"train": train, "test": test}))
    return 0


# `reposts`: the same log posted in two threads (an author filing one report in two repositories) escapes
# thread_of. Two posts of one tool's standard message from different projects are not reposts: they share
# its wording but not the poster's particulars (numbers, times, home directories, their own file names).
_WORD = re.compile(r"[A-Za-z0-9_./:-]+")
_PARTICULAR = re.compile(r"\d{3,}|\d+:\d+|/home/|/users/|c:\\users", re.IGNORECASE)
SHINGLE_WORDS = 8


def shingles(log: str, k: int = SHINGLE_WORDS) -> set[str]:
    """Every run of k consecutive words of the log, lowercased."""
    words = _WORD.findall(log.lower())
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def reposts(first: list[dict], second: list[dict], containment: float = 0.9, particulars: int = 5
            ) -> list[tuple[str, str, float, int]]:
    """Pairs (first id, second id, containment, particulars) of logs, one from each list, where at least
    `containment` of the smaller log's shingles are in the other's and at least `particulars` of the shared
    shingles carry the poster's own particulars."""
    index: dict[str, list[int]] = defaultdict(list)
    firsts = [shingles(c["log"]) for c in first]
    for i, sh in enumerate(firsts):
        for x in sh:
            index[x].append(i)
    found = []
    for case in second:
        sh = shingles(case["log"])
        shared: Counter = Counter(i for x in sh for i in index.get(x, ()))
        for i, n in shared.items():
            smaller = min(len(sh), len(firsts[i]))
            if smaller and n / smaller >= containment:
                own = sum(1 for x in sh & firsts[i] if _PARTICULAR.search(x))
                if own >= particulars:
                    found.append((first[i]["id"], case["id"], round(n / smaller, 3), own))
    return found


def reposts_cmd(args: argparse.Namespace) -> int:
    parts = [(Path(p).stem, read_cases_loose(Path(p))) for p in args.files]
    found = [(a, b, *pair) for n, (a, ca) in enumerate(parts) for b, cb in parts[n + 1:] for pair in reposts(ca, cb)]
    for a, b, id_a, id_b, share, own in found:
        print(f"{a} {id_a} ~ {b} {id_b}: {share:.0%} of the smaller log's {SHINGLE_WORDS}-word runs, {own} with "
              "the poster's particulars")
    print(f"{len(found)} repost(s) across {', '.join(name for name, _ in parts)}")
    return 1 if found else 0


def distinct(cases: list[dict], containment: float = 0.8) -> tuple[list[dict], list[tuple[str, str]]]:
    """The cases in id order, keeping only the first of each group whose logs share `containment` of the smaller
    log's shingles (one tool's standard message posted in several threads counts once); also (dropped, kept) ids."""
    ordered = sorted(cases, key=_id_key)
    position = {case["id"]: n for n, case in enumerate(ordered)}
    # one index over all logs (containment is symmetric), instead of one per case over the cases kept so far
    alike: dict[str, set[str]] = defaultdict(set)
    for first, second, _, _ in reposts(ordered, ordered, containment=containment, particulars=0):
        if first != second:
            alike[first].add(second)
            alike[second].add(first)
    kept: list[dict] = []
    kept_ids: set[str] = set()
    dropped: list[tuple[str, str]] = []
    for case in ordered:
        earlier = sorted((other for other in alike[case["id"]] if other in kept_ids), key=position.__getitem__)
        if earlier:
            dropped.append((case["id"], earlier[0]))
        else:
            kept.append(case)
            kept_ids.add(case["id"])
    return kept, dropped


def distinct_cmd(args: argparse.Namespace) -> int:
    kept, dropped = distinct(read_cases(Path(args.file)), args.containment)
    for gone, first in dropped:
        print(f"{gone}: the same wording as {first}")
    write(Path(args.out), kept)
    print(f"{len(kept)} of {len(kept) + len(dropped)} cases kept in {args.out}")
    return 0


def read_cases_loose(path: Path) -> list[dict]:
    """The dev corpus: only `source` is needed."""
    if not path.is_file():
        raise CorpusError(f"dev corpus {path} does not exist; pass --dev PATH or --dev ''")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stats(args: argparse.Namespace) -> int:
    print(table({Path(p).stem: read_cases(Path(p)) for p in args.files}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="merge raw files, drop duplicates and dev threads, split by thread")
    b.add_argument("raw", nargs="+", help="raw JSON Lines case files, in priority order")
    b.add_argument("--dev", default="../shared/corpus/dev.jsonl", help="dev corpus whose threads are excluded")
    b.add_argument("--out", default="corpus", help="output folder (train.jsonl, test.jsonl)")
    b.add_argument("--test-fraction", type=float, default=0.38, help="share of each category's cases in test")
    b.add_argument("--min-per-category", type=int, default=12, help="least test cases per category")
    b.set_defaults(func=build)
    s = sub.add_parser("stats", help="print counts per category of corpus files")
    s.add_argument("files", nargs="*", default=["corpus/train.jsonl", "corpus/test.jsonl", "corpus/test2.jsonl"])
    s.set_defaults(func=stats)
    r = sub.add_parser("reposts", help="logs posted again in another part (exit 1 if any)")
    r.add_argument("files", nargs="+", help="corpus files; every pair of them is compared")
    r.set_defaults(func=reposts_cmd)
    d = sub.add_parser("distinct", help="keep the first case of each group of near-identical logs")
    d.add_argument("file", help="a corpus file")
    d.add_argument("--out", required=True, help="where to write the kept cases")
    d.add_argument("--containment", type=float, default=0.8,
                   help="share of the smaller log's 8-word runs that makes two logs one wording")
    d.set_defaults(func=distinct_cmd)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CorpusError as exc:
        parser.error(str(exc))
    return 2


if __name__ == "__main__":
    sys.exit(main())
