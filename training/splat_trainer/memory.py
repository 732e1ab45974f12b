"""GPU memory: the estimate for a scene, the plan that makes a run fit its budget, and the growth guard that
keeps it inside the budget while it trains.

A first-order model, calibrated against gsplat's published numbers (Mip-NeRF 360, 30k steps: about 3-6 M
Gaussians within 10.6 GB; MCMC with 1 M Gaussians about 2 GB) and refined with bench/train_gpu.py:
  - per Gaussian: 59 float32 parameters (means 3, scales 3, quats 4, opacity 1, SH 48) + gradients + Adam's
    two moments = 4 x 59 x 4 B, plus the densification state and the rasterizer's per-Gaussian buffers
    (projected means, conics, depths, radii, colours, tile ids) and their gradients: ~1.8 KB in all
    (measured on the outdoor bench scene: 1.1-1.4 KB allocated; the rest is the allocator's slack);
  - per pixel of the largest image: render, alpha, loss/SSIM intermediates and gradients: ~200 B;
  - the training images kept on the GPU as uint8: n_images x width x height x 3 B, while that is at most a
    quarter of the GPU and the run fits with them there (otherwise they stay in pinned host memory);
  - a fixed ~0.5 GB for the CUDA context, kernels and allocator slack.

`plan_memory` is the one place that decides, for preflight (which logs it) and the trainer (which applies it):
where the images live, the most Gaussians the budget holds (the default strategy stops densifying there; MCMC's
cap_max=auto is that number, an explicit cap_max above it is lowered), or that the scene cannot fit at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig

BYTES_PER_GAUSSIAN = 1_800
BYTES_PER_PIXEL = 200
FIXED_OVERHEAD_BYTES = 512 * 1024**2
GIB = 1024**3
# The default strategy's growth is scene-dependent; bound it by what 30k-step runs reach on real scenes.
DEFAULT_STRATEGY_MIN_PEAK = 1_000_000
DEFAULT_STRATEGY_GROWTH = 30
DEFAULT_STRATEGY_MAX_PEAK = 6_000_000
MCMC_CAP_CEILING = 10_000_000
# Training images are kept on the GPU (no per-step host copy) while they take at most this share of it;
# beyond, they stay in pinned host memory and are copied each step (trainer.py).
IMAGES_ON_GPU_MAX_FRACTION = 0.25
# ... and are moved to the host to make room for Gaussians only when they take at least this share of the budget
IMAGES_WORTH_MOVING_FRACTION = 0.02
# A run must at least hold its SfM initialisation with room to grow; below this many times the SfM
# points, the plan refuses the run (preflight fails it with gpu_memory_budget_exceeded).
MIN_GROWTH_FACTOR = 1.5


def images_fit_on_gpu(n_images: int, width: int, height: int, gpu_total_bytes: int | None) -> bool:
    if gpu_total_bytes is None:
        return True
    return n_images * width * height * 3 <= IMAGES_ON_GPU_MAX_FRACTION * gpu_total_bytes


def default_strategy_peak(n_points: int) -> int:
    grown = n_points * DEFAULT_STRATEGY_GROWTH
    return int(min(max(grown, DEFAULT_STRATEGY_MIN_PEAK), DEFAULT_STRATEGY_MAX_PEAK))


def scene_bytes(n_images: int, width: int, height: int, images_on_gpu: bool) -> int:
    """Everything but the Gaussians: images (if on the GPU), per-pixel buffers, the fixed overhead."""
    images = n_images * width * height * 3 if images_on_gpu else 0
    return images + width * height * BYTES_PER_PIXEL + FIXED_OVERHEAD_BYTES


@dataclass
class MemoryPlan:
    """What preflight logs and the trainer applies. `fits` False means the run cannot fit at all."""

    gpu_total_bytes: int | None
    budget_bytes: int | None
    images_on_gpu: bool
    max_gaussians: int | None  # the most Gaussians the budget holds (None: no GPU size known)
    expected_peak_gaussians: int
    estimated_peak_bytes: int
    cap_max: int | None  # MCMC only: the cap the run uses
    fits: bool
    choices: list[str] = field(default_factory=list)
    reason: str = ""

    def summary(self) -> str:
        if self.budget_bytes is None:
            return (f"estimated peak {self.estimated_peak_bytes / GIB:.1f} GiB for {self.expected_peak_gaussians} "
                    "Gaussians (GPU size unknown: not checked)")
        head = (f"estimated peak {self.estimated_peak_bytes / GIB:.1f} GiB <= budget {self.budget_bytes / GIB:.1f} GiB"
                if self.fits else f"does not fit the budget of {self.budget_bytes / GIB:.1f} GiB")
        parts = [head, f"up to {self.max_gaussians} Gaussians",
                 "images on the GPU" if self.images_on_gpu else "images in host memory"]
        return "; ".join(parts + self.choices)


def plan_memory(cfg: "TrainConfig", n_images: int, width: int, height: int, n_points: int,
                gpu_total_bytes: int | None) -> MemoryPlan:
    """Settings that keep the run's estimated peak inside gpu_memory_budget_fraction of the GPU, in this order:
    images in host memory when keeping them on the GPU would not fit; the Gaussian count bounded by what is left
    (default strategy: densification stops there; MCMC: cap_max). Not fitting means not even the SfM points
    with MIN_GROWTH_FACTOR room fit."""
    mcmc = cfg.strategy == "mcmc"
    wanted = (int(cfg.cap_max) if mcmc and cfg.cap_max != "auto" else
              None if mcmc else default_strategy_peak(n_points))
    if gpu_total_bytes is None:
        peak = wanted or 1_000_000
        return MemoryPlan(None, None, True, None, peak,
                          peak * BYTES_PER_GAUSSIAN + scene_bytes(n_images, width, height, True),
                          peak if mcmc else None, True)
    budget = int(gpu_total_bytes * cfg.gpu_memory_budget_fraction)
    choices: list[str] = []
    on_gpu = images_fit_on_gpu(n_images, width, height, gpu_total_bytes)
    if not on_gpu:
        choices.append(f"images in host memory (they would take more than {IMAGES_ON_GPU_MAX_FRACTION:.0%} of the GPU)")

    def room(images_on_gpu: bool) -> int:
        return max(0, (budget - scene_bytes(n_images, width, height, images_on_gpu)) // BYTES_PER_GAUSSIAN)

    images = n_images * width * height * 3
    # images go to the host only when the Gaussians the run wants need the room and the images are worth moving
    # (cap_max=auto wants whatever fits: it keeps the images where they are, and the faster step)
    if on_gpu and wanted is not None and room(True) < wanted and images >= IMAGES_WORTH_MOVING_FRACTION * budget:
        on_gpu = False
        choices.append("images in host memory (to leave room for Gaussians)")
    max_g = int(min(room(on_gpu), MCMC_CAP_CEILING) if mcmc else room(on_gpu))
    need = int(n_points * MIN_GROWTH_FACTOR)
    if max_g < max(need, 1):
        return MemoryPlan(gpu_total_bytes, budget, on_gpu, max_g, need,
                          need * BYTES_PER_GAUSSIAN + scene_bytes(n_images, width, height, on_gpu), None, False, choices,
                          f"the budget holds about {max_g} Gaussians, fewer than the {n_points} SfM points need "
                          f"({MIN_GROWTH_FACTOR}x to grow)")
    cap = None
    if mcmc:
        cap = max_g if wanted is None else min(wanted, max_g)
        if wanted is None:
            choices.append(f"cap_max=auto -> {cap}")
        elif cap < wanted:
            choices.append(f"cap_max lowered from {wanted} to {cap} (memory budget)")
        peak = cap
    else:
        peak = min(wanted, max_g)
        if wanted > max_g:
            choices.append(f"densification stops at about {max_g} Gaussians (memory budget; "
                           f"the default strategy may grow to {wanted})")
    return MemoryPlan(gpu_total_bytes, budget, on_gpu, max_g, peak,
                      peak * BYTES_PER_GAUSSIAN + scene_bytes(n_images, width, height, on_gpu), cap, True, choices)


# -------------------------------------------------------------- kept for callers of the earlier API

def expected_peak_gaussians(cfg: "TrainConfig", n_points: int, gpu_total_bytes: int | None = None,
                            n_images: int = 0, width: int = 0, height: int = 0) -> int:
    return plan_memory(cfg, n_images, width, height, n_points, gpu_total_bytes).expected_peak_gaussians


def estimate_gpu_memory_bytes(cfg: "TrainConfig", n_images: int, width: int, height: int, n_points: int,
                              gpu_total_bytes: int | None = None) -> int:
    """Expected peak GPU memory of a training run on this scene (bytes), after the plan's choices."""
    return plan_memory(cfg, n_images, width, height, n_points, gpu_total_bytes).estimated_peak_bytes


def mcmc_cap_for_memory(gpu_total_bytes: int, cfg: "TrainConfig", n_images: int, width: int, height: int) -> int:
    """Largest Gaussian count whose estimated peak fits gpu_memory_budget_fraction of the GPU (>= 0)."""
    on_gpu = images_fit_on_gpu(n_images, width, height, gpu_total_bytes)
    budget = gpu_total_bytes * cfg.gpu_memory_budget_fraction - scene_bytes(n_images, width, height, on_gpu)
    return int(max(0, min(MCMC_CAP_CEILING, budget // BYTES_PER_GAUSSIAN)))


# -------------------------------------------------------------- during training

@dataclass
class GrowthGuard:
    """Decides at each densification whether growing from n_now to n_after Gaussians stays inside the budget.

    Two bounds: the count the memory plan allows (the model, as preflight logged it), and the projected peak:
    the reserved peak measured since the last check (on a GPU; the model's estimate on a CPU) plus the
    new Gaussians at the larger of the model's and the measured bytes per Gaussian. The measured slope is
    (peak - first peak) / (Gaussians - first Gaussians), so the images and fixed buffers do not count as
    per-Gaussian cost. Once a growth is refused the strategy stops refining (strategy.FixedDefaultStrategy).
    """

    budget_bytes: int
    scene_bytes: int
    max_gaussians: int | None = None
    first: tuple[int, int] | None = None  # (Gaussians, peak bytes) at the first check
    halted: dict | None = None
    logged: bool = False

    def projected_bytes(self, n_now: int, n_after: int, peak_bytes: int | None) -> tuple[int, float]:
        per_g = float(BYTES_PER_GAUSSIAN)
        if peak_bytes is None:  # no measurement (CPU): the model
            peak_bytes = self.scene_bytes + n_now * BYTES_PER_GAUSSIAN
        elif self.first is None:
            self.first = (n_now, peak_bytes)
        elif n_now > self.first[0] * 1.2:
            per_g = max(per_g, (peak_bytes - self.first[1]) / (n_now - self.first[0]))
        return int(peak_bytes + (n_after - n_now) * per_g), per_g

    def allow(self, step: int, n_now: int, n_after: int, peak_bytes: int | None = None) -> bool:
        if self.halted is not None:
            return False
        projected, per_g = self.projected_bytes(n_now, n_after, peak_bytes)
        over_count = self.max_gaussians is not None and n_after > self.max_gaussians
        if projected <= self.budget_bytes and not over_count:
            return True
        self.halted = {"step": step, "gaussians": n_now, "would_be": n_after, "projected_bytes": projected,
                       "budget_bytes": self.budget_bytes, "bytes_per_gaussian": round(per_g),
                       "measured_peak_bytes": peak_bytes, "max_gaussians": self.max_gaussians,
                       "reason": "measured" if projected > self.budget_bytes else "planned count"}
        return False

    def message(self) -> str:
        h = self.halted or {}
        why = (f"would take the estimated peak to {h.get('projected_bytes', 0) / GIB:.2f} GiB, over the budget of "
               f"{self.budget_bytes / GIB:.2f} GiB (gpu_memory_budget_fraction)" if h.get("reason") == "measured" else
               f"would pass the {h.get('max_gaussians')} Gaussians the memory plan allows (budget "
               f"{self.budget_bytes / GIB:.2f} GiB)")
        return (f"densification halted at step={h.get('step')} gaussians={h.get('gaussians')}: growing to "
                f"{h.get('would_be')} {why}; refinement ends here (no more growth, pruning or opacity resets, as after "
                f"refine_stop_iter) and training continues with the Gaussians it has")
