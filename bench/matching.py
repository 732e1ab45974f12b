#!/usr/bin/env python3
"""MB/s of every pattern that runs on untrusted text, on its worst input and on an ordinary log.

    python bench/matching.py [--size-kib 256] [--e2e-kib 1024] [--baseline-ref origin/main]
                             [--baseline-limit 0.25] [--only SUBSTRING] [--json]

Patterns: every rule pattern (patterns, exclude, require_nearby, exclude_nearby, traceback),
the masks and noise pattern of classify/text.py, the posted-form patterns of classify/posted.py
(colour codes, CI prefixes, entities, escapes), and every redaction pattern. For each, inputs
are generated from the pattern's own literals (a literal repeated, its literals glued, literals
scattered in filler at random, near misses, random printable text); the slowest is the
pattern's worst input. "average" is an ordinary gsplat training log (bench/classifier_eval.py's
synthetic log). t(2n)/t(n) is the time on twice the worst input over the time on it: 2 for a
linear pattern, less for a search that stops at an early match (for a pattern that scans 256 KiB in
under a millisecond the ratio is mostly timer and cache noise). Each figure is what the code does with the pattern (a rule's search for the
first match, a mask's or redaction's sub or replace over every match, with its replacement), best of 3.
A rule pattern with bounded gaps is measured as the engine runs it (matching.GapPattern).

The baseline column is Python's `re` on the patterns of --baseline-ref (the code before the
move to RE2), on the same worst inputs cut to 32 KiB, each run stopped after --baseline-limit
seconds (shown as "<x" when stopped: the MB/s is at most that).

Then end to end: classify() and redact() on 1 MiB hostile lines (the issue's examples and the
patterns' worst inputs). Target: >= 5 MB/s on the worst input of every pattern.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
try:
    from incident_responder import matching
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "functions"))
    from incident_responder import matching

from incident_responder import redact as redact_module  # noqa: E402
from incident_responder.classify import classify, load_catalog  # noqa: E402
from incident_responder.classify import engine as engine_module  # noqa: E402
from incident_responder.classify import posted as posted_module  # noqa: E402
from incident_responder.classify import text as text_module  # noqa: E402

sys.path.insert(0, str(ROOT))
from bench.classifier_eval import synthetic_log  # noqa: E402

TARGET_WORST_MB_S = 5.0
FILLER = " :_=/-.ab\\\"'@%"


@dataclass
class Entry:
    name: str
    source: str
    compiled: Any
    op: str = "search"  # what the code does with it: search (first match), sub (every match), finditer
    repl: Any = "x"
    baseline: Any = None
    figures: dict[str, float] = field(default_factory=dict)
    worst_input: str = ""
    baseline_mb_s: float | None = None
    scale: float = 0.0  # time(2n) / time(n) on the worst input: 2 for a linear pattern
    baseline_stopped: bool = False


# ------------------------------------------------------------------ the patterns


def current_patterns() -> list[Entry]:
    entries: list[Entry] = []
    for rule in load_catalog().rules:
        spec = rule.spec
        for fieldname in ("patterns", "exclude", "require_nearby", "exclude_nearby"):
            for index, (source, compiled) in enumerate(zip(getattr(spec, fieldname), getattr(rule, fieldname))):
                entries.append(Entry(f"{rule.id}:{fieldname}[{index}]", source, compiled))  # engine: search
        if spec.traceback is not None:
            for fieldname, compiled in (("exception", rule.tb_exception), ("last_frame", rule.tb_last_frame)):
                if compiled is not None:
                    entries.append(Entry(f"{rule.id}:traceback.{fieldname}", compiled.pattern, compiled))
    subs = {"_TIME": "<time>", "_DIGEST": "sha256:<digest>", "_UUID": "<uuid>", "_NUMBERS": text_module._number_token,
            "_SITE_PACKAGES": "<site-packages>/", "_HOME": "~", "_WINDOWS_PATH": text_module._posix_path}
    posted_subs = {"_ANSI": "", "_CI_PREFIX": posted_module._ci_prefix, "_CONSOLE_PREFIX": "",
                   "_ENTITY": posted_module._entity, "_UNICODE_ESCAPE": posted_module._unicode_escape}
    for module, prefix, replacements in ((text_module, "text", subs), (engine_module, "engine", subs),
                                         (posted_module, "posted", posted_subs)):
        for name, value in vars(module).items():
            if matching.is_linear(value) and isinstance(value.pattern, str):  # a bytes twin: measured through its str
                op = ("sub" if name == "_NUMBERS" else "replace") if name in replacements else "search"
                entry = Entry(f"{prefix}.{name}", value.pattern, value, op, replacements.get(name, "x"))
                if module is posted_module and name == "_ANSI":  # with the split of colour codes and its cap
                    entry.compiled = _Call(posted_module._ansi_free, value.pattern)
                entries.append(entry)
    seen: dict[str, int] = {}
    for kind, compiled, replacement, _ in redact_module._compiled():
        index = seen[kind] = seen.get(kind, -1) + 1
        entries.append(Entry(f"redact.{kind}[{index}]", compiled.pattern, compiled, "sub", replacement))
    ops = {"key_body": "search", "key_begin": "finditer", "key_end": "finditer", "dangling_key": "search",
           "dangling_anywhere": "search", "base64_run": "search",
           "bare_secret_key": "sub", "concat": "sub", "base64_blob": "sub"}
    for name, compiled in redact_module._patterns().items():
        if isinstance(compiled.pattern, bytes):  # the bytes twin of a str pattern, measured through it
            continue
        entry = Entry(f"redact._{name}", compiled.pattern, compiled, ops.get(name, "finditer"))
        if name == "base64_blob":  # with the decoding and the check of what each blob holds
            entry.compiled = _Call(redact_module._base64_blobs, compiled.pattern)
        entries.append(entry)
    return entries


class _Call:
    """A function run where a pattern's sub would be (the work around a pattern is measured too)."""

    def __init__(self, function: Any, pattern: str) -> None:
        self.function, self.pattern = function, pattern

    def sub(self, repl: Any, text: str) -> str:
        return self.function(text)


def _git_show(ref: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def _exec_module(name: str, source: str) -> dict[str, Any]:
    import types

    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up
    try:
        exec(compile(source, name, "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module.__dict__


def baseline_patterns(ref: str) -> dict[str, re.Pattern[str]]:
    """Python `re` patterns of the code at `ref`, by the names current_patterns() gives."""
    import yaml

    found: dict[str, re.Pattern[str]] = {}
    listing = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{ref}:functions/incident_responder/rules"],
                             capture_output=True, text=True, check=True).stdout.split()
    for name in listing:
        data = yaml.safe_load(_git_show(ref, f"functions/incident_responder/rules/{name}"))
        for rule in data.get("rules", []):
            for fieldname in ("patterns", "exclude", "require_nearby", "exclude_nearby"):
                for index, source in enumerate(rule.get(fieldname, [])):
                    found[f"{rule['id']}:{fieldname}[{index}]"] = re.compile(source, re.IGNORECASE)
            for fieldname, source in (rule.get("traceback") or {}).items():
                if source:
                    found[f"{rule['id']}:traceback.{fieldname}"] = re.compile(source, re.IGNORECASE)
    text_ns = _exec_module("baseline_text", _git_show(ref, "functions/incident_responder/classify/text.py"))
    for name, value in text_ns.items():
        if isinstance(value, re.Pattern):
            found[f"text.{name}"] = value
    redact_ns = _exec_module("baseline_redact", _git_show(ref, "functions/incident_responder/redact.py"))
    seen: dict[str, int] = {}
    for kind, pattern, _ in redact_ns.get("_RULES", []):
        index = seen[kind] = seen.get(kind, -1) + 1
        found[f"redact.{kind}[{index}]"] = pattern
    for old, new in (("_KEY_BODY", "key_body"), ("_KEY_BEGIN", "key_begin"), ("_KEY_END", "key_end"),
                     ("_BARE_SECRET_KEY", "bare_secret_key")):
        if isinstance(redact_ns.get(old), re.Pattern):
            found[f"redact._{new}"] = redact_ns[old]
    return found


# ------------------------------------------------------------------ inputs


def literals(source: str) -> list[str]:
    """Literal runs (2+ characters) anywhere in the pattern, in order; a pattern's own words."""
    from re import _constants as c
    from re import _parser as p

    try:
        tree = p.parse(source)
    except re.error:
        return [w for w in re.findall(r"[A-Za-z0-9_]{2,}", source)] or ["x"]
    runs: list[str] = []

    def walk(items: Any) -> None:
        run = ""
        for op, av in items:
            if op is c.LITERAL:
                run += chr(av)
                continue
            if len(run) >= 2:
                runs.append(run)
            run = ""
            if op is c.SUBPATTERN:
                walk(av[3])
            elif op is c.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                walk(av[2])
        if len(run) >= 2:
            runs.append(run)

    walk(tree)
    return list(dict.fromkeys(runs)) or ["x"]


def _fill(unit: str, size: int) -> str:
    return (unit * (size // max(len(unit), 1) + 1))[:size]


def generated_inputs(source: str, size: int, seed: int = 1) -> dict[str, str]:
    words = literals(source)
    rng = random.Random(seed)
    scattered, total = [], 0
    while total < size:
        part = rng.choice(words) if rng.random() < 0.3 else rng.choice(FILLER)
        scattered.append(part)
        total += len(part)
    return {
        "first_literal_repeated": _fill(words[0] + "_", size),
        "literals_glued": _fill(" ".join(words) + " ", size),
        "literals_scattered": "".join(scattered)[:size],
        "near_misses": _fill(" ".join(w[:-1] for w in words) + " ", size),
        "random_printable": "".join(rng.choice(string.printable) for _ in range(size)),
    }


# ------------------------------------------------------------------ timing


def _run(pattern: Any, text: str, op: str = "finditer", repl: Any = "x") -> None:
    if op == "search":
        pattern.search(text)
    elif op == "sub" or (op == "replace" and not matching.is_linear(pattern)):
        pattern.sub(repl, text)
    elif op == "replace":  # what mask() does: matching.replace
        matching.replace(pattern, repl, text)
    else:
        for _ in pattern.finditer(text):
            pass


def mb_s(pattern: Any, text: str, op: str = "finditer", repl: Any = "x", repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _run(pattern, text, op, repl)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        if elapsed > 0.2:
            break
    return len(text.encode("utf-8")) / max(best, 1e-9) / 1e6


class _Stopped(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Stopped


def limited_mb_s(pattern: re.Pattern[str], text: str, limit: float, op: str) -> tuple[float, bool]:
    """Python `re` MB/s, the run stopped after `limit` s (sre checks for signals as it runs)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    try:
        _run(pattern, text, op, "x")
        stopped = False
    except _Stopped:
        stopped = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    return len(text.encode("utf-8")) / max(elapsed, 1e-9) / 1e6, stopped


def hostile_lines(size: int) -> dict[str, str]:
    rng = random.Random(3)
    mix = "".join(rng.choice(["loss", "nan", "_loss", " ", ":", "a", "SSO Token", "has expired", "No such file or directory: ",
                              "SAGEMAKER_PROGRAM", "Access Denied", "cdk-x-deploy-role", "s3://", "403"])
                  for _ in range(size // 6))[:size]
    return {
        "issue: 'loss_'*N + ' xnanx'": _fill("loss_", size - 6) + " xnanx",
        "issue: url password ('a.'*N + 'x://')": _fill("a.", size - 4) + "x://",
        "url-like ('http://u:' + 'p'*20)*N": _fill("http://u:" + "p" * 20, size),
        "repeated ordinary words": _fill("the quick brown fox jumps over the lazy dog ", size),
        "rule literals scattered": mix,
        "control characters": _fill("\x00\x01\x1b[31m\x7f", size),
        "percent escapes": _fill("%25%32%35%3D", size),
        "JSON escapes": _fill("\\u003d\\/", size),
        "secret names": _fill("PASSWORD=TOKEN=SECRET=", size),
        "random printable": "".join(rng.choice(string.printable) for _ in range(size)),
    }


# The issue's examples, per pattern: (pattern name, input of n characters), run on the new
# engine at 1 MiB and on the baseline's Python re at growing sizes until a run is stopped.
ISSUE_EXAMPLES = {
    "unknown.nan_loss:patterns[4]": lambda n: _fill("loss_", n - 6) + " xnanx",
    "redact.url_password[0]": lambda n: _fill("a.", n - 4) + "x://",
    "cuda_gpu.gpu_not_visible:patterns[12]": lambda n: "torch.cuda.is_available()" + " " * (n - 25),
    "text._SITE_PACKAGES": lambda n: _fill("/a", n),
    "text.NOISE": lambda n: _fill("Downloading ", n),
}


def issue_examples(entries: list[Entry], baseline: dict[str, re.Pattern[str]], limit: float) -> list[str]:
    rows = []
    by_name = {e.name: e for e in entries}
    for name, build in ISSUE_EXAMPLES.items():
        entry = by_name.get(name)
        if entry is None:
            continue
        new = mb_s(entry.compiled, build(1 << 20), entry.op, entry.repl)
        old_parts = []
        old = baseline.get(name)
        for n in (4096, 16384, 65536, 262144):
            if old is None:
                break
            figure, stopped = limited_mb_s(old, build(n), limit * 8, entry.op)
            old_parts.append(f"{n // 1024} KiB {'<' if stopped else ''}{figure:.3f}")
            if stopped:
                break
        rows.append(f"  {name:<40} RE2 1 MiB {new:>9.1f} MB/s   Python re: {', '.join(old_parts) or 'n/a'} MB/s")
    return rows


def end_to_end(size: int) -> list[tuple[str, float, float]]:
    catalog = load_catalog()
    rows = []
    for name, line in hostile_lines(size).items():
        text = f"INFO start\n{line}\nModuleNotFoundError: No module named 'gsplat'"
        start = time.perf_counter()
        classify(text, catalog=catalog)
        classify_s = time.perf_counter() - start
        start = time.perf_counter()
        redact_module.redact(line)
        redact_s = time.perf_counter() - start
        mb = len(line.encode("utf-8")) / 1e6
        rows.append((name, mb / max(classify_s, 1e-9), mb / max(redact_s, 1e-9)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-kib", type=int, default=256, help="input size per pattern (default 256)")
    parser.add_argument("--e2e-kib", type=int, default=1024, help="size of the end-to-end hostile lines (default 1024)")
    parser.add_argument("--baseline-ref", default="origin/main",
                        help="git ref whose patterns run on Python re as the baseline ('' to skip)")
    parser.add_argument("--baseline-limit", type=float, default=0.25, help="seconds before a baseline run is stopped")
    parser.add_argument("--only", default="", help="only patterns whose name contains this")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    size = args.size_kib * 1024

    entries = [e for e in current_patterns() if args.only in e.name]
    if not entries:
        parser.error(f"no pattern name contains {args.only!r}; names look like unknown.nan_loss:patterns[4], "
                     "text.NOISE, redact.url_password[0]")
    baseline: dict[str, re.Pattern[str]] = {}
    if args.baseline_ref:
        try:
            baseline = baseline_patterns(args.baseline_ref)
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            print(f"baseline unavailable ({exc}); figures without it", file=sys.stderr)
    average = synthetic_log(size)
    for entry in entries:
        inputs = generated_inputs(entry.source, size)
        entry.figures = {kind: mb_s(entry.compiled, text, entry.op, entry.repl) for kind, text in inputs.items()}
        entry.figures["average"] = mb_s(entry.compiled, average, entry.op, entry.repl)
        entry.worst_input = min(inputs, key=lambda k: entry.figures[k])
        # linear: twice the input takes twice the time (MB/s the same); the ratio of the times
        twice = generated_inputs(entry.source, 2 * size)[entry.worst_input]
        entry.scale = entry.figures[entry.worst_input] / max(mb_s(entry.compiled, twice, entry.op, entry.repl), 1e-9) * 2
        old = baseline.get(entry.name)
        if old is not None:
            worst_old, stopped_any = float("inf"), False
            for text in inputs.values():
                figure, stopped = limited_mb_s(old, text[:32 * 1024], args.baseline_limit, entry.op)
                if figure < worst_old:
                    worst_old, stopped_any = figure, stopped
            entry.baseline_mb_s, entry.baseline_stopped = worst_old, stopped_any

    e2e = end_to_end(args.e2e_kib * 1024)
    examples = issue_examples(entries, baseline, args.baseline_limit)
    below = [e for e in entries if e.figures[e.worst_input] < TARGET_WORST_MB_S]
    if args.json:
        print(json.dumps({
            "size_kib": args.size_kib,
            "patterns": [{"name": e.name, "worst_mb_s": round(e.figures[e.worst_input], 2), "worst_input": e.worst_input,
                          "average_mb_s": round(e.figures["average"], 2), "scale_2x": round(e.scale, 2),
                          "baseline_worst_mb_s": None if e.baseline_mb_s is None else round(e.baseline_mb_s, 3),
                          "baseline_stopped": e.baseline_stopped} for e in entries],
            "end_to_end_1mib": [{"input": n, "classify_mb_s": round(c, 2), "redact_mb_s": round(r, 2)} for n, c, r in e2e],
            "below_target": [e.name for e in below],
        }, indent=2))
        return 0
    width = max(len(e.name) for e in entries)
    print(f"{'pattern':<{width}}  {'op':<8}  {'worst MB/s':>10}  {'t(2n)/t(n)':>10}  {'average MB/s':>12}  "
          f"{'baseline worst (re)':>20}  worst input")
    for e in sorted(entries, key=lambda e: e.figures[e.worst_input]):
        if e.baseline_mb_s is None:
            old = "n/a"
        else:
            old = f"{'<' if e.baseline_stopped else ''}{e.baseline_mb_s:.3f}"
        print(f"{e.name:<{width}}  {e.op:<8}  {e.figures[e.worst_input]:>10.1f}  {e.scale:>10.2f}  {e.figures['average']:>12.1f}  {old:>20}  {e.worst_input}")
    worst = min(entries, key=lambda e: e.figures[e.worst_input])
    scales = sorted(e.scale for e in entries)
    print(f"\n{len(entries)} patterns, {args.size_kib} KiB inputs; slowest worst case: {worst.name} "
          f"{worst.figures[worst.worst_input]:.1f} MB/s ({worst.worst_input}); "
          f"median average {sorted(e.figures['average'] for e in entries)[len(entries) // 2]:.0f} MB/s; "
          f"t(2n)/t(n) on the worst input: median {scales[len(scales) // 2]:.2f}, largest {scales[-1]:.2f} (2 = linear)")
    stopped = [e for e in entries if e.baseline_stopped]
    print(f"baseline (Python re, {args.baseline_ref}): {len(stopped)} patterns stopped after {args.baseline_limit} s "
          f"on a 32 KiB worst input")
    print(f"\nthe issue's examples (baseline runs stopped after {args.baseline_limit * 8:.0f} s):")
    print("\n".join(examples))
    print(f"\nend to end on one {args.e2e_kib} KiB hostile line (rules read its first "
          f"{matching.MAX_LINE_CHARS:,} characters; redaction reads all of it):")
    for name, classify_mb, redact_mb in e2e:
        print(f"  {name:<46} classify {classify_mb:>8.1f} MB/s   redact {redact_mb:>7.1f} MB/s")
    status = "MET " if not below else "MISS"
    print(f"\n{status} worst case >= {TARGET_WORST_MB_S} MB/s for every pattern"
          + ("" if not below else f" ({len(below)} below: {', '.join(e.name for e in below[:8])})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
