"""Image metrics for the loss and evaluation: SSIM (11x11 Gaussian window, as 3DGS/gsplat) and PSNR."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_WINDOWS: dict[tuple, torch.Tensor] = {}


def _gauss_1d(size: int, sigma: float, device, dtype) -> torch.Tensor:
    key = (size, sigma, device, dtype)
    if key not in _WINDOWS:
        x = torch.arange(size, dtype=torch.float64) - size // 2
        g = torch.exp(-(x**2) / (2 * sigma**2))
        _WINDOWS[key] = (g / g.sum()).to(device=device, dtype=dtype)
    return _WINDOWS[key]


def ssim(img1: torch.Tensor, img2: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two image batches [B, C, H, W] in [0, 1] (separable Gaussian window, zero padding)."""
    C = img1.shape[1]
    g = _gauss_1d(window, sigma, img1.device, img1.dtype)
    wx = g.view(1, 1, 1, window).expand(C, 1, 1, window)
    wy = g.view(1, 1, window, 1).expand(C, 1, window, 1)
    pad = window // 2
    # one batched filtering pass over the five statistics (mu1, mu2, x1^2, x2^2, x1*x2)
    stack = torch.cat([img1, img2, img1 * img1, img2 * img2, img1 * img2], 1)
    wx5, wy5 = wx.repeat(5, 1, 1, 1), wy.repeat(5, 1, 1, 1)
    f = F.conv2d(F.conv2d(stack, wx5, padding=(0, pad), groups=5 * C), wy5, padding=(pad, 0), groups=5 * C)
    mu1, mu2, e11, e22, e12 = f.split(C, 1)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return ssim_map.mean()


def psnr(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    mse = F.mse_loss(img1, img2)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def psnr_from_mse(mse: float) -> float:
    return -10.0 * math.log10(max(mse, 1e-12))
