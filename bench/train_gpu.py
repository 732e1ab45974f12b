#!/usr/bin/env python3
"""GPU benchmark: our trainer (splat_trainer) against a minimal gsplat loop with simple_trainer's defaults,
on the same synthetic scene, in one run. Reports steps/s, peak GPU memory, test PSNR at the eval steps and
the final Gaussian count, as a markdown table and (--json) a JSON file.

    python bench/train_gpu.py --preset t4_1mp --steps 30000 --eval-at 7000,30000 --which ours,baseline --json out.json
    python bench/train_gpu.py --preset ref_110 --steps 7000 --eval-at 7000
    python bench/train_gpu.py --preset t4_1mp --steps 30000 --eval-at 7000,15000,30000 \
        --which ours-mcmc,baseline,ours --ours-variants '{"ours-mcmc": {"strategy": "mcmc", "cap_max": 400000}}'
    python bench/train_gpu.py --device cpu --backend torch --images 6 --width 16 --height 12 --steps 20 --eval-at 10,20

Presets: t4_1mp = 200 views of 1152x864 (the T4 memory target), ref_110 = 110 views of 640x480 (the scene
size of the reference figure: a minimal loop at ~144 steps/s, 30.6 dB at 7k steps on an H200).

The baseline follows gsplat 1.5.3 examples/simple_trainer.py: same init and learning rates, gsplat's own
DefaultStrategy (1.5.3, opacity reset bug included, as users of that release get it), packed=False, plain
Adam, images moved from host memory each step and `loss.item()` each step (its progress bar). SSIM is this
repo's splat_trainer.metrics.ssim for both (fused-ssim is not installed on the benchmark machine).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))

from splat_trainer.config import TrainConfig  # noqa: E402
from splat_trainer.dataset import Scene, load_scene  # noqa: E402
from splat_trainer.metrics import psnr, ssim  # noqa: E402
from splat_trainer.synthetic import generate_scene  # noqa: E402
from splat_trainer.trainer import TrainPaths, train  # noqa: E402

PRESETS = {"t4_1mp": (200, 1152, 864, 100_000), "ref_110": (110, 640, 480, 60_000)}
T4_BUDGET_BYTES = 14 * 1024**3


def ensure_scene(directory: Path, images: int, width: int, height: int, points: int, seed: int, device: str) -> Path:
    meta = directory / "scene.json"
    want = {"images": images, "width": width, "height": height, "points": points, "seed": seed}
    if meta.is_file():
        have = json.loads(meta.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            return directory
    t0 = time.perf_counter()
    generate_scene(directory, images, width, height, points, seed, device=device)
    print(f"scene: generated {images} x {width}x{height}, {points} points in {time.perf_counter() - t0:.1f}s", flush=True)
    return directory


def _noop(_: dict) -> None:
    pass


def run_ours(scene_dir: Path, steps: int, eval_at: list[int], device: str, backend: str, extra: dict,
             on_eval=_noop) -> dict:
    scene = load_scene(scene_dir, test_every=8)
    partial: dict = {"psnr": {}, "partial": True}

    def log(line: str) -> None:
        print("[ours] " + line, flush=True)
        if line.startswith("eval step="):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:])
            partial["psnr"][fields["step"]] = float(fields["test_psnr"])
            on_eval(partial)

    cfg = TrainConfig(max_steps=steps, eval_steps=eval_at, checkpoint_every=0, log_every=max(100, steps // 20),
                      backend=backend, **extra)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, scene, TrainPaths(Path(tmp) / "model", Path(tmp) / "ckpt"), device=device, resume=False,
                       log=log)
    m = result.metrics
    return {"steps_per_s": m["steps_per_s"], "peak_gpu_memory_bytes": m["peak_gpu_memory_bytes"],
            "psnr": {k: v["psnr"] for k, v in m["eval"].items()}, "ssim": {k: v["ssim"] for k, v in m["eval"].items()},
            "gaussians": m["gaussians"], "train_time_s": m["train_time_s"], "steps": m["steps"],
            "densification_events": m["densification_events"], "config": extra, "status": m["status"]}


def run_baseline(scene_dir: Path, steps: int, eval_at: list[int], device: str, backend: str,
                 on_eval=_noop) -> dict:
    """A minimal simple_trainer-style loop, written independently of splat_trainer's loop."""
    dev = torch.device(device)
    if backend == "torch":
        from splat_trainer.raster_torch import rasterization
    else:
        from gsplat import rasterization
    try:
        from gsplat.strategy import DefaultStrategy
    except Exception:  # CPU smoke mode without gsplat: the same strategy semantics from splat_trainer
        from splat_trainer.strategy import FixedDefaultStrategy as DefaultStrategy
    torch.manual_seed(42)
    scene: Scene = load_scene(scene_dir, test_every=8)
    images_cpu = [im.float() / 255.0 for im in scene.images]  # host copies, as simple_trainer's dataset
    viewmats, Ks = scene.viewmats.to(dev), scene.Ks.to(dev)
    pts, rgb = scene.points.to(dev), scene.points_rgb.to(dev)
    n = pts.shape[0]
    # simple_trainer's 3-NN initial scale (sklearn there); chunked so the N x N distances never all exist
    dist = torch.cat([torch.cdist(pts[i:i + 4096], pts).pow(2).topk(4, largest=False).values[:, 1:].mean(-1).sqrt()
                      for i in range(0, n, 4096)])
    params = {
        "means": pts.clone(),
        "scales": torch.log(dist).unsqueeze(-1).repeat(1, 3),
        "quats": torch.rand((n, 4), device=dev),
        "opacities": torch.logit(torch.full((n,), 0.1, device=dev)),
        "sh0": ((rgb - 0.5) / 0.28209479177387814)[:, None, :],
        "shN": torch.zeros((n, 15, 3), device=dev),
    }
    splats = {k: torch.nn.Parameter(v) for k, v in params.items()}
    lrs = {"means": 1.6e-4 * scene.scene_scale, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2,
           "sh0": 2.5e-3, "shN": 2.5e-3 / 20}
    optimizers = {k: torch.optim.Adam([{"params": [splats[k]], "lr": lrs[k], "name": k}], eps=1e-15) for k in splats}
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=0.01 ** (1.0 / steps))
    strategy = DefaultStrategy()
    state = strategy.initialize_state(scene_scale=scene.scene_scale)
    packed = False
    evals: dict[str, dict] = {}
    train_time = 0.0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def render(i: int, sh_degree: int):
        h, w = scene.images[i].shape[:2]
        return rasterization(means=splats["means"], quats=splats["quats"], scales=torch.exp(splats["scales"]),
                             opacities=torch.sigmoid(splats["opacities"]),
                             colors=torch.cat([splats["sh0"], splats["shN"]], 1), viewmats=viewmats[i:i + 1],
                             Ks=Ks[i:i + 1], width=w, height=h, sh_degree=sh_degree, packed=packed,
                             near_plane=0.01, far_plane=1e10)

    train_ids = scene.train_ids
    g = torch.Generator().manual_seed(0)
    order: list[int] = []
    for step in range(steps):
        t0 = time.perf_counter()
        if not order:
            order = [train_ids[j] for j in torch.randperm(len(train_ids), generator=g).tolist()]
        i = order.pop()
        gt = images_cpu[i].to(dev)[None]
        sh_degree = min(step // 1000, 3)
        colors, _, info = render(i, sh_degree)
        strategy.step_pre_backward(splats, optimizers, state, step, info)
        l1 = F.l1_loss(colors, gt)
        ssim_loss = 1.0 - ssim(colors.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2))
        loss = l1 * 0.8 + ssim_loss * 0.2
        loss.backward()
        desc = f"loss={loss.item():.3f}"  # simple_trainer updates its progress bar every step
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        scheduler.step()
        strategy.step_post_backward(splats, optimizers, state, step, info, packed=packed)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        train_time += time.perf_counter() - t0
        if (step + 1) % max(100, steps // 20) == 0:
            print(f"[baseline] step={step + 1}/{steps} {desc} gaussians={len(splats['means'])} "
                  f"steps_per_s={(step + 1) / train_time:.1f}", flush=True)
        if step + 1 in eval_at:
            with torch.no_grad():
                ps, ss = [], []
                for j in scene.test_ids:
                    out, _, _ = render(j, sh_degree)
                    pred = out.clamp(0, 1)
                    gt_j = images_cpu[j].to(dev)[None]
                    ps.append(float(psnr(pred, gt_j)))
                    ss.append(float(ssim(pred.permute(0, 3, 1, 2), gt_j.permute(0, 3, 1, 2))))
            evals[str(step + 1)] = {"psnr": sum(ps) / len(ps), "ssim": sum(ss) / len(ss)}
            print(f"[baseline] eval step={step + 1} test_psnr={evals[str(step + 1)]['psnr']:.3f}", flush=True)
            on_eval({"psnr": {k: v["psnr"] for k, v in evals.items()}, "gaussians": len(splats["means"]),
                     "steps_per_s": round((step + 1) / train_time, 2), "partial": True})
    return {"steps_per_s": round(steps / train_time, 2),
            "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
            "psnr": {k: v["psnr"] for k, v in evals.items()}, "ssim": {k: v["ssim"] for k, v in evals.items()},
            "gaussians": len(splats["means"]), "train_time_s": round(train_time, 3), "steps": steps}


def table(results: dict, eval_at: list[int], scene_desc: str, machine: str) -> str:
    lines = [f"Scene: {scene_desc}. Machine: {machine}.", "",
             "| trainer | steps/s | peak GPU memory (GiB) | " + " | ".join(f"test PSNR @{s}" for s in eval_at)
             + " | Gaussians |", "|---|---|---|" + "---|" * len(eval_at) + "---|"]
    for name, r in results.items():
        mem = r.get("peak_gpu_memory_bytes")
        mem_s = f"{mem / 1024**3:.2f}" if mem else "n/a"
        ps = " | ".join(f"{r['psnr'][str(s)]:.2f}" if str(s) in r["psnr"] else "-" for s in eval_at)
        lines.append(f"| {name} | {r.get('steps_per_s', '-')} | {mem_s} | {ps} | {r.get('gaussians', '-')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), help="scene size preset (overrides --images/--width/...)")
    ap.add_argument("--images", type=int, default=110)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--points", type=int, default=60_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scene-dir", type=Path, help="where the synthetic scene is (re)used; default under /tmp")
    ap.add_argument("--steps", type=int, default=7000)
    ap.add_argument("--eval-at", default="7000", help="comma-separated steps at which test PSNR is measured")
    ap.add_argument("--which", default="ours,baseline",
                    help="comma-separated, run in this order: ours, baseline, or a name from --ours-variants")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--backend", default="gsplat", choices=["gsplat", "torch"])
    ap.add_argument("--ours-config", default="{}", help="JSON of extra TrainConfig fields for our trainer")
    ap.add_argument("--ours-variants", default="{}",
                    help='JSON {"NAME": {TrainConfig fields}}: more configurations of our trainer, named in --which')
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--warmup-steps", type=int, default=100, help="untimed steps run first on a GPU (0: none)")
    a = ap.parse_args(argv)
    if a.preset:
        a.images, a.width, a.height, a.points = PRESETS[a.preset]
    eval_at = sorted({int(s) for s in a.eval_at.split(",") if s.strip()})
    if any(s < 1 or s > a.steps for s in eval_at):
        ap.error(f"--eval-at {a.eval_at}: every step must be between 1 and --steps {a.steps}")
    which = [w.strip() for w in a.which.split(",") if w.strip()]
    variants = {"ours": json.loads(a.ours_config), **json.loads(a.ours_variants)}
    unknown = set(which) - set(variants) - {"baseline"}
    if unknown:
        ap.error(f"--which: unknown {sorted(unknown)}; accepted: baseline, {', '.join(sorted(variants))}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA GPU is visible; use --device cpu --backend torch for the smoke mode")
    scene_dir = a.scene_dir or Path(tempfile.gettempdir()) / f"bench_scene_{a.images}x{a.width}x{a.height}_{a.seed}"
    ensure_scene(scene_dir, a.images, a.width, a.height, a.points, a.seed, a.device)
    machine = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "CPU"
    desc = f"synthetic, {a.images} views of {a.width}x{a.height}, {a.points} SfM points, {a.steps} steps"
    results: dict[str, dict] = {}

    def save_partial() -> None:
        # written after every run, so a run cut off by a time limit still leaves the finished ones behind
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps({"scene": desc, "machine": machine, "torch": torch.__version__,
                                          "eval_at": eval_at, "results": results, "complete": False}, indent=1))

    if a.warmup_steps and a.device.startswith("cuda"):
        # CUDA context, kernel loading and allocator growth are paid once per process: pay them before either
        # timed run, or whichever trainer runs first looks slower
        run_ours(scene_dir, a.warmup_steps, [a.warmup_steps], a.device, a.backend, {})
    for name in which:
        gc.collect()
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
        def on_eval(partial: dict, name: str = name) -> None:
            results[name] = partial
            save_partial()

        if name == "baseline":
            results[name] = run_baseline(scene_dir, a.steps, eval_at, a.device, a.backend, on_eval=on_eval)
        else:
            results[name] = run_ours(scene_dir, a.steps, eval_at, a.device, a.backend, variants[name],
                                     on_eval=on_eval)
        save_partial()
    out = {"scene": desc, "machine": machine, "torch": torch.__version__, "eval_at": eval_at, "results": results,
           "t4_budget_bytes": T4_BUDGET_BYTES, "complete": True}
    text = table(results, eval_at, desc, machine)
    print(text, flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({**out, "table": text}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
