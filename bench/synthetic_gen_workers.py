#!/usr/bin/env python3
"""Scene generation time against the number of worker processes, in one run: the same scene generated with
each --workers count (generate_scene, files written as `python -m splat_trainer.synthetic` writes them), each
timed and hashed, so the table also shows that every count wrote the same bytes as the first.

    python bench/synthetic_gen_workers.py                                   # workers 1 and all CPUs, small scene
    python bench/synthetic_gen_workers.py --workers 1,4,16 --images 32 --width 576 --height 432
    python bench/synthetic_gen_workers.py --device cuda --workers 1,2,4,8   # on a GPU machine

--threads-row adds one row that is not a generate_scene call: the same views (image and points, no files) made in
this process with torch's intra-op threads (the generator before --workers, minus its PNG writing), for
comparing processes against threads on the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from splat_trainer import synthetic as S  # noqa: E402


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def threads_row(a, threads: int) -> float:
    """The views made in this process with `threads` torch threads (no process pool, no files)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        device = torch.device(a.device)
        outdoor = a.style == "outdoor"
        scene = (S.make_outdoor(a.seed, a.detail, a.foliage, a.grass) if outdoor else S.make_primitives(a.seed)).to(device)
        poses = (S.outdoor_camera_poses(a.images, a.seed, a.close) if a.style == "outdoor"
                 else S.camera_poses(a.images, a.seed))
        f = 0.9 * a.width
        t0 = time.perf_counter()
        draws = S.draw_points(a.seed, a.images, a.points, a.style == "outdoor")
        for i, w2c in enumerate(poses):
            S.render_view(w2c, f, f, a.width / 2, a.height / 2, a.width, a.height, scene, device, a.supersample)
            S.view_points(scene, w2c, f, f, a.width / 2, a.height / 2, a.width, a.height, draws.per_view,
                          draws.views[i], device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default=f"1,{S.default_workers()}",
                    help=f"comma-separated worker counts, timed in this order (default 1 and this machine's "
                         f"{S.default_workers()})")
    ap.add_argument("--style", choices=S.STYLES, default="outdoor")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--width", type=int, default=288)
    ap.add_argument("--height", type=int, default=216)
    ap.add_argument("--points", type=int, default=4000)
    ap.add_argument("--detail", type=int, default=S.DEFAULT_DETAIL)
    ap.add_argument("--foliage", type=int, default=0)
    ap.add_argument("--close", type=float, default=0.0)
    ap.add_argument("--grass", type=float, default=0.08, help="outdoor: grass height (0: none)")
    ap.add_argument("--supersample", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads-row", type=int, default=0, metavar="T",
                    help="also time the views in this process with T torch threads (0: no such row)")
    ap.add_argument("--json", type=Path, help="write the rows here")
    a = ap.parse_args(argv)
    counts = [int(w) for w in a.workers.split(",")]
    if any(w < 1 for w in counts):
        ap.error(f"--workers {a.workers}: every count must be at least 1")
    if a.style != "outdoor":
        a.detail, a.foliage, a.close, a.grass = S.DEFAULT_DETAIL, 0, 0.0, 0.0
    options = dict(style=a.style, detail=a.detail, foliage=a.foliage, close=a.close, grass=a.grass) \
        if a.style == "outdoor" else dict(style="room")
    print(f"scene: {a.style}, {a.images} views of {a.width}x{a.height} (supersample {a.supersample}), {a.points} points"
          f"{f', grass {a.grass:g}' if a.grass else ''}{f', foliage {a.foliage}' if a.foliage else ''}; device "
          f"{a.device}; CPUs for this process: {S.default_workers()} (os.cpu_count {__import__('os').cpu_count()})",
          flush=True)
    print("| workers | seconds | s/view | speed-up vs first row | files identical to the first row |")
    print("| --- | --- | --- | --- | --- |")
    rows, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for w in counts:
            out = Path(tmp) / f"w{w}"
            t0 = time.perf_counter()
            S.generate_scene(out, a.images, a.width, a.height, a.points, a.seed, a.device, a.supersample,
                             workers=w, **options)
            seconds = time.perf_counter() - t0
            digest = tree_hash(out)
            first = first or (seconds, digest)
            rows.append({"workers": w, "seconds": round(seconds, 3), "identical": digest == first[1],
                         "sha256": digest})
            print(f"| {w} | {seconds:.2f} | {seconds / a.images:.3f} | {first[0] / seconds:.2f} | "
                  f"{'yes' if digest == first[1] else 'NO'} |", flush=True)
    if a.threads_row:
        seconds = threads_row(a, a.threads_row)
        rows.append({"threads_in_process": a.threads_row, "seconds": round(seconds, 3)})
        print(f"| (1 process, {a.threads_row} torch threads, no files) | {seconds:.2f} | {seconds / a.images:.3f} | "
              f"{first[0] / seconds:.2f} | - |", flush=True)
    if a.json:
        a.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                                      "rows": rows}, indent=1))
    return 0 if all(r.get("identical", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
