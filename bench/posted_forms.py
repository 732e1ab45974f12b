#!/usr/bin/env python3
"""Time classification on the inputs that stress reading a log as it was posted (classify/posted.py).

    python bench/posted_forms.py [--baseline ../other-checkout/functions] [--rounds 5]

Each input is classified `--rounds` times; the median milliseconds and MB/s are printed. With
`--baseline`, the same inputs run in a second interpreter on that checkout's `functions/` folder,
alternating with this one round by round, so both figures come from one run on the same machine.
The inputs: the synthetic 1 MB gsplat log of bench/classifier_eval.py (with and without its
failure), a 1 MiB single line, 1 MiB of empty lines and of short lines, 1 MiB of 80-column lines
(every line at the wrap width: the most joining), a 1 MiB JSON string with escaped line breaks,
1 MiB of nested escapes, 1 MiB of HTML entities, 1 MiB of ANSI colour codes, and a 1 MB GitHub
Actions log with a timestamp on every line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from classifier_eval import synthetic_log
from incident_responder.classify import classify, load_catalog
catalog = load_catalog()
MIB = 1 << 20
def fill(unit, size=MIB):
    return (unit * (size // len(unit) + 1))[:size]
tail = "\nModuleNotFoundError: No module named 'gsplat'\n"
inputs = {
    "synthetic_1mb": synthetic_log(1_000_000, seed=11),
    "synthetic_1mb_no_rule": synthetic_log(1_000_000, seed=13, failure=False),
    "single_line_1mib": fill("loss=0.1 step=7 ") + tail,
    "empty_lines_1mib": "\n" * MIB + tail,
    "short_lines_1mib": fill("ab\n") + tail,
    "lines_at_80_columns": fill("x" * 79 + "\n") + tail,
    "json_escaped_newlines": json.dumps({"message": fill("step 7 loss 0.1\n")}) + tail,
    "nested_escapes": fill("\\\\\\\\\\\\n\\\\\"") + tail,
    "html_entities": fill("&amp;&#39;&quot;&gt;") + tail,
    "ansi_colours": fill("\x1b[31mERROR\x1b[0m ") + tail,
    "github_timestamps": "\n".join(f"2024-01-01T00:00:{i % 60:02d}.1234567Z step {i} loss 0.1" for i in range(22_000)) + tail,
}
rounds = int(sys.argv[3])
out = {}
for name, text in inputs.items():
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        d = classify(text, catalog=catalog)
        times.append((time.perf_counter() - t0) * 1000)
    out[name] = {"ms": times, "mb": len(text.encode()) / 1e6, "answer": f"{d.category.value}/{d.cause}"}
print(json.dumps(out))
"""


def run(functions: Path, rounds: int) -> dict:
    result = subprocess.run([sys.executable, "-c", WORKER, str(functions), str(ROOT / "bench"), str(rounds)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout's functions/ folder")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sides = {"this": ROOT / "functions"}
    if args.baseline is not None:
        if not (args.baseline / "incident_responder").is_dir():
            parser.error(f"--baseline {args.baseline} has no incident_responder package; give a checkout's functions/ folder")
        sides["baseline"] = args.baseline
    times: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    info: dict[str, dict] = {side: {} for side in sides}
    for _ in range(args.rounds):  # alternate, so both sides meet the same machine load
        for side, path in sides.items():
            for name, row in run(path, 1).items():
                times[side].setdefault(name, []).extend(row["ms"])
                info[side][name] = row
    header = f"{'input':<26}" + "".join(f"{side + ' ms':>14}{'MB/s':>8}  {'answer':<38}" for side in sides)
    print(header)
    for name in times["this"]:
        cells = []
        for side in sides:
            ms = statistics.median(times[side][name])
            mb = info[side][name]["mb"]
            cells.append(f"{ms:>14.1f}{mb / ms * 1000:>8.1f}  {info[side][name]['answer']:<38}")
        print(f"{name:<26}" + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
