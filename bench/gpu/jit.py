# builds gsplat's CUDA kernels (JIT, about 60-75 s on a fresh machine) with one tiny rasterization
import time
t0 = time.perf_counter()
import torch
from gsplat import rasterization
n = 64
means = torch.randn(n, 3, device="cuda") + torch.tensor([0, 0, 4.0], device="cuda")
quats = torch.nn.functional.normalize(torch.randn(n, 4, device="cuda"), dim=-1)
scales = torch.full((n, 3), 0.05, device="cuda")
opac = torch.full((n,), 0.5, device="cuda")
colors = torch.rand(n, 3, device="cuda")
K = torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]], device="cuda")[None]
img, _, _ = rasterization(means, quats, scales, opac, colors, torch.eye(4, device="cuda")[None], K, 64, 64)
torch.cuda.synchronize()
print(f"gsplat JIT ready in {time.perf_counter() - t0:.1f} s; image sum {img.sum().item():.3f}", flush=True)
