"""Synthetic 3DGS scene: a ray-traced room of textured primitives with known cameras, written as a COLMAP
binary model + PNG images, for tests and benchmarks.

Why ray-traced analytic primitives: the ground truth is exact and textured at several frequencies, so test
PSNR measures the trainer rather than SfM noise, and the same seed gives the same scene on any machine.
The tracer is PyTorch, so it runs on a GPU for benchmark-sized scenes (200 x 1 MP) and on CPU for tests.

    python -m splat_trainer.synthetic OUT --images 200 --width 1152 --height 864 [--points 60000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .colmap import Camera, Image, Points3D, rotmat_to_qvec, write_model_binary

ROOM_RADIUS = 6.0
LIGHT_DIR = torch.tensor([0.4, 0.3, 0.85])


@dataclass
class Primitives:
    sphere_c: torch.Tensor  # [S, 3]
    sphere_r: torch.Tensor  # [S]
    sphere_col: torch.Tensor  # [S, 2, 3] two texture colours
    sphere_freq: torch.Tensor  # [S]
    box_min: torch.Tensor  # [B, 3]
    box_max: torch.Tensor  # [B, 3]
    box_col: torch.Tensor  # [B, 2, 3]
    box_freq: torch.Tensor  # [B]

    def to(self, device) -> "Primitives":
        return Primitives(**{k: v.to(device) for k, v in self.__dict__.items()})


def make_primitives(seed: int) -> Primitives:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    n_s, n_b = 6, 4
    ang = torch.arange(n_s) * (2 * math.pi / n_s) + rand(n_s) * 0.5
    rad = 1.0 + rand(n_s) * 1.2
    sphere_r = 0.35 + rand(n_s) * 0.35
    sphere_c = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang), sphere_r], -1)
    b_ang = torch.arange(n_b) * (2 * math.pi / n_b) + math.pi / n_b
    b_rad = 1.6 + rand(n_b) * 0.8
    half = 0.25 + rand(n_b, 3) * 0.3
    centre = torch.stack([b_rad * torch.cos(b_ang), b_rad * torch.sin(b_ang), half[:, 2]], -1)
    return Primitives(
        sphere_c=sphere_c,
        sphere_r=sphere_r,
        sphere_col=rand(n_s, 2, 3) * 0.8 + 0.1,
        sphere_freq=4.0 + rand(n_s).mul(8).floor(),
        box_min=centre - half,
        box_max=centre + half,
        box_col=rand(n_b, 2, 3) * 0.8 + 0.1,
        box_freq=3.0 + rand(n_b).mul(6).floor(),
    )


def _stripes(u: torch.Tensor, freq) -> torch.Tensor:
    # smooth-edged stripes: band-limited so 2x2 supersampling renders them without aliasing
    return 0.5 + 0.5 * torch.tanh(4.0 * torch.sin(u * freq))


def _shade(points: torch.Tensor, normals: torch.Tensor, albedo: torch.Tensor) -> torch.Tensor:
    light = (LIGHT_DIR / LIGHT_DIR.norm()).to(points.device)
    diffuse = (normals @ light).clamp_min(0.0)
    return albedo * (0.45 + 0.55 * diffuse[..., None])


def trace(origins: torch.Tensor, dirs: torch.Tensor, prim: Primitives) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour [R, 3] and hit point [R, 3] of each ray (every ray hits: the room encloses the scene)."""
    R = dirs.shape[0]
    dev = dirs.device
    best_t = torch.full((R,), float("inf"), device=dev)
    kind = torch.zeros(R, dtype=torch.long, device=dev)  # 0 room, 1 floor, 2 sphere, 3 box
    index = torch.zeros(R, dtype=torch.long, device=dev)
    # room: inside of a sphere centred at the origin (radius ROOM_RADIUS); always hit from inside
    b = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - ROOM_RADIUS**2
    best_t = -b + torch.sqrt((b * b - c).clamp_min(0))
    # floor z = 0
    t_floor = -origins[:, 2] / dirs[:, 2]
    hit = (dirs[:, 2] < 0) & (t_floor > 1e-4) & (t_floor < best_t)
    best_t = torch.where(hit, t_floor, best_t)
    kind = torch.where(hit, 1, kind)
    for s in range(prim.sphere_c.shape[0]):
        oc = origins - prim.sphere_c[s]
        b = (oc * dirs).sum(-1)
        c = (oc * oc).sum(-1) - prim.sphere_r[s] ** 2
        disc = b * b - c
        t = -b - torch.sqrt(disc.clamp_min(0))
        hit = (disc > 0) & (t > 1e-4) & (t < best_t)
        best_t = torch.where(hit, t, best_t)
        kind = torch.where(hit, 2, kind)
        index = torch.where(hit, s, index)
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    for k in range(prim.box_min.shape[0]):
        t0 = (prim.box_min[k] - origins) * inv
        t1 = (prim.box_max[k] - origins) * inv
        t_near = torch.minimum(t0, t1).amax(-1)
        t_far = torch.maximum(t0, t1).amin(-1)
        hit = (t_near < t_far) & (t_near > 1e-4) & (t_near < best_t)
        best_t = torch.where(hit, t_near, best_t)
        kind = torch.where(hit, 3, kind)
        index = torch.where(hit, k, index)
    p = origins + dirs * best_t[:, None]
    return surface_colour(p, kind, index, prim), p


def surface_colour(p: torch.Tensor, kind: torch.Tensor, index: torch.Tensor, prim: Primitives) -> torch.Tensor:
    dev = p.device
    col = torch.zeros_like(p)
    # room: latitude/longitude bands in warm greys
    n_room = -p / p.norm(dim=-1, keepdim=True)
    lon = torch.atan2(p[:, 1], p[:, 0])
    lat = torch.asin((p[:, 2] / ROOM_RADIUS).clamp(-1, 1))
    room_t = _stripes(lon, 9.0) * 0.6 + _stripes(lat, 7.0) * 0.4
    room_alb = torch.tensor([0.75, 0.7, 0.6], device=dev) * (0.55 + 0.45 * room_t[:, None])
    col = torch.where((kind == 0)[:, None], _shade(p, n_room, room_alb), col)
    # floor: checkerboard with a fine sinusoid
    chk = ((torch.floor(p[:, 0] * 2.0) + torch.floor(p[:, 1] * 2.0)) % 2).float()
    fine = 0.5 + 0.5 * torch.sin(p[:, 0] * 13.0) * torch.sin(p[:, 1] * 11.0)
    floor_alb = torch.stack([0.25 + 0.5 * chk, 0.3 + 0.3 * chk + 0.2 * fine, 0.35 + 0.2 * fine], -1)
    n_floor = torch.tensor([0.0, 0.0, 1.0], device=dev).expand_as(p)
    col = torch.where((kind == 1)[:, None], _shade(p, n_floor, floor_alb), col)
    # spheres: stripes along longitude, tinted by latitude
    # `index` is per-kind; clamp so rays of other kinds index validly (their result is masked out)
    si = index.clamp(max=prim.sphere_c.shape[0] - 1)
    bi = index.clamp(max=prim.box_min.shape[0] - 1)
    sc = prim.sphere_c[si]
    n_s = (p - sc) / prim.sphere_r[si][:, None]
    s_lon = torch.atan2(n_s[:, 1], n_s[:, 0])
    s_t = _stripes(s_lon, prim.sphere_freq[si]) * (0.7 + 0.3 * n_s[:, 2:3].squeeze(-1))
    s_alb = prim.sphere_col[si, 0] * s_t[:, None] + prim.sphere_col[si, 1] * (1 - s_t[:, None])
    col = torch.where((kind == 2)[:, None], _shade(p, n_s, s_alb), col)
    # boxes: grid lines on each face
    bmin, bmax = prim.box_min[bi], prim.box_max[bi]
    centre, half = (bmin + bmax) / 2, (bmax - bmin) / 2
    rel = (p - centre) / half
    axis = rel.abs().argmax(-1)
    n_b = torch.nn.functional.one_hot(axis, 3).float() * torch.sign(rel)
    g = _stripes(p[:, 0] + p[:, 1] + p[:, 2], prim.box_freq[bi] * 2) * _stripes(p[:, 0] - p[:, 1], prim.box_freq[bi] * 2)
    b_alb = prim.box_col[bi, 0] * g[:, None] + prim.box_col[bi, 1] * (1 - g[:, None])
    col = torch.where((kind == 3)[:, None], _shade(p, n_b, b_alb), col)
    return col.clamp(0, 1)


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """World-to-camera 4x4 in COLMAP/OpenCV convention (x right, y down, z forward)."""
    f = target - eye
    f = f / np.linalg.norm(f)
    r = np.cross(f, np.asarray(up))
    r = r / np.linalg.norm(r)
    d = np.cross(f, r)
    rot = np.stack([r, d, f])  # rows: camera axes in world coordinates
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = -rot @ eye
    return m


def camera_poses(n: int, seed: int) -> list[np.ndarray]:
    """Cameras on a spiral around the scene at varying heights, looking near its centre."""
    rng = np.random.default_rng(seed)
    poses = []
    for i in range(n):
        a = 2 * math.pi * i / n * 2.0 + rng.uniform(-0.05, 0.05)  # two turns
        radius = 4.0 + 0.6 * math.sin(3 * a) + rng.uniform(-0.2, 0.2)
        height = 1.0 + 1.2 * (i / max(1, n - 1)) + rng.uniform(-0.1, 0.1)
        eye = np.array([radius * math.cos(a), radius * math.sin(a), height])
        target = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(0.2, 0.6)])
        poses.append(look_at(eye, target))
    return poses


def render_view(w2c: np.ndarray, fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                prim: Primitives, device: torch.device, supersample: int = 2) -> torch.Tensor:
    """uint8 [H, W, 3] image, box-filtered over supersample x supersample rays per pixel."""
    ss = supersample
    c2w = torch.tensor(np.linalg.inv(w2c), dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid(
        (torch.arange(height * ss, device=device) + 0.5) / ss,
        (torch.arange(width * ss, device=device) + 0.5) / ss,
        indexing="ij",
    )
    d_cam = torch.stack([(xs - cx) / fx, (ys - cy) / fy, torch.ones_like(xs)], -1).reshape(-1, 3)
    dirs = d_cam @ c2w[:3, :3].T
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = c2w[:3, 3].expand_as(dirs)
    col, _ = trace(origins, dirs, prim)
    img = col.reshape(height, ss, width, ss, 3).mean(dim=(1, 3))
    return (img * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu()


def sample_points(prim: Primitives, poses: list[np.ndarray], fx, fy, cx, cy, width, height, n_points: int,
                  seed: int, device) -> tuple[np.ndarray, np.ndarray]:
    """SfM-like points: surface hits of random rays from the training cameras, with a little noise.
    Points come in view order: the first ceil(n_points / n_views) from view 0, and so on (tests rely on it)."""
    g = torch.Generator(device="cpu").manual_seed(seed + 1)
    per_view = max(1, math.ceil(n_points / len(poses)))
    xyz, rgb = [], []
    for w2c in poses:
        c2w = torch.tensor(np.linalg.inv(w2c), dtype=torch.float32)
        px = torch.rand(per_view, generator=g) * width
        py = torch.rand(per_view, generator=g) * height
        d = torch.stack([(px - cx) / fx, (py - cy) / fy, torch.ones_like(px)], -1) @ c2w[:3, :3].T
        d = (d / d.norm(dim=-1, keepdim=True)).to(device)
        col, p = trace(c2w[:3, 3].to(device).expand_as(d), d, prim)
        xyz.append(p.cpu())
        rgb.append(col.cpu())
    xyz_t = torch.cat(xyz)[:n_points]
    xyz_t = xyz_t + torch.randn(xyz_t.shape, generator=g) * 0.01  # SfM triangulation noise
    return xyz_t.double().numpy(), (torch.cat(rgb)[:n_points] * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def generate_scene(out_dir: str | Path, n_images: int = 24, width: int = 32, height: int = 24,
                   n_points: int = 2000, seed: int = 0, device: str | torch.device = "cpu",
                   supersample: int = 2) -> Path:
    """Write OUT/sparse/0/{cameras,images,points3D}.bin, OUT/images/view_XXXX.png and OUT/scene.json."""
    from PIL import Image as PILImage

    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    prim = make_primitives(seed).to(device)
    fx = fy = 0.9 * width
    cx, cy = width / 2.0, height / 2.0
    poses = camera_poses(n_images, seed)
    names = [f"view_{i:04d}.png" for i in range(n_images)]

    def save(i_img):
        i, img = i_img
        PILImage.fromarray(img.numpy()).save(images_dir / names[i], compress_level=1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        for i, w2c in enumerate(poses):
            img = render_view(w2c, fx, fy, cx, cy, width, height, prim, device, supersample)
            futures.append(pool.submit(save, (i, img)))
        for f in futures:
            f.result()

    xyz, rgb = sample_points(prim, poses, fx, fy, cx, cy, width, height, n_points, seed, device)
    cameras = {1: Camera(1, "PINHOLE", width, height, np.array([fx, fy, cx, cy]))}
    images = {
        i + 1: Image(i + 1, rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3].copy(), 1, names[i])
        for i, w2c in enumerate(poses)
    }
    points = Points3D(np.arange(1, len(xyz) + 1, dtype=np.int64), xyz, rgb, np.full(len(xyz), 0.5))
    write_model_binary(out / "sparse" / "0", cameras, images, points)
    (out / "scene.json").write_text(json.dumps(
        {"generator": "splat_trainer.synthetic", "images": n_images, "width": width, "height": height,
         "points": int(len(xyz)), "seed": seed, "supersample": supersample}, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m splat_trainer.synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output folder (becomes the 'training' channel)")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--width", type=int, default=1152)
    ap.add_argument("--height", type=int, default=864)
    ap.add_argument("--points", type=int, default=60_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--supersample", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    generate_scene(a.out, a.images, a.width, a.height, a.points, a.seed, a.device, a.supersample)
    print(f"wrote {a.images} views of {a.width}x{a.height} and {a.points} points to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
