"""GPU memory estimate for a scene, and the MCMC Gaussian cap that fits a GPU.

A first-order model, calibrated against gsplat's published numbers (Mip-NeRF 360, 30k steps: about 3-6 M
Gaussians within 10.6 GB; MCMC with 1 M Gaussians about 2 GB) and refined with bench/train_gpu.py:
  - per Gaussian: 59 float32 parameters (means 3, scales 3, quats 4, opacity 1, SH 48) + gradients + Adam's
    two moments = 4 x 59 x 4 B, plus the densification state and the rasterizer's per-Gaussian buffers
    (projected means, conics, depths, radii, colours, tile ids) and their gradients: ~1.8 KB in all;
  - per pixel of the largest image: render, alpha, loss/SSIM intermediates and gradients: ~200 B;
  - the training images kept on the GPU as uint8: n_images x width x height x 3 B, while that is at most a
    quarter of the GPU (otherwise they stay in host memory);
  - a fixed ~0.5 GB for the CUDA context, kernels and allocator slack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig

BYTES_PER_GAUSSIAN = 1_800
BYTES_PER_PIXEL = 200
FIXED_OVERHEAD_BYTES = 512 * 1024**2
# The default strategy's growth is scene-dependent; bound it by what 30k-step runs reach on real scenes.
DEFAULT_STRATEGY_MIN_PEAK = 1_000_000
DEFAULT_STRATEGY_GROWTH = 30
DEFAULT_STRATEGY_MAX_PEAK = 6_000_000
MCMC_CAP_CEILING = 10_000_000
# Training images are kept on the GPU (no per-step host copy) while they take at most this share of it;
# beyond, they stay in pinned host memory and are copied each step (trainer.py).
IMAGES_ON_GPU_MAX_FRACTION = 0.25


def images_fit_on_gpu(n_images: int, width: int, height: int, gpu_total_bytes: int | None) -> bool:
    if gpu_total_bytes is None:
        return True
    return n_images * width * height * 3 <= IMAGES_ON_GPU_MAX_FRACTION * gpu_total_bytes


def expected_peak_gaussians(cfg: "TrainConfig", n_points: int, gpu_total_bytes: int | None = None,
                            n_images: int = 0, width: int = 0, height: int = 0) -> int:
    if cfg.strategy == "mcmc":
        if cfg.cap_max == "auto":
            if gpu_total_bytes is None:
                return 1_000_000
            return mcmc_cap_for_memory(gpu_total_bytes, cfg, n_images, width, height)
        return int(cfg.cap_max)
    grown = n_points * DEFAULT_STRATEGY_GROWTH
    return int(min(max(grown, DEFAULT_STRATEGY_MIN_PEAK), DEFAULT_STRATEGY_MAX_PEAK))


def _scene_bytes(n_images: int, width: int, height: int, gpu_total_bytes: int | None = None) -> int:
    images = n_images * width * height * 3 if images_fit_on_gpu(n_images, width, height, gpu_total_bytes) else 0
    return images + width * height * BYTES_PER_PIXEL + FIXED_OVERHEAD_BYTES


def estimate_gpu_memory_bytes(cfg: "TrainConfig", n_images: int, width: int, height: int, n_points: int,
                              gpu_total_bytes: int | None = None) -> int:
    """Expected peak GPU memory of a training run on this scene (bytes)."""
    peak = expected_peak_gaussians(cfg, n_points, gpu_total_bytes, n_images, width, height)
    return int(peak * BYTES_PER_GAUSSIAN + _scene_bytes(n_images, width, height, gpu_total_bytes))


def mcmc_cap_for_memory(gpu_total_bytes: int, cfg: "TrainConfig", n_images: int, width: int, height: int) -> int:
    """Largest Gaussian count whose estimated peak fits gpu_memory_budget_fraction of the GPU (>= 0)."""
    budget = gpu_total_bytes * cfg.gpu_memory_budget_fraction - _scene_bytes(n_images, width, height, gpu_total_bytes)
    return int(max(0, min(MCMC_CAP_CEILING, budget // BYTES_PER_GAUSSIAN)))
