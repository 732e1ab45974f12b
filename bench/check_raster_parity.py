#!/usr/bin/env python3
"""GPU check: the pure-PyTorch rasterizer (splat_trainer.raster_torch, used by the CPU tests) against
gsplat.rasterization on the same random Gaussians: rendered image, alpha and gradients (means, opacities,
SH), in packed and unpacked modes. Prints and (--json) writes the largest differences.

    python bench/check_raster_parity.py --json parity.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
from splat_trainer import raster_torch  # noqa: E402


def scene(n: int, device: str, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    means = torch.cat([(r(n, 2) - 0.5) * 2.0, 2.0 + r(n, 1) * 2.0], -1)
    return {
        "means": means, "quats": r(n, 4) - 0.5, "scales": 0.02 + r(n, 3) * 0.08, "opacities": 0.2 + r(n) * 0.7,
        "colors": (r(n, 16, 3) - 0.5) * 0.6,
        "viewmats": torch.eye(4)[None], "Ks": torch.tensor([[[60.0, 0, 32.0], [0, 60.0, 24.0], [0, 0, 1]]]),
    }


def run(fn, data, packed: bool, device: str):
    t = {k: v.to(device).clone().requires_grad_(k in ("means", "opacities", "colors")) for k, v in data.items()}
    img, alpha, info = fn(means=t["means"], quats=t["quats"], scales=t["scales"], opacities=t["opacities"],
                          colors=t["colors"], viewmats=t["viewmats"], Ks=t["Ks"], width=64, height=48,
                          sh_degree=3, packed=packed)
    weights = torch.linspace(0.5, 1.5, img.numel(), device=device).reshape(img.shape)
    ((img * weights).sum() + alpha.sum()).backward()
    return img.detach().cpu(), alpha.detach().cpu(), {k: t[k].grad.detach().cpu() for k in ("means", "opacities", "colors")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from gsplat import rasterization

    data = scene(a.n, "cuda")
    report = {}
    for packed in (False, True):
        ref = run(rasterization, data, packed, "cuda")
        ours = run(raster_torch.rasterization, data, packed, "cuda")
        key = "packed" if packed else "unpacked"
        rel = lambda x, y: float((x - y).norm() / y.norm().clamp_min(1e-12))  # noqa: E731
        report[key] = {
            "image_max_abs": float((ref[0] - ours[0]).abs().max()),
            "alpha_max_abs": float((ref[1] - ours[1]).abs().max()),
            **{f"grad_{k}_rel": rel(ours[2][k], ref[2][k]) for k in ref[2]},
        }
    print(json.dumps(report, indent=1))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
