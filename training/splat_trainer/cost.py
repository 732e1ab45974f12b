"""What a job will take on ml.g4dn.xlarge (one T4): time and on-demand cost, from measured H200 speed.

    T4 seconds per step = H200 seconds per step on the bench's grass scene (measured, ours, 30k schedule)
                          x (megapixels per image / the bench scene's) x T4/H200 ratio

The step time is taken to scale with the pixels rendered per step (one image per step), and not with the number
of images (they change only the evaluation, every test_every-th image at each eval step). That is conservative
for larger images: the outdoor scene at 1.56x the pixels took 1.31x the step time (101.8 -> 77.6 steps/s). The
bench scene is the one that grows like a real capture (3.67 M Gaussians; real 1 MP captures reach 3-6 M): the
texture-only outdoor scene, at 1.5 M, ran 100.4 steps/s and would understate a real job by about 1.6x.

The T4/H200 ratio is not measured (no T4 here). Its range is the two datasheet ratios that bound a 3DGS
step, which is partly arithmetic (projection, rasterization, SSIM) and partly memory traffic (sorting,
gradients, Adam): FP32 arithmetic 67 / 8.1 TFLOP/s = 8.3x (NVIDIA H200 SXM and T4 datasheets) and memory
bandwidth 4.8 / 0.32 TB/s = 15x. The central estimate is their geometric mean, 11x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# bench/results/h200_outdoor_grass_30k_t4cap_ours_two_commands.json: ours, 30k steps on the outdoor_grass_1mp
# preset (1152x864, 320 views, 2 M Gaussians at step 6,500 and 3.67 M from 15k on), alone on the GPU, capped at
# 15 GiB, on an H200 (2026-12-01).
H200_STEPS_PER_S = 63.8
BENCH_MEGAPIXELS = 1152 * 864 / 1e6
T4_OVER_H200 = (8.3, 11.2, 15.0)  # low (FP32 ratio), central (geometric mean), high (bandwidth ratio)
# SageMaker on-demand training price of ml.g4dn.xlarge, us-east-1 (aws.amazon.com/sagemaker/pricing); other
# Regions and savings plans differ.
G4DN_XLARGE_USD_PER_HOUR = 0.736


@dataclass(frozen=True)
class JobEstimate:
    steps: int
    megapixels: float
    seconds: tuple[float, float, float]  # low, central, high
    usd: tuple[float, float, float]

    def line(self) -> str:
        lo, mid, hi = self.seconds
        return (f"estimate on ml.g4dn.xlarge (T4): {self.steps} steps of {self.megapixels:.2f} MP images about "
                f"{format_hours(mid)} (range {format_hours(lo)}-{format_hours(hi)}), about ${self.usd[1]:.2f} "
                f"(${self.usd[0]:.2f}-${self.usd[2]:.2f}) at ${G4DN_XLARGE_USD_PER_HOUR}/h on demand "
                f"[H200 {H200_STEPS_PER_S} steps/s at {BENCH_MEGAPIXELS:.2f} MP x T4/H200 {T4_OVER_H200[0]}-"
                f"{T4_OVER_H200[2]}]")


def format_hours(seconds: float) -> str:
    minutes = int(math.ceil(seconds / 60))
    return f"{minutes // 60}h{minutes % 60:02d}m"


def estimate_t4_job(steps: int, n_images: int, width: int, height: int, test_every: int = 8,
                    n_evals: int = 2) -> JobEstimate:
    megapixels = width * height / 1e6
    h200_step = (1.0 / H200_STEPS_PER_S) * (megapixels / BENCH_MEGAPIXELS)
    # an evaluation renders each test view once (forward only: about half a training step)
    steps_equivalent = steps + n_evals * (n_images // max(1, test_every)) * 0.5
    seconds = tuple(h200_step * ratio * steps_equivalent for ratio in T4_OVER_H200)
    usd = tuple(s / 3600 * G4DN_XLARGE_USD_PER_HOUR for s in seconds)
    return JobEstimate(steps, megapixels, seconds, usd)  # type: ignore[arg-type]
