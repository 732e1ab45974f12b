#!/usr/bin/env python3
"""The synthetic generator's cost per view: time to render one outdoor view (render_view, as generate_scene
calls it) with and without the options under test, and what each view's rays hit (share of rays per kind:
far sphere, ground, spheres, boxes, leaves, grass blades). Run on a CPU, it tells how much slower a scene
option makes generation; scale by a measured GPU figure for a whole preset.

    python bench/synthetic_view_cost.py --grass 0,0.08 --views 0,100,250 --width 1152 --height 864
    python bench/synthetic_view_cost.py --grass 0,0.08 --device cuda --views 0,100,250

Each configuration renders the same views (of the 320-view outdoor camera path) once untimed to warm up,
then --repeat times; the table has the median per view and its mean over the views.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from splat_trainer import synthetic as S  # noqa: E402

KINDS = ("far", "ground", "spheres", "boxes", "leaves", "grass")


def ray_kinds(scene: S.OutdoorScene, w2c: np.ndarray, fx: float, width: int, height: int, ss: int,
              device: torch.device) -> list[float]:
    """Share of the view's rays (all supersamples) per kind, traced as render_view traces them."""
    c2w = torch.tensor(np.linalg.inv(w2c), dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid((torch.arange(height * ss, device=device) + 0.5) / ss,
                            (torch.arange(width * ss, device=device) + 0.5) / ss, indexing="ij")
    d = torch.stack([(xs - width / 2) / fx, (ys - height / 2) / fx, torch.ones_like(xs)], -1).reshape(-1, 3)
    d = d @ c2w[:3, :3].T
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w[:3, 3].expand_as(d)
    best_t, kind, index = S._nearest_hits(o, d, scene.prim, S.FAR_RADIUS)
    if scene.foliage is not None:
        S._foliage_hits(o, d, scene.foliage, best_t, kind, index)
    if scene.grass is not None:
        S._grass_hits(o, d, scene.grass, best_t, kind, index)
    counts = torch.bincount(kind, minlength=len(KINDS)).float() / kind.numel()
    return [round(float(c), 4) for c in counts]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grass", default="0,0.08", help="comma-separated grass heights to compare (0: none)")
    ap.add_argument("--foliage", type=int, default=0)
    ap.add_argument("--views", default="0,100,250", help="indices into the 320-view outdoor camera path")
    ap.add_argument("--width", type=int, default=1152)
    ap.add_argument("--height", type=int, default=864)
    ap.add_argument("--supersample", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    poses = S.outdoor_camera_poses(320, a.seed)
    views = [int(v) for v in a.views.split(",")]
    fx = 0.9 * a.width
    rows, base = [], None
    print(f"device {a.device} ({torch.get_num_threads()} CPU threads), {a.width}x{a.height}, supersample "
          f"{a.supersample}, views {views}, foliage {a.foliage}")
    print("| grass | s/view (per view) | mean s/view | x plain | " + " | ".join(KINDS) + " |")
    print("| --- " * (4 + len(KINDS)) + "|")
    for grass in (float(g) for g in a.grass.split(",")):
        scene = S.make_outdoor(a.seed, S.DEFAULT_DETAIL, a.foliage, grass).to(device)
        times, shares = [], []
        for v in views:
            S.render_view(poses[v], fx, fx, a.width / 2, a.height / 2, a.width, a.height, scene, device,
                          a.supersample)  # warm-up (allocator, threads)
            runs = []
            for _ in range(a.repeat):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                S.render_view(poses[v], fx, fx, a.width / 2, a.height / 2, a.width, a.height, scene, device,
                              a.supersample)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                runs.append(time.perf_counter() - t0)
            times.append(statistics.median(runs))
            shares.append(ray_kinds(scene, poses[v], fx, a.width, a.height, a.supersample, device))
        mean = statistics.fmean(times)
        base = base or mean
        share = np.mean(shares, axis=0)
        rows.append({"grass": grass, "times": times, "mean": mean, "shares": share.tolist()})
        print(f"| {grass:g} | {', '.join(f'{t:.2f}' for t in times)} | {mean:.2f} | {mean / base:.2f} | "
              + " | ".join(f"{s:.3f}" for s in share) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
