"""The 3DGS training loop (gsplat `rasterization` or the pure-PyTorch backend), following gsplat 1.5.3's
examples/simple_trainer.py defaults, with CloudWatch progress lines, checkpoints/resume, SIGTERM handling,
evaluation on held-out views, and the .ply + metrics.json outputs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from .config import TrainConfig
from .dataset import Scene
from .export import export_ply
from .memory import GrowthGuard, estimate_gpu_memory_bytes, mcmc_cap_for_memory, plan_memory, scene_bytes  # noqa: F401
from .metrics import psnr, psnr_from_mse, ssim
from .raster_torch import SH_C0
from .strategy import FixedDefaultStrategy, make_strategy

PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")


@dataclass
class TrainPaths:
    model_dir: Path
    checkpoint_dir: Path

    def __post_init__(self):
        self.model_dir, self.checkpoint_dir = Path(self.model_dir), Path(self.checkpoint_dir)


@dataclass
class StopFlag:
    """Set by SIGTERM (SageMaker stop / spot interruption); the loop checkpoints and returns."""

    requested: bool = False
    reason: str = ""

    def set(self, reason: str) -> None:
        self.requested, self.reason = True, reason


@dataclass
class TrainResult:
    status: str  # "completed" | "interrupted"
    metrics: dict[str, Any]
    splats: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)


class BackendUnavailable(RuntimeError):
    """The requested rasterizer cannot run here; the message says which to use instead."""


def resolve_backend(name: str, device: torch.device) -> tuple[str, Callable[..., Any]]:
    """("gsplat", gsplat.rasterization) on CUDA, ("torch", raster_torch.rasterization) otherwise."""
    if name in ("auto", "gsplat") and device.type == "cuda":
        try:
            from gsplat import rasterization
            return "gsplat", rasterization
        except Exception as exc:
            # on a GPU, a silent fall-back to the O(pixels x Gaussians) CPU-grade backend would look like a hang
            raise BackendUnavailable(
                f"backend={name} on a GPU needs gsplat, which does not import ({type(exc).__name__}: {exc}); "
                "rebuild the image with gsplat 1.5.3, or set backend=torch for a tiny test scene"
            ) from exc
    if name == "gsplat":
        raise BackendUnavailable("backend=gsplat needs a CUDA GPU; none is visible (use backend=torch for CPU)")
    from .raster_torch import rasterization
    return "torch", rasterization


def knn_mean_distance(points: torch.Tensor, k: int = 3, max_block_elems: int = 1 << 26) -> torch.Tensor:
    """Root mean squared distance to the k nearest other points (simple_trainer's initial scale).
    Blocks of rows are sized so one distance block holds at most max_block_elems floats (256 MB): a
    1 M-point SfM model must not need a 4 TB distance matrix, nor 16 GB blocks on a 16 GB T4."""
    out = torch.empty(points.shape[0], device=points.device)
    chunk = max(1, max_block_elems // max(1, points.shape[0]))
    for start in range(0, points.shape[0], chunk):
        d2 = torch.cdist(points[start:start + chunk], points).pow(2)
        nearest = d2.topk(min(k + 1, points.shape[0]), largest=False).values[:, 1:]
        out[start:start + chunk] = nearest.mean(-1).sqrt()
    return out


def init_splats(scene: Scene, cfg: TrainConfig, device: torch.device) -> dict[str, torch.nn.Parameter]:
    pts = scene.points.to(device)
    n = pts.shape[0]
    mcmc = cfg.strategy == "mcmc"
    # simple_trainer's mcmc preset starts with opacity 0.5 and scale 0.1 unless told otherwise
    init_opa = 0.5 if mcmc and "init_opacity" not in cfg.model_fields_set else cfg.init_opacity
    init_scale = 0.1 if mcmc and "init_scale" not in cfg.model_fields_set else cfg.init_scale
    dist = knn_mean_distance(pts).clamp_min(1e-7)
    scales = torch.log(dist * init_scale)[:, None].repeat(1, 3)
    quats = torch.rand((n, 4), device=device)
    opac = torch.logit(torch.full((n,), init_opa, device=device))
    sh0 = ((scene.points_rgb.to(device) - 0.5) / SH_C0)[:, None, :]
    shN = torch.zeros((n, (cfg.sh_degree + 1) ** 2 - 1, 3), device=device)
    tensors = {"means": pts, "scales": scales, "quats": quats, "opacities": opac, "sh0": sh0, "shN": shN}
    return {k: torch.nn.Parameter(v.contiguous()) for k, v in tensors.items()}


def learning_rates(cfg: TrainConfig, scene_scale: float) -> dict[str, float]:
    return {"means": cfg.lr_means * scene_scale, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
            "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}


def make_optimizers(splats: dict[str, torch.nn.Parameter], lrs: dict[str, float], device: torch.device):
    # fused Adam: one kernel per parameter per step instead of a dozen (the loop is launch-bound on a GPU)
    fused = device.type == "cuda"
    return {name: torch.optim.Adam([{"params": [splats[name]], "lr": lrs[name], "name": name}], eps=1e-15,
                                   fused=fused) for name in PARAM_NAMES}


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def progress_line(step: int, max_steps: int, loss: float, train_psnr: float, gaussians: int,
                  steps_per_s: float, eta_s: float) -> str:
    """One machine-parsable line per log interval, for CloudWatch metric filters."""
    return (f"step={step}/{max_steps} loss={loss:.4f} psnr={train_psnr:.2f} gaussians={gaussians} "
            f"steps_per_s={steps_per_s:.1f} eta={format_duration(eta_s)}")


def _install_sigterm(stop: StopFlag):
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set("SIGTERM"))
    return previous


class Trainer:
    def __init__(self, cfg: TrainConfig, scene: Scene, paths: TrainPaths, backend: str | None = None,
                 device: str | torch.device | None = None, log: Callable[[str], None] = print,
                 stop: StopFlag | None = None, gpu_total_bytes: int | None = None,
                 images_on_device: bool | None = None):
        self.cfg, self.paths, self.log = cfg, paths, log
        self.stop = stop or StopFlag()
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.backend_name, self.rasterize = resolve_backend(backend or cfg.backend, self.device)
        torch.manual_seed(cfg.seed)
        h, w = scene.images[0].shape[:2]
        if self.device.type == "cuda" and gpu_total_bytes is None:
            gpu_total_bytes = torch.cuda.get_device_properties(self.device).total_memory
        # the same plan preflight logged: where the images live, the most Gaussians the budget holds, cap_max
        self.plan = plan_memory(cfg, scene.n_images, w, h, len(scene.points), gpu_total_bytes)
        if images_on_device is None:  # None: as planned (always on the device on a CPU)
            images_on_device = self.device.type != "cuda" or self.plan.images_on_gpu
        self.images_on_device = images_on_device
        self.scene = scene.to(self.device, images=self.images_on_device)
        self.scene_scale = scene.scene_scale
        self.cap_max: int | None = None
        if cfg.strategy == "mcmc":
            self.cap_max = self.plan.cap_max or (cfg.cap_max if isinstance(cfg.cap_max, int) else 1_000_000)
        # the growth guard: a densification that would take the peak past the budget is refused (logged once)
        self.guard: GrowthGuard | None = None
        self.peak_bytes = 0
        if self.plan.budget_bytes is not None:
            # both bounds: the count the plan logged (the model) and the measured peak (what the GPU really holds)
            self.guard = GrowthGuard(self.plan.budget_bytes,
                                     scene_bytes(scene.n_images, w, h, self.images_on_device),
                                     max_gaussians=self.plan.max_gaussians)
        if self.backend_name == "torch":
            from .raster_torch import check_scene_size
            check_scene_size(len(scene.points), w, h)
        self.splats = init_splats(self.scene, cfg, self.device)
        self.lrs = learning_rates(cfg, self.scene_scale)
        self.optimizers = make_optimizers(self.splats, self.lrs, self.device)
        self.scheduler = self._means_scheduler()
        self.strategy = make_strategy(cfg, self.backend_name, self.cap_max,
                                      growth_guard=self._growth_allowed if self.guard else None)
        if isinstance(self.strategy, FixedDefaultStrategy):
            self.strategy_state = self.strategy.initialize_state(scene_scale=self.scene_scale)
        else:
            self.strategy_state = self.strategy.initialize_state()
        self.step = 0
        self.evals: dict[str, dict[str, float]] = {}
        self.train_time_s = 0.0
        self.events = {"duplicated": 0, "split": 0, "pruned": 0, "opacity_reset": 0, "growth_refused": 0}
        # one row per log interval: step, Gaussians, training time so far, peak GPU memory so far
        self.history: list[dict[str, Any]] = []
        self.eval_train_time_s: dict[str, float] = {}

    def _measured_peak(self, reset: bool = False) -> int | None:
        """Peak reserved GPU bytes since the last reset (what runs out: allocated plus the allocator's
        fragmentation); the allocated peak is kept in self.peak_bytes across resets for the report. None on a CPU."""
        if self.device.type != "cuda":
            return None
        self.peak_bytes = max(self.peak_bytes, torch.cuda.max_memory_allocated(self.device))
        peak = torch.cuda.max_memory_reserved(self.device)
        if reset:
            torch.cuda.reset_peak_memory_stats(self.device)
        return peak

    def _peak_allocated(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return max(self.peak_bytes, torch.cuda.max_memory_allocated(self.device))

    def _growth_allowed(self, step: int, n_now: int, n_after: int) -> bool:
        allowed = self.guard.allow(step, n_now, n_after, self._measured_peak(reset=True))
        if not allowed and not self.guard.logged:
            self.guard.logged = True
            self.log(self.guard.message())
        return allowed

    def _means_scheduler(self) -> torch.optim.lr_scheduler.ExponentialLR:
        """The means' learning rate decays to lr_means_final_factor over max_steps (simple_trainer)."""
        return torch.optim.lr_scheduler.ExponentialLR(
            self.optimizers["means"], gamma=self.cfg.lr_means_final_factor ** (1.0 / self.cfg.max_steps))

    # ---------------------------------------------------------------- checkpoints

    def state_payload(self) -> dict[str, Any]:
        payload = {
            "config_hash": self.cfg.config_hash(),
            "splats": {k: v.detach() for k, v in self.splats.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scheduler": self.scheduler.state_dict(),
            "strategy_state": {k: v for k, v in self.strategy_state.items()},
            "evals": self.evals,
            "history": self.history,
            "eval_train_time_s": self.eval_train_time_s,
            "train_time_s": self.train_time_s,
            "events": self.events,
            "rng_cpu": torch.get_rng_state(),
            "growth_stop": self.guard.halted if self.guard else None,
        }
        if self.device.type == "cuda":
            payload["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return payload

    def save_checkpoint(self) -> Path:
        path = ckpt.save_checkpoint(self.paths.checkpoint_dir, self.step, self.state_payload(),
                                    keep=self.cfg.keep_checkpoints)
        self.log(f"checkpoint step={self.step} path={path}")
        return path

    def try_resume(self) -> bool:
        payload = ckpt.load_latest_checkpoint(self.paths.checkpoint_dir, self.cfg.config_hash(),
                                              map_location=self.device, log=self.log)
        if payload is None:
            return False
        self.splats = {k: torch.nn.Parameter(v.to(self.device).contiguous()) for k, v in payload["splats"].items()}
        self.optimizers = make_optimizers(self.splats, self.lrs, self.device)
        for k, o in self.optimizers.items():
            o.load_state_dict(payload["optimizers"][k])
        self.scheduler = self._means_scheduler()
        self.scheduler.load_state_dict(payload["scheduler"])
        self.strategy_state = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v)
                               for k, v in payload["strategy_state"].items()}
        self.evals, self.train_time_s = payload["evals"], payload["train_time_s"]
        self.events = payload.get("events", self.events)
        self.history = payload.get("history", [])
        self.eval_train_time_s = payload.get("eval_train_time_s", {})
        if self.guard is not None and payload.get("growth_stop"):
            self.guard.halted, self.guard.logged = payload["growth_stop"], True
        torch.set_rng_state(payload["rng_cpu"].cpu())
        if self.device.type == "cuda" and "rng_cuda" in payload:
            torch.cuda.set_rng_state(payload["rng_cuda"].cpu(), self.device)
        self.step = int(payload["step"])
        self.log(f"resumed step={self.step} gaussians={len(self.splats['means'])} from {self.paths.checkpoint_dir}")
        return True

    # ---------------------------------------------------------------- rendering

    def ground_truth(self, index: int) -> torch.Tensor:
        """[1, H, W, 3] float in [0, 1] on the device (copied from pinned host memory if images live there)."""
        image = self.scene.images[index]
        if not self.images_on_device:
            image = image.to(self.device, non_blocking=True)
        return image[None].float() / 255.0

    def render(self, index: int, sh_degree: int) -> tuple[torch.Tensor, dict[str, Any]]:
        s = self.splats
        h, w = self.scene.images[index].shape[:2]
        colors, _, info = self.rasterize(
            means=s["means"], quats=s["quats"], scales=torch.exp(s["scales"]),
            opacities=torch.sigmoid(s["opacities"]), colors=torch.cat([s["sh0"], s["shN"]], 1),
            viewmats=self.scene.viewmats[index:index + 1], Ks=self.scene.Ks[index:index + 1], width=w, height=h,
            near_plane=self.cfg.near_plane, far_plane=self.cfg.far_plane, sh_degree=sh_degree,
            packed=self.cfg.packed, absgrad=self.cfg.absgrad,
            rasterize_mode="antialiased" if self.cfg.antialiased else "classic",
        )
        return colors, info

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        sh_degree = min(self.step // self.cfg.sh_degree_interval, self.cfg.sh_degree)
        psnrs, ssims = [], []
        for i in self.scene.test_ids:
            out, _ = self.render(i, sh_degree)
            pred = out[..., :3].clamp(0, 1)
            gt = self.ground_truth(i)
            psnrs.append(psnr(pred, gt))
            ssims.append(ssim(pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2)))
        result = {"psnr": float(torch.stack(psnrs).mean()), "ssim": float(torch.stack(ssims).mean()),
                  "gaussians": len(self.splats["means"]), "n_test_views": len(psnrs)}
        # kept apart from the results: time to a PSNR is a benchmark figure, not part of what a run computes
        self.eval_train_time_s[str(self.step)] = round(self.train_time_s, 3)
        self.evals[str(self.step)] = result
        self.log(f"eval step={self.step} test_psnr={result['psnr']:.3f} test_ssim={result['ssim']:.4f} "
                 f"gaussians={result['gaussians']} views={len(psnrs)}")
        return result

    # ---------------------------------------------------------------- loop

    def _order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        ids = self.scene.train_ids
        return [ids[j] for j in torch.randperm(len(ids), generator=g).tolist()]

    def fit(self) -> TrainResult:
        cfg = self.cfg
        previous_handler = _install_sigterm(self.stop)
        n_train = len(self.scene.train_ids)
        eval_at = set(cfg.eval_steps)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        loss_sum = torch.zeros((), device=self.device)
        mse_sum = torch.zeros((), device=self.device)
        window_steps, window_t0 = 0, time.perf_counter()
        wall_t0 = time.perf_counter()
        order, order_epoch = [], -1
        try:
            while self.step < cfg.max_steps:
                if self.stop.requested:
                    self.log(f"stop requested ({self.stop.reason}) at step={self.step}: checkpointing and exiting")
                    self.save_checkpoint()
                    return self._finish("interrupted", wall_t0)
                t_step = time.perf_counter()
                epoch, pos = divmod(self.step, n_train)
                if epoch != order_epoch:
                    order, order_epoch = self._order(epoch), epoch
                index = order[pos]
                sh_degree = min(self.step // cfg.sh_degree_interval, cfg.sh_degree)
                out, info = self.render(index, sh_degree)
                pred = out[..., :3]
                gt = self.ground_truth(index)
                self.strategy.step_pre_backward(self.splats, self.optimizers, self.strategy_state, self.step, info)
                l1 = F.l1_loss(pred, gt)
                ssim_val = ssim(pred.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2))
                loss = l1 * (1.0 - cfg.ssim_lambda) + (1.0 - ssim_val) * cfg.ssim_lambda
                if cfg.strategy == "mcmc":
                    loss = loss + cfg.opacity_reg * torch.sigmoid(self.splats["opacities"]).mean()
                    loss = loss + cfg.scale_reg * torch.exp(self.splats["scales"]).mean()
                loss.backward()
                with torch.no_grad():
                    loss_sum += loss.detach()
                    mse_sum += F.mse_loss(pred.detach(), gt)
                for opt in self.optimizers.values():
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                self.scheduler.step()
                if isinstance(self.strategy, FixedDefaultStrategy):
                    ev = self.strategy.step_post_backward(self.splats, self.optimizers, self.strategy_state,
                                                          self.step, info, packed=cfg.packed)
                    for k, v in ev.items():
                        self.events[k] += v
                else:
                    self.strategy.step_post_backward(self.splats, self.optimizers, self.strategy_state, self.step,
                                                     info, lr=self.scheduler.get_last_lr()[0])
                self.step += 1
                window_steps += 1
                self.train_time_s += time.perf_counter() - t_step

                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    # the only host sync of the loop: once per log interval
                    loss_avg = float(loss_sum) / window_steps
                    mse_avg = float(mse_sum) / window_steps
                    now = time.perf_counter()
                    rate = window_steps / max(now - window_t0, 1e-9)
                    self.log(progress_line(self.step, cfg.max_steps, loss_avg, psnr_from_mse(mse_avg),
                                           len(self.splats["means"]), rate, (cfg.max_steps - self.step) / rate))
                    self.history.append({
                        "step": self.step, "gaussians": len(self.splats["means"]),
                        "train_time_s": round(self.train_time_s, 3),
                        "peak_gpu_memory_bytes": self._peak_allocated()})
                    loss_sum.zero_()
                    mse_sum.zero_()
                    window_steps, window_t0 = 0, time.perf_counter()
                if self.step in eval_at and self.scene.test_ids:
                    self.evaluate()
                    window_t0 = time.perf_counter()  # evaluation time is not training speed
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.max_steps:
                    self.save_checkpoint()
                    window_t0 = time.perf_counter()
            return self._finish("completed", wall_t0)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)

    def _finish(self, status: str, wall_t0: float) -> TrainResult:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        metrics: dict[str, Any] = {
            "status": status,
            "steps": self.step,
            "max_steps": self.cfg.max_steps,
            "eval": self.evals,
            "gaussians": len(self.splats["means"]),
            "train_time_s": round(self.train_time_s, 3),
            "steps_per_s": round(self.step / self.train_time_s, 2) if self.train_time_s > 0 else None,
            "wall_time_s": round(time.perf_counter() - wall_t0, 3),
            "peak_gpu_memory_bytes": self._peak_allocated(),
            "memory_plan": {"budget_bytes": self.plan.budget_bytes, "max_gaussians": self.plan.max_gaussians,
                            "images_on_gpu": self.plan.images_on_gpu, "choices": self.plan.choices},
            "growth_stop": self.guard.halted if self.guard else None,
            "backend": self.backend_name,
            "images_on_device": self.images_on_device,
            "strategy": self.cfg.strategy,
            "cap_max": self.cap_max,
            "densification_events": self.events,
            "history": self.history,
            "eval_train_time_s": self.eval_train_time_s,
            "scene": {"images": self.scene.n_images, "train": len(self.scene.train_ids),
                      "test": len(self.scene.test_ids), "width": int(self.scene.images[0].shape[1]),
                      "height": int(self.scene.images[0].shape[0]), "scene_scale": self.scene_scale},
            "config": self.cfg.model_dump(mode="json"),
        }
        if status == "completed":
            if self.cfg.checkpoint_every:
                self.save_checkpoint()
            writer = export_ply(self.splats, self.paths.model_dir / "splat.ply")
            metrics["ply"] = {"path": "splat.ply", "writer": writer}
        self.paths.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.paths.model_dir / "metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=1, default=str))
        os.replace(tmp, self.paths.model_dir / "metrics.json")
        self.log(f"done status={status} steps={self.step} gaussians={metrics['gaussians']} "
                 f"steps_per_s={metrics['steps_per_s']} wall={format_duration(metrics['wall_time_s'])}")
        return TrainResult(status, metrics, {k: v.detach() for k, v in self.splats.items()})


def train(cfg: TrainConfig, scene: Scene, paths: TrainPaths, backend: str | None = None,
          device: str | torch.device | None = None, log: Callable[[str], None] = print,
          stop: StopFlag | None = None, resume: bool = True, gpu_total_bytes: int | None = None) -> TrainResult:
    """Train (resuming from the newest checkpoint in paths.checkpoint_dir if any) and write the outputs."""
    trainer = Trainer(cfg, scene, paths, backend=backend, device=device, log=log, stop=stop,
                      gpu_total_bytes=gpu_total_bytes)
    if resume:
        trainer.try_resume()
    log(f"training backend={trainer.backend_name} device={trainer.device} strategy={cfg.strategy} "
        f"cap_max={trainer.cap_max} images={scene.n_images} train={len(scene.train_ids)} test={len(scene.test_ids)} "
        f"gaussians={len(trainer.splats['means'])} start_step={trainer.step} max_steps={cfg.max_steps}")
    log(f"memory plan: {trainer.plan.summary()}")
    return trainer.fit()


__all__ = ["TrainPaths", "StopFlag", "TrainResult", "Trainer", "train", "progress_line", "format_duration",
           "estimate_gpu_memory_bytes", "mcmc_cap_for_memory", "resolve_backend", "BackendUnavailable"]
