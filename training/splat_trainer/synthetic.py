"""Synthetic 3DGS scene: ray-traced textured primitives with known cameras, written as a COLMAP binary
model + PNG images, for tests and benchmarks. Two styles:

- ``room`` (default): a dome-enclosed room of smoothly striped spheres and boxes. Easy to fit: the default
  strategy stops growing at 0.2-0.4 M Gaussians and test PSNR reaches ~40 dB.
- ``outdoor``: what a 360-degree outdoor capture looks like to the trainer. Multi-octave value-noise
  textures down to about a pixel at the cameras' distance (gravel/grass ground, bark-like objects), a far
  background (sky with clouds and a mountain band at 80 units, 15-20x the cameras' orbit) and SfM points
  that, as in COLMAP, are sparse on the far background. `detail` is the number of noise octaves: more
  octaves, finer texture, more Gaussians before the error stops driving densification.
  `foliage` adds that many trees and bushes whose crowns are nested shells of leaves with holes: depth
  discontinuities at every leaf edge, the background seen through the gaps (parallax), a dark inner crown,
  and glossy leaves (a specular highlight, so the colour depends on the view). That is what makes real
  outdoor captures grow to millions of Gaussians; texture alone stops paying once it is below a pixel.
  `grass` (a height, e.g. 0.08) covers the ground within GRASS_RADIUS of the centre with blades (1,600 per square
  unit, 2.4-5.2 mm wide at the root, tapering to a tip, leaning): thin, view-consistent 3D structure with
  parallax and self-occlusion where half of each view is now a flat textured plane. Untested on a GPU so far.

Generation: each view (its image and its SfM points) is made from its pose and its own random draws, taken up
front from the one stream seeded by the seed in the order the generator always took them. So `workers` processes
(`--workers`, one torch thread each; default on the CPU all the CPUs this process may use, on a GPU 1) write the
same files as one process, and the same files as before there were workers. On the CPU the rays are traced in
tiles of CPU_TILE_RAYS. A script that calls generate_scene(workers > 1) needs the `if __name__ == "__main__":`
guard (the workers are spawned).

Why ray-traced analytic primitives: the ground truth is exact and textured at several frequencies, so test
PSNR measures the trainer rather than SfM noise, and the same seed gives the same scene on any machine.
The tracer is PyTorch, so it runs on a GPU for benchmark-sized scenes (200 x 1 MP) and on CPU for tests.

    python -m splat_trainer.synthetic OUT --images 200 --width 1152 --height 864 [--points 60000] [--seed 0]
    python -m splat_trainer.synthetic OUT --style outdoor --images 320 --width 1152 --height 864 --points 200000
    python -m splat_trainer.synthetic OUT --style outdoor --foliage 40 --images 320 --width 1152 --height 864
    python -m splat_trainer.synthetic OUT --style outdoor --grass 0.08 --images 320 --width 1152 --height 864
    python -m splat_trainer.synthetic OUT --style outdoor --images 320 --device cpu --workers 16
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .colmap import Camera, Image, Points3D, rotmat_to_qvec, write_model_binary

ROOM_RADIUS = 6.0
LIGHT_DIR = torch.tensor([0.4, 0.3, 0.85])
STYLES = ("room", "outdoor")
# outdoor: the far background (sky and mountains) is a sphere of this radius; COLMAP triangulates few
# points that far away (small parallax), so the generator keeps only FAR_POINT_KEEP of the SfM points there
FAR_RADIUS = 80.0
FAR_POINT_KEEP = 0.05
DEFAULT_DETAIL = 8
# rays traced at once on the CPU: a tile's temporaries stay in the caches instead of being fresh pages per operation
CPU_TILE_RAYS = 1 << 15


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
    best_t, kind, index = _nearest_hits(origins, dirs, prim, ROOM_RADIUS)
    p = origins + dirs * best_t[:, None]
    return surface_colour(p, kind, index, prim), p


def _nearest_hits(origins: torch.Tensor, dirs: torch.Tensor, prim: Primitives, enclosing_radius: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distance, kind and index of each ray's nearest hit among the enclosing sphere (kind 0, always
    hit from inside), the ground z = 0 (1), the spheres (2) and the boxes (3)."""
    b = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - enclosing_radius**2
    best_t = -b + torch.sqrt((b * b - c).clamp_min(0))
    kind = torch.zeros(dirs.shape[0], dtype=torch.long, device=dirs.device)
    index = torch.zeros_like(kind)
    t_floor = -origins[:, 2] / dirs[:, 2]
    hit = (dirs[:, 2] < 0) & (t_floor > 1e-4) & (t_floor < best_t)
    best_t = torch.where(hit, t_floor, best_t)
    kind = torch.where(hit, 1, kind)
    # on the CPU, per component on contiguous columns: the sums (oc * dirs).sum(-1) makes, in the same order (the
    # same bits), without the [R, 3] temporaries and the reduction kernel (a third of the CPU time went there); a
    # GPU's reduction adds the three products in an order of its own, so it keeps the reduction (and its bits)
    cpu = dirs.device.type == "cpu"
    if cpu:
        ox, oy, oz = (t.contiguous() for t in origins.unbind(-1))
        dx, dy, dz = (t.contiguous() for t in dirs.unbind(-1))
    for s in range(prim.sphere_c.shape[0]):
        if cpu:
            cx, cy, cz = prim.sphere_c[s]
            ocx, ocy, ocz = ox - cx, oy - cy, oz - cz
            b = ocx * dx + ocy * dy + ocz * dz
            c = ocx * ocx + ocy * ocy + ocz * ocz - prim.sphere_r[s] ** 2
        else:
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
        lo, hi = torch.minimum(t0, t1), torch.maximum(t0, t1)
        t_near = torch.maximum(torch.maximum(lo[:, 0], lo[:, 1]), lo[:, 2])  # = lo.amax(-1), without a reduction
        t_far = torch.minimum(torch.minimum(hi[:, 0], hi[:, 1]), hi[:, 2])
        hit = (t_near < t_far) & (t_near > 1e-4) & (t_near < best_t)
        best_t = torch.where(hit, t_near, best_t)
        kind = torch.where(hit, 3, kind)
        index = torch.where(hit, k, index)
    return best_t, kind, index


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


# ---------------------------------------------------------------- outdoor style

def _hash24(ix: torch.Tensor, iy: torch.Tensor, iz, salt: int) -> torch.Tensor:
    """A lattice hash: 24 bits in an int64 tensor, integer arithmetic only (identical on CPU and GPU)."""
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ (salt * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return h & 0xFFFFFF


def _hash01(ix: torch.Tensor, iy: torch.Tensor, iz: torch.Tensor, salt: int) -> torch.Tensor:
    """A lattice hash in [0, 1), integer arithmetic only: identical on CPU and GPU, exact at any coordinate."""
    return _hash24(ix, iy, iz, salt).float() / float(0x1000000)


def value_noise(p: torch.Tensor, freq: float, salt: int) -> torch.Tensor:
    """Trilinearly interpolated lattice noise in [0, 1) with a smoothstep fade, [R, 3] -> [R]."""
    q = p * freq
    i = torch.floor(q)
    f = q - i
    f = f * f * (3.0 - 2.0 * f)
    i = i.long()
    # _hash01 of the 8 corners, with each axis' product (ix * 73856093, ...) made once for both of its corners
    # (integer arithmetic: the same bits as calling _hash24 per corner)
    ax = [(i[:, 0] + dx) * 73856093 for dx in (0, 1)]
    ay = [(i[:, 1] + dy) * 19349663 for dy in (0, 1)]
    az = [(i[:, 2] + dz) * 83492791 ^ (salt * 2654435761) for dz in (0, 1)]
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    out = torch.zeros(p.shape[0], device=p.device)
    for dx in (0, 1):
        wx = fx if dx else 1.0 - fx
        for dy in (0, 1):
            wxy = wx * (fy if dy else 1.0 - fy)  # wx * wy * wz * h multiplies left to right: share wx * wy
            axy = ax[dx] ^ ay[dy]
            for dz in (0, 1):
                wz = fz if dz else 1.0 - fz
                h = axy ^ az[dz]
                h = (h ^ (h >> 13)) * 1274126177
                h = (h ^ (h >> 16)) & 0xFFFFFF
                out = out + wxy * wz * (h.float() / float(0x1000000))
    return out


def fbm(p: torch.Tensor, base_freq: float, octaves: int, gain: float, salt: int, contrast: float = 3.0) -> torch.Tensor:
    """Fractal noise in [0, 1]: `octaves` octaves from base_freq, each twice the frequency and `gain` times
    the amplitude of the one before (gain 0.5 is a natural image's 1/f spectrum; higher is busier), stretched
    by `contrast` about 0.5 (a sum of octaves clusters near the mean)."""
    total, norm, amp, freq = torch.zeros(p.shape[0], device=p.device), 0.0, 1.0, base_freq
    for k in range(max(1, octaves)):
        total = total + amp * value_noise(p, freq, salt * 101 + k)
        norm += amp
        amp *= gain
        freq *= 2.0
    return ((total / norm - 0.5) * contrast + 0.5).clamp(0, 1)


# foliage: each crown is LEAF_SHELLS concentric shells (fractions of the crown radius) around a solid dark core;
# a shell is leaf where 2-octave noise at LEAF_FREQ (per unit: leaves of ~3-5 cm) passes LEAF_THRESHOLD, so
# about 45 % of each shell is leaf and rays reach inner shells and what lies behind through the gaps
LEAF_SHELLS = (1.0, 0.8, 0.6, 0.42)
LEAF_CORE = 0.28
LEAF_FREQ = 14.0
LEAF_THRESHOLD = 0.52
LEAF_KIND = 4


@dataclass
class Foliage:
    centre: torch.Tensor  # [T, 3] crown centres
    radius: torch.Tensor  # [T] crown radii
    colour: torch.Tensor  # [T, 2, 3] two leaf colours

    def to(self, device) -> "Foliage":
        return Foliage(self.centre.to(device), self.radius.to(device), self.colour.to(device))


# grass: one blade per GRASS_CELL x GRASS_CELL cell of the ground (1,600 per square unit) within GRASS_RADIUS of the
# centre; a blade is a straight cone leaning from a root disc (radius GRASS_BLADE_R) to a tip, both drawn per cell
# by a lattice hash, of height GRASS_MIN_HEIGHT..1 times the layer's; it stays inside its cell, so a ray walked cell
# by cell (a 2D grid walk, exact) meets the blades in depth order and the first hit is the nearest
GRASS_KIND = 5
GRASS_CELL = 0.025
GRASS_RADIUS = 12.0
GRASS_BLADE_R = (0.0012, 0.0026)
GRASS_MIN_HEIGHT = 0.45
GRASS_MARGIN = 0.0005  # the blade's clearance from its cell's edges
GRASS_MAX_HEIGHT = 0.3  # below the lowest camera (the close pass flies at 0.35 and up)
_GRASS_CODE = 1 << 21  # a blade's cell (ix, iy) is stored in `index` as (ix + CODE) * 2 * CODE + iy + CODE


@dataclass
class Grass:
    height: float  # the layer's height; blades are GRASS_MIN_HEIGHT..1 times it
    salt: int  # the hash salt (from the seed): the blade field of a seed

    def to(self, device) -> "Grass":
        return self


@dataclass
class OutdoorScene:
    """Ground plane z = 0 out to the far sphere, noise-textured spheres ("bushes") and boxes ("rocks",
    "crates") around a central cluster, the far sphere (sky, clouds, a mountain band), and optionally trees
    and bushes with leafy crowns (`foliage`; their trunks are boxes) and a layer of grass blades (`grass`)."""

    prim: Primitives
    detail: int
    foliage: Foliage | None = None
    grass: Grass | None = None

    def to(self, device) -> "OutdoorScene":
        return OutdoorScene(self.prim.to(device), self.detail, self.foliage.to(device) if self.foliage else None,
                            self.grass)


def make_outdoor(seed: int, detail: int = DEFAULT_DETAIL, foliage: int = 0, grass: float = 0.0) -> OutdoorScene:
    g = torch.Generator().manual_seed(seed + 17)

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    n_s, n_b, c_s, c_b = 48, 24, 12, 6
    # a central cluster (the capture's subject: c_s spheres, c_b boxes) inside the cameras' orbit (radius
    # 3.5-5.5) and a ring of objects outside it, 7-16 units out (its surroundings, seen behind the subject)
    rad = torch.cat([rand(c_s) * 1.4, 7.0 + rand(n_s - c_s) * 9.0])
    ang = rand(n_s) * 2 * math.pi
    sphere_r = torch.cat([0.2 + rand(c_s) * 0.35, 0.4 + rand(n_s - c_s) * 1.1])
    sphere_c = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang), sphere_r * (0.6 + 0.5 * rand(n_s))], -1)
    b_rad = torch.cat([rand(c_b) * 1.4, 7.0 + rand(n_b - c_b) * 9.0])
    b_ang = rand(n_b) * 2 * math.pi
    half = torch.cat([0.15 + rand(c_b, 3) * 0.3, 0.3 + rand(n_b - c_b, 3) * 0.9])
    centre = torch.stack([b_rad * torch.cos(b_ang), b_rad * torch.sin(b_ang), half[:, 2]], -1)
    prim = Primitives(
        sphere_c=sphere_c, sphere_r=sphere_r,
        sphere_col=torch.stack([rand(n_s, 3) * torch.tensor([0.3, 0.5, 0.2]) + torch.tensor([0.05, 0.2, 0.03]),
                                rand(n_s, 3) * 0.6 + 0.3], 1),
        sphere_freq=6.0 + rand(n_s).mul(10).floor(),
        box_min=centre - half, box_max=centre + half,
        box_col=torch.stack([rand(n_b, 3) * 0.35 + 0.25, rand(n_b, 3) * 0.5 + 0.45], 1),
        box_freq=4.0 + rand(n_b).mul(8).floor(),
    )
    return OutdoorScene(prim, detail, _make_foliage(seed, foliage, prim) if foliage else None,
                        Grass(float(grass), 7001 + 7919 * seed) if grass else None)


def _make_foliage(seed: int, n: int, prim: Primitives) -> Foliage:
    """n crowns (drawn from their own generator, so the rest of the scene is the same with or without them):
    a fifth are bushes between the central cluster and the cameras' orbit (radius 1.6-2.9, seen from 1-4
    units), a fifth are trees in the central cluster, the rest trees 6.5-16 units out (several depth layers
    behind the subject). Each tree gets a trunk box appended to `prim`'s boxes."""
    g = torch.Generator().manual_seed(seed + 29)

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    n_bush = max(1, n // 5)
    n_mid = max(1, n // 5) if n > 1 else 0
    n_far = n - n_bush - n_mid
    rad = torch.cat([1.6 + rand(n_bush) * 1.3, rand(n_mid) * 1.3, 6.5 + rand(n_far) * 9.5])
    ang = rand(n) * 2 * math.pi
    radius = torch.cat([0.25 + rand(n_bush) * 0.2, 0.45 + rand(n_mid) * 0.35, 0.9 + rand(n_far) * 1.3])
    height = torch.cat([radius[:n_bush] * 0.9, radius[n_bush:] * (1.4 + rand(n - n_bush) * 1.2)])
    centre = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang), height], -1)
    colour = torch.stack([rand(n, 3) * torch.tensor([0.15, 0.3, 0.1]) + torch.tensor([0.05, 0.2, 0.03]),
                          rand(n, 3) * torch.tensor([0.35, 0.4, 0.2]) + torch.tensor([0.25, 0.4, 0.1])], 1)
    trees = torch.arange(n_bush, n)
    half_w = 0.05 + radius[trees] * 0.08
    c = centre[trees]
    t_min = torch.stack([c[:, 0] - half_w, c[:, 1] - half_w, torch.zeros_like(half_w)], -1)
    t_max = torch.stack([c[:, 0] + half_w, c[:, 1] + half_w, c[:, 2]], -1)
    prim.box_min = torch.cat([prim.box_min, t_min])
    prim.box_max = torch.cat([prim.box_max, t_max])
    prim.box_col = torch.cat([prim.box_col, torch.stack([torch.full((len(trees), 3), 0.18) + rand(len(trees), 1) * 0.1,
                                                         torch.full((len(trees), 3), 0.35) + rand(len(trees), 1) * 0.1],
                                                        1) * torch.tensor([1.0, 0.8, 0.6])])
    prim.box_freq = torch.cat([prim.box_freq, torch.full((len(trees),), 9.0)])
    return Foliage(centre, radius, colour)


def _leaf(p: torch.Tensor) -> torch.Tensor:
    """Whether a point of a crown's shell is leaf (True) or a gap."""
    v = 0.65 * value_noise(p, LEAF_FREQ, 51) + 0.35 * value_noise(p, LEAF_FREQ * 2.3, 52)
    return v > LEAF_THRESHOLD


def _foliage_hits(origins: torch.Tensor, dirs: torch.Tensor, foliage: Foliage, best_t: torch.Tensor,
                  kind: torch.Tensor, index: torch.Tensor) -> None:
    """Lower best_t (in place) to each ray's nearest leaf or crown core, marking it kind LEAF_KIND and the
    crown's index. Only rays that enter a crown's bounding sphere before their current hit are tested."""
    for k in range(foliage.centre.shape[0]):
        oc = origins - foliage.centre[k]
        b = (oc * dirs).sum(-1)
        c = (oc * oc).sum(-1) - foliage.radius[k] ** 2
        disc = b * b - c
        rows = torch.nonzero((disc > 0) & (-b + torch.sqrt(disc.clamp_min(0)) > 1e-4)
                             & (-b - torch.sqrt(disc.clamp_min(0)) < best_t)).squeeze(-1)
        if rows.numel() == 0:
            continue
        o, d, bb, ocr = origins[rows], dirs[rows], b[rows], (oc * oc).sum(-1)[rows]
        t_best = best_t[rows].clone()
        for frac in (*LEAF_SHELLS, LEAF_CORE):
            r = foliage.radius[k] * frac
            dd = bb * bb - (ocr - r * r)
            root = torch.sqrt(dd.clamp_min(0))
            # a shell is hit where it enters and where it leaves (its far side, seen through a gap); the core only
            # where it enters
            for t in ((-bb - root,) if frac == LEAF_CORE else (-bb - root, -bb + root)):
                ok = (dd > 0) & (t > 1e-4) & (t < t_best)
                if frac != LEAF_CORE and bool(ok.any()):
                    sel = torch.nonzero(ok).squeeze(-1)
                    ok[sel] = _leaf(o[sel] + d[sel] * t[sel, None])
                t_best = torch.where(ok, t, t_best)
        hit = t_best < best_t[rows]
        best_t[rows] = t_best
        kind[rows] = torch.where(hit, LEAF_KIND, kind[rows])
        index[rows] = torch.where(hit, k, index[rows])


def trace_outdoor(origins: torch.Tensor, dirs: torch.Tensor, scene: OutdoorScene) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour [R, 3] and hit point [R, 3] of each ray (every ray hits: the far sphere encloses the scene)."""
    prim = scene.prim
    best_t, kind, index = _nearest_hits(origins, dirs, prim, FAR_RADIUS)
    if scene.foliage is not None:
        _foliage_hits(origins, dirs, scene.foliage, best_t, kind, index)
    if scene.grass is not None:
        _grass_hits(origins, dirs, scene.grass, best_t, kind, index)
    p = origins + dirs * best_t[:, None]
    return outdoor_colour(p, kind, index, scene, dirs), p


def _blades(ix: torch.Tensor, iy: torch.Tensor, grass: Grass) -> tuple[torch.Tensor, ...]:
    """The blade of each cell (ix, iy): root (x, y), lean (dx/dz, dy/dz), height, root radius and two shade
    variables in [0, 1), all from the cell's lattice hash (four 24-bit hashes, two 12-bit fields each)."""
    u = []
    for k in range(4):
        h = _hash24(ix, iy, k, grass.salt)
        u += [(h & 0xFFF).float() / 4096.0, (h >> 12).float() / 4096.0]
    c = GRASS_CELL
    r0 = GRASS_BLADE_R[0] + (GRASS_BLADE_R[1] - GRASS_BLADE_R[0]) * u[0]
    height = grass.height * (GRASS_MIN_HEIGHT + (1.0 - GRASS_MIN_HEIGHT) * u[1])
    m = r0 + GRASS_MARGIN
    x0, y0 = ix.float() * c, iy.float() * c
    root_x, root_y = x0 + m + (c - 2 * m) * u[2], y0 + m + (c - 2 * m) * u[3]
    # the tip moves from the root towards a point of the cell (so the blade stays inside it) by at most half its
    # height (a lean of up to ~35 degrees)
    aim_x = x0 + GRASS_MARGIN + (c - 2 * GRASS_MARGIN) * u[4] - root_x
    aim_y = y0 + GRASS_MARGIN + (c - 2 * GRASS_MARGIN) * u[5] - root_y
    reach = torch.clamp(0.5 * height / (aim_x.square() + aim_y.square()).sqrt().clamp_min(1e-9), max=0.8)
    return root_x, root_y, aim_x * reach / height, aim_y * reach / height, height, r0, u[6], u[7]


def _blade_t(o: torch.Tensor, d: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor, grass: Grass) -> torch.Tensor:
    """Distance along each ray (from o, which should be near the cell: float32 precision) to the blade of cell
    (ix, iy); inf where it misses. In coordinates sheared by the lean the blade is an upright cone,
    |q(z)| <= r0 (1 - z / h) for 0 <= z <= h, and a ray is still a line: a quadratic in t."""
    # float64: a ray grazing a blade's side is a near-double root, which float32 moves by ~0.1 mm or flips
    # between hit and miss depending on where along the ray it is solved
    root_x, root_y, lean_x, lean_y, h, r0 = (v.double() for v in _blades(ix, iy, grass)[:6])
    ox, oy, oz = o.double().unbind(-1)
    dx, dy, dz = d.double().unbind(-1)
    ax, ay = ox - root_x - lean_x * oz, oy - root_y - lean_y * oz
    bx, by = dx - lean_x * dz, dy - lean_y * dz
    cc, dd = r0 * (1 - oz / h), -r0 * dz / h
    qa = bx * bx + by * by - dd * dd
    qb = ax * bx + ay * by - cc * dd
    qc = ax * ax + ay * ay - cc * cc
    disc = qb * qb - qa * qc
    # qa > 0: the ray is not within the cone's narrow opening angle of its axis (rays of these cameras are at most
    # ~45 degrees below the horizon, blades lean at most ~35 degrees from the vertical); the inside is then one
    # interval [t1, t2] of the double cone, and the ray enters the blade where t1 lies between root and tip
    t1 = (-qb - disc.clamp_min(0).sqrt()) / torch.where(qa > 0, qa, torch.ones_like(qa))
    z1 = oz + t1 * dz
    ok = (qa > 0) & (disc >= 0) & (z1 >= 0) & (z1 <= h)
    return torch.where(ok, t1, torch.full_like(t1, math.inf)).float()


def _grass_hits(origins: torch.Tensor, dirs: torch.Tensor, grass: Grass, best_t: torch.Tensor, kind: torch.Tensor,
                index: torch.Tensor) -> None:
    """Lower best_t (in place) to each ray's first grass blade, marking it GRASS_KIND with the blade's cell in
    `index`. Only downward rays that cross the layer (0 < z < height, within GRASS_RADIUS of the centre) before
    their current hit are walked, cell by cell, until a blade is hit or the segment ends."""
    inf = math.inf
    c, top = GRASS_CELL, grass.height
    ox, oy, oz = origins.unbind(-1)
    dx, dy, dz = dirs.unbind(-1)
    down = dz < -1e-6
    safe_dz = torch.where(down, dz, -torch.ones_like(dz))
    t_top = ((top - oz) / safe_dz).clamp_min(1e-4)
    a = (dx * dx + dy * dy).clamp_min(1e-12)
    b = ox * dx + oy * dy
    disc = b * b - a * (ox * ox + oy * oy - GRASS_RADIUS**2)
    root = disc.clamp_min(0).sqrt()
    t0 = torch.maximum(t_top, (-b - root) / a)
    t_end = torch.minimum(best_t, (-b + root) / a)  # best_t is at most the ground's t
    rows = torch.nonzero(down & (oz > 0) & (disc > 0) & (t0 < t_end)).squeeze(-1)
    if rows.numel() == 0:
        return
    o, d, t_in, t_end = origins[rows], dirs[rows], t0[rows], t_end[rows]
    p = o + d * t_in[:, None]
    ix, iy = torch.floor(p[:, 0] / c).long(), torch.floor(p[:, 1] / c).long()
    step_x, step_y = torch.where(d[:, 0] > 0, 1, -1), torch.where(d[:, 1] > 0, 1, -1)
    while rows.numel():
        # the blade of the current cell, solved near the cell (o + t_in d) for float32 precision
        t = t_in + _blade_t(o + d * t_in[:, None], d, ix, iy, grass)
        hit = (t < t_end) & (t >= t_in - 1e-5)
        if bool(hit.any()):
            r = rows[hit]
            best_t[r] = t[hit]
            kind[r] = GRASS_KIND
            index[r] = (ix[hit] + _GRASS_CODE) * (2 * _GRASS_CODE) + iy[hit] + _GRASS_CODE
        # the next cell: across whichever of its x and y edges the ray reaches first (Amanatides and Woo)
        edge_x = ((ix + (step_x > 0).long()).float() * c - o[:, 0]) / d[:, 0]
        edge_y = ((iy + (step_y > 0).long()).float() * c - o[:, 1]) / d[:, 1]
        edge_x = torch.where(d[:, 0] == 0, inf, edge_x)
        edge_y = torch.where(d[:, 1] == 0, inf, edge_y)
        across_x = edge_x <= edge_y
        t_next = torch.where(across_x, edge_x, edge_y)
        keep = torch.nonzero(~hit & (t_next < t_end)).squeeze(-1)
        across_x = across_x[keep]
        rows, o, d, t_end, t_in = rows[keep], o[keep], d[keep], t_end[keep], t_next[keep]
        ix = ix[keep] + torch.where(across_x, step_x[keep], 0)
        iy = iy[keep] + torch.where(across_x, 0, step_y[keep])
        step_x, step_y = step_x[keep], step_y[keep]


def outdoor_colour(p: torch.Tensor, kind: torch.Tensor, index: torch.Tensor, scene: OutdoorScene,
                   dirs: torch.Tensor | None = None) -> torch.Tensor:
    """Each kind's texture is evaluated on its own rays only (fractal noise is most of the generator's time)."""
    col = torch.zeros_like(p)
    for k, shade in enumerate((_far_colour, _ground_colour, _sphere_colour, _box_colour, _leaf_colour,
                               _grass_colour)):
        rows = torch.nonzero(kind == k).squeeze(-1)
        if rows.numel():
            if k == LEAF_KIND:
                col[rows] = _leaf_colour(p[rows], index[rows], scene, None if dirs is None else dirs[rows])
            else:
                col[rows] = shade(p[rows], index[rows], scene)
    return col.clamp(0, 1)


def _leaf_colour(p: torch.Tensor, index: torch.Tensor, scene: OutdoorScene, dirs: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Leaves: two greens mixed by fine noise, darker deeper in the crown (the core is in shadow), and a glossy
    highlight towards the light when the view direction is known (view-dependent, as real leaves are)."""
    fol = scene.foliage
    rel = p - fol.centre[index]
    depth = (rel.norm(dim=-1) / fol.radius[index]).clamp(0, 1)
    n = rel / rel.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    vein = fbm(p, 40.0, 3, 0.7, 53, contrast=2.5)
    alb = fol.colour[index, 0] * (1 - vein[:, None]) + fol.colour[index, 1] * vein[:, None]
    alb = alb * (0.25 + 0.75 * ((depth - LEAF_CORE) / (1 - LEAF_CORE)).clamp(0, 1))[:, None]
    col = _shade(p, n, alb)
    if dirs is not None:
        light = (LIGHT_DIR / LIGHT_DIR.norm()).to(p.device)
        half = light - dirs
        half = half / half.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        col = col + 0.3 * (n * half).sum(-1).clamp_min(0).pow(24)[:, None] * (depth > 0.9).float()[:, None]
    return col


def _grass_colour(p: torch.Tensor, index: torch.Tensor, scene: OutdoorScene) -> torch.Tensor:
    """Blades: a green per blade (about one in eight dry, straw-coloured), darker towards the root (the layer
    shadows itself), lit by the blade's own side (diffuse only: the same colour from every view)."""
    ix = torch.div(index, 2 * _GRASS_CODE, rounding_mode="floor") - _GRASS_CODE
    iy = index % (2 * _GRASS_CODE) - _GRASS_CODE
    root_x, root_y, lean_x, lean_y, h, r0, u_tone, u_dry = _blades(ix, iy, scene.grass)
    qx, qy = p[:, 0] - root_x - lean_x * p[:, 2], p[:, 1] - root_y - lean_y * p[:, 2]
    # the cone's normal, tilted up as a flat blade's face is (towards the sky, about 30 degrees)
    n = torch.stack([qx, qy, (qx * qx + qy * qy).sqrt() * (r0 / h + 0.6)], -1)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    dark = torch.tensor([0.10, 0.26, 0.05], device=p.device)
    light = torch.tensor([0.36, 0.58, 0.14], device=p.device)
    straw = torch.tensor([0.55, 0.50, 0.26], device=p.device)
    alb = dark + (light - dark) * u_tone[:, None]
    alb = torch.where((u_dry < 0.12)[:, None], straw * (0.75 + 0.35 * u_tone[:, None]), alb)
    up = (p[:, 2] / h).clamp(0, 1)
    alb = alb * (0.3 + 0.7 * up.sqrt())[:, None]
    return _shade(p, n, alb)


def _far_colour(p: torch.Tensor, index: torch.Tensor, scene: OutdoorScene) -> torch.Tensor:
    """Sky gradient with clouds above a mountain band whose ridge is itself fractal."""
    octaves = scene.detail
    d = p / FAR_RADIUS
    elev = torch.asin(d[:, 2].clamp(-1, 1))
    ridge = 0.05 + 0.12 * fbm(torch.stack([d[:, 0], d[:, 1], torch.zeros_like(d[:, 0])], -1), 3.0, octaves, 0.6, 11,
                              contrast=1.0)
    mountain = (elev < ridge).float()[:, None]
    rock = fbm(p, 0.4, octaves, 0.8, 12)
    mtn_col = torch.stack([0.25 + 0.3 * rock, 0.3 + 0.25 * rock, 0.28 + 0.2 * rock], -1)
    cloud = fbm(p, 0.05, octaves, 0.65, 13).sub(0.45).mul(3.0).clamp(0, 1)
    sky = torch.stack([0.45 + 0.1 * d[:, 2], 0.6 + 0.1 * d[:, 2], 0.85 + 0.1 * d[:, 2]], -1)
    sky = sky * (1 - cloud[:, None]) + cloud[:, None] * 0.95
    return mountain * mtn_col + (1 - mountain) * sky


def _ground_colour(p: torch.Tensor, index: torch.Tensor, scene: OutdoorScene) -> torch.Tensor:
    """Grass patches and gravel, busy down to a few millimetres (about a pixel at the orbit's distance)."""
    n_up = torch.tensor([0.0, 0.0, 1.0], device=p.device).expand_as(p)
    patch = fbm(p * torch.tensor([1.0, 1.0, 0.0], device=p.device), 0.3, 3, 0.5, 21, contrast=1.5)
    grain = fbm(p, 4.0, scene.detail, 0.85, 22, contrast=3.5)
    grass = torch.stack([0.15 + 0.25 * grain, 0.35 + 0.35 * grain, 0.08 + 0.12 * grain], -1)
    gravel = torch.stack([0.45 + 0.4 * grain, 0.42 + 0.38 * grain, 0.38 + 0.35 * grain], -1)
    w = ((patch - 0.45) * 8.0).clamp(0, 1)[:, None]
    return _shade(p, n_up, grass * w + gravel * (1 - w))


def _sphere_colour(p: torch.Tensor, index: torch.Tensor, scene: OutdoorScene) -> torch.Tensor:
    """"Bushes": two colours mixed by fractal noise, faint stripes."""
    prim = scene.prim
    n_s = (p - prim.sphere_c[index]) / prim.sphere_r[index][:, None]
    leaf = (fbm(p, 2.0, scene.detail, 0.85, 31, contrast=3.5) * 0.85
            + 0.15 * _stripes(torch.atan2(n_s[:, 1], n_s[:, 0]), prim.sphere_freq[index]))
    alb = prim.sphere_col[index, 0] * (1 - leaf[:, None]) + prim.sphere_col[index, 1] * leaf[:, None]
    return _shade(p, n_s, alb)


def _box_colour(p: torch.Tensor, index: torch.Tensor, scene: OutdoorScene) -> torch.Tensor:
    """"Rocks" and "crates": fractal grain with a coarse grid."""
    prim = scene.prim
    bmin, bmax = prim.box_min[index], prim.box_max[index]
    rel = (p - (bmin + bmax) / 2) / ((bmax - bmin) / 2)
    n_b = torch.nn.functional.one_hot(rel.abs().argmax(-1), 3).float() * torch.sign(rel)
    stone = (fbm(p, 2.0, scene.detail, 0.8, 41, contrast=3.5) * 0.8
             + 0.2 * _stripes(p[:, 0] + p[:, 1] + p[:, 2], prim.box_freq[index]))
    alb = prim.box_col[index, 0] * (1 - stone[:, None]) + prim.box_col[index, 1] * stone[:, None]
    return _shade(p, n_b, alb)


def outdoor_camera_poses(n: int, seed: int, close: float = 0.0) -> list[np.ndarray]:
    """A 360-degree capture around the central cluster: one turn, radius 3.5-5.5, heights 0.6-2.4 (a person
    walking round it twice at two heights, as in Mip-NeRF 360's outdoor scenes). With ``close`` > 0 that
    fraction of the views (the last ones) is a closer pass: one more turn at radius 2.5-2.9, heights 0.35-1.05,
    half a unit to two units from the cluster's surfaces, where their pixel-scale texture is resolved 2-4x
    finer (a person stepping in for detail); the other views still make the two turns."""
    rng = np.random.default_rng(seed)
    poses = []
    n_close = round(close * n)
    n_outer = n - n_close
    for i in range(n_outer):
        a = 2 * math.pi * i / n_outer * 2.0 + rng.uniform(-0.03, 0.03)
        radius = 4.5 + 0.8 * math.sin(5 * a) + rng.uniform(-0.2, 0.2)
        height = (0.8 if i < n_outer // 2 else 1.9) + 0.3 * math.sin(3 * a) + rng.uniform(-0.1, 0.1)
        eye = np.array([radius * math.cos(a), radius * math.sin(a), height])
        target = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.2, 0.6)])
        poses.append(look_at(eye, target))
    near = np.random.default_rng(seed + 1)  # its own stream: the outer views draw the same jitter either way
    for i in range(n_close):
        a = 2 * math.pi * i / n_close + near.uniform(-0.03, 0.03)
        radius = 2.7 + 0.15 * math.sin(4 * a) + near.uniform(-0.05, 0.05)
        height = 0.7 + 0.3 * math.sin(3 * a) + near.uniform(-0.05, 0.05)
        eye = np.array([radius * math.cos(a), radius * math.sin(a), height])
        target = np.array([near.uniform(-0.6, 0.6), near.uniform(-0.6, 0.6), near.uniform(0.1, 0.4)])
        poses.append(look_at(eye, target))
    return poses


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
                prim, device: torch.device, supersample: int = 2, tile_rays: int | None = None) -> torch.Tensor:
    """uint8 [H, W, 3] image, box-filtered over supersample x supersample rays per pixel. `prim` is the room's
    Primitives or an OutdoorScene. Rays are traced `tile_rays` at a time (default: CPU_TILE_RAYS on the CPU, all
    at once on a GPU); every ray's colour is computed on its own, so tiling changes the time, not the image."""
    device = torch.device(device)
    if tile_rays is None:
        tile_rays = CPU_TILE_RAYS if device.type == "cpu" else 0
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
    tile = tile_rays if tile_rays > 0 else dirs.shape[0]
    col = torch.cat([trace_any(origins[s:s + tile], dirs[s:s + tile], prim)[0] for s in range(0, dirs.shape[0], tile)])
    img = col.reshape(height, ss, width, ss, 3).mean(dim=(1, 3))
    return (img * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu()


def trace_any(origins: torch.Tensor, dirs: torch.Tensor, prim) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(prim, OutdoorScene):
        return trace_outdoor(origins, dirs, prim)
    return trace(origins, dirs, prim)


@dataclass
class PointDraws:
    """The random numbers behind a scene's SfM points, drawn up front from one stream seeded by the scene's seed,
    in the order the generator has always drawn them (per view: ray x, ray y, and for outdoor scenes the far-point
    lottery; then the noise of every point). A view's points are then a function of its own draws, so views can
    be made in any order and by any number of processes, and the points are the same as when they were drawn view
    after view during the tracing."""

    per_view: int
    views: list  # per view: (u_x [rays], u_y [rays], u_keep [rays] or None), uniforms in [0, 1)
    noise: torch.Tensor  # [n_points, 3] standard normal


def draw_points(seed: int, n_views: int, n_points: int, outdoor: bool) -> PointDraws:
    g = torch.Generator(device="cpu").manual_seed(seed + 1)
    per_view = max(1, math.ceil(n_points / n_views))
    rays = per_view * 3 if outdoor else per_view
    views = [(torch.rand(rays, generator=g), torch.rand(rays, generator=g),
              torch.rand(rays, generator=g) if outdoor else None) for _ in range(n_views)]
    return PointDraws(per_view, views, torch.randn((min(n_points, per_view * n_views), 3), generator=g))


def view_points(prim, w2c: np.ndarray, fx, fy, cx, cy, width, height, per_view: int, draws: tuple, device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One view's `per_view` SfM-like points before the noise (float32 [per_view, 3] surface hits of rays from the
    camera, colours in [0, 1]), from its draws (PointDraws.views[i]). Outdoor: hits on the far sphere are kept
    with probability FAR_POINT_KEEP (COLMAP's sparse background)."""
    u_x, u_y, u_keep = draws
    c2w = torch.tensor(np.linalg.inv(w2c), dtype=torch.float32)
    px, py = u_x * width, u_y * height
    d = torch.stack([(px - cx) / fx, (py - cy) / fy, torch.ones_like(px)], -1) @ c2w[:3, :3].T
    d = (d / d.norm(dim=-1, keepdim=True)).to(device)
    col, p = trace_any(c2w[:3, 3].to(device).expand_as(d), d, prim)
    col, p = col.cpu(), p.cpu()
    if u_keep is not None:
        far = p.norm(dim=-1) > FAR_RADIUS * 0.99
        keep = ~far | (u_keep < FAR_POINT_KEEP)
        # kept rays first (in ray order), then, if a view is mostly sky, the dropped ones: exactly per_view
        order = torch.cat([torch.nonzero(keep).squeeze(-1), torch.nonzero(~keep).squeeze(-1)])[:per_view]
        col, p = col[order], p[order]
    return p, col


def sample_points(prim, poses: list[np.ndarray], fx, fy, cx, cy, width, height, n_points: int,
                  seed: int, device, noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """SfM-like points: surface hits of random rays from the training cameras, with a little noise (``noise``
    scene units, standard deviation; 0 gives the exact hits, for tests of surfaces thinner than the noise).
    Points come in view order: the first ceil(n_points / n_views) from view 0, and so on (tests rely on it).
    Outdoor: hits on the far sphere are kept with probability FAR_POINT_KEEP (COLMAP's sparse background)."""
    draws = draw_points(seed, len(poses), n_points, isinstance(prim, OutdoorScene))
    views = [view_points(prim, w2c, fx, fy, cx, cy, width, height, draws.per_view, draws.views[i], device)
             for i, w2c in enumerate(poses)]
    return noisy_points([p for p, _ in views], [c for _, c in views], draws, noise)


def noisy_points(xyz: list[torch.Tensor], rgb: list[torch.Tensor], draws: PointDraws, noise: float = 0.01
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The views' points in view order, cut to the scene's count, with the SfM triangulation noise added."""
    n = draws.noise.shape[0]
    xyz_t = torch.cat(xyz)[:n] + draws.noise * noise
    return xyz_t.double().numpy(), (torch.cat(rgb)[:n] * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def capture_imperfections(n: int, seed: int, exposure: float, pose_deg: float, pose_shift: float
                          ) -> tuple[np.ndarray, list[np.ndarray]]:
    """What a real capture adds that a renderer does not: each view's exposure gain (log-normal, sigma
    ``exposure``, per colour channel as auto exposure and white balance do) and the error in the pose SfM
    recovers for it (a rotation of ``pose_deg`` degrees about a random axis and a shift of ``pose_shift``
    scene units, both standard deviations). Views disagree slightly, so the model keeps finding gradient
    where a clean synthetic scene has converged. Returns the gains [n, 3] and 4x4 pose errors."""
    rng = np.random.default_rng(seed + 7919)
    gains = np.exp(rng.normal(0.0, exposure, size=(n, 1)) + rng.normal(0.0, exposure / 3, size=(n, 3)))
    errors = []
    for _ in range(n):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = math.radians(rng.normal(0.0, pose_deg)) if pose_deg else 0.0
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        error = np.eye(4)
        error[:3, :3] = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)  # Rodrigues
        error[:3, 3] = rng.normal(0.0, pose_shift, size=3) if pose_shift else 0.0
        errors.append(error)
    return gains, errors


def default_workers() -> int:
    """The CPUs this process may use: os.cpu_count(), lowered to its CPU affinity and to a cgroup CPU quota
    (a container limited to 4 CPUs of a 64-core host counts 4)."""
    n = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        n = min(n, len(os.sched_getaffinity(0)))
    quota = _cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def auto_workers(device: str | torch.device) -> int:
    """The default number of workers: all the CPUs (default_workers()) when the views are traced on the CPU; one
    on a GPU, where the tracing is the GPU's work and several processes sharing it have not been measured yet
    (bench/synthetic_gen_workers.py --device cuda measures it)."""
    return default_workers() if torch.device(device).type == "cpu" else 1


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 cpu.max "QUOTA PERIOD", v1 cpu.cfs_quota_us / cpu.cfs_period_us),
    None when unlimited or unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


@dataclass
class _ViewJob:
    """What a worker needs to make any view of a scene: its image and its SfM points."""

    prim: object  # Primitives or OutdoorScene, on the CPU (moved to `device` in the worker)
    poses: list
    intrinsics: tuple  # fx, fy, cx, cy
    width: int
    height: int
    supersample: int
    device: str
    per_view: int
    ready: dict = field(default_factory=dict)  # per process: the scene on its device


_JOB: _ViewJob | None = None


def _init_worker(job: _ViewJob) -> None:
    # one thread per view, whatever the number of workers: the same arithmetic in every configuration
    torch.set_num_threads(1)
    global _JOB
    _JOB = job
    job.ready["prim"] = job.prim.to(torch.device(job.device))


def _make_view(task: tuple[int, tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """View i's uint8 image [H, W, 3] and its SfM points before the noise (positions, colours), from its draws.
    numpy arrays: torch would pass tensors between processes as shared-memory file descriptors, one per tensor
    kept, which a scene of many views can run out of."""
    i, draws = task
    draws = tuple(None if u is None else torch.from_numpy(u) for u in draws)
    job = _JOB
    fx, fy, cx, cy = job.intrinsics
    prim = job.ready["prim"]
    img = render_view(job.poses[i], fx, fy, cx, cy, job.width, job.height, prim, torch.device(job.device),
                      job.supersample)
    xyz, rgb = view_points(prim, job.poses[i], fx, fy, cx, cy, job.width, job.height, job.per_view, draws,
                           job.device)
    return img.numpy(), xyz.numpy(), rgb.numpy()


def _make_views(job: _ViewJob, draws: PointDraws, workers: int):
    """Views 0..n-1 in order, made by `workers` processes (1: in this one). Each view is computed alone, with one
    torch thread, from its pose and its own draws, so the result does not depend on `workers`."""
    # numpy, not tensors, between processes (see _make_view)
    tasks = [(i, tuple(None if u is None else u.numpy() for u in view)) for i, view in enumerate(draws.views)]
    workers = max(1, min(workers, len(tasks)))
    if workers == 1:
        threads = torch.get_num_threads()
        try:
            _init_worker(job)
            for task in tasks:
                yield _make_view(task)
        finally:
            torch.set_num_threads(threads)
        return
    # spawn, not fork: a forked child inherits a parent's OpenMP and CUDA state, which can hang or fail
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(job,))
    try:
        yield from pool.map(_make_view, tasks)
    finally:
        # on an error (a view's or the caller's), the views not started are dropped instead of all made first
        pool.shutdown(wait=True, cancel_futures=True)


def generate_scene(out_dir: str | Path, n_images: int = 24, width: int = 32, height: int = 24,
                   n_points: int = 2000, seed: int = 0, device: str | torch.device = "cpu",
                   supersample: int = 2, style: str = "room", detail: int = DEFAULT_DETAIL, foliage: int = 0,
                   exposure: float = 0.0, pose_deg: float = 0.0, pose_shift: float = 0.0,
                   close: float = 0.0, grass: float = 0.0, workers: int = 1) -> Path:
    """Write OUT/sparse/0/{cameras,images,points3D}.bin, OUT/images/view_XXXX.png and OUT/scene.json.
    ``exposure``, ``pose_deg`` and ``pose_shift`` add a real capture's imperfections (capture_imperfections):
    images are rendered from the true poses, then exposed; the model records the poses SfM would have found.
    ``workers`` processes make the views (default_workers() for all the CPUs); the files are the same for any
    number of them."""
    if style not in STYLES:
        raise ValueError(f"style={style!r}: accepted {', '.join(STYLES)}")
    if detail < 1:
        raise ValueError(f"detail={detail}: the number of noise octaves must be >= 1")
    if foliage < 0 or (foliage and style != "outdoor"):
        raise ValueError(f"foliage={foliage}: a number of trees >= 0, with style outdoor only")
    if not 0.0 <= close < 1.0 or (close and style != "outdoor"):
        raise ValueError(f"close={close}: the fraction of views on the close pass, 0 <= close < 1, style outdoor only")
    if not 0.0 <= grass <= GRASS_MAX_HEIGHT or (grass and style != "outdoor"):
        raise ValueError(f"grass={grass}: the height of the grass layer in scene units, 0 <= grass <= "
                         f"{GRASS_MAX_HEIGHT} (below the cameras; e.g. 0.08), style outdoor only")
    if min(exposure, pose_deg, pose_shift) < 0:
        raise ValueError("exposure, pose_deg and pose_shift are standard deviations: >= 0")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: the number of processes making views, an integer >= 1 "
                         f"(this machine: {default_workers()})")
    from PIL import Image as PILImage

    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    if style == "outdoor":
        prim = make_outdoor(seed, detail, foliage, grass)
        poses = outdoor_camera_poses(n_images, seed, close)
    else:
        prim = make_primitives(seed)
        poses = camera_poses(n_images, seed)
    fx = fy = 0.9 * width
    cx, cy = width / 2.0, height / 2.0
    names = [f"view_{i:04d}.png" for i in range(n_images)]
    gains, errors = capture_imperfections(n_images, seed, exposure, pose_deg, pose_shift)

    def save(i_img):
        i, img = i_img
        if exposure:
            img = (img.float() * torch.as_tensor(gains[i], dtype=torch.float32)).round().clamp(0, 255).to(torch.uint8)
        PILImage.fromarray(img.numpy()).save(images_dir / names[i], compress_level=1)

    draws = draw_points(seed, n_images, n_points, style == "outdoor")
    job = _ViewJob(prim, poses, (fx, fy, cx, cy), width, height, supersample, str(device), draws.per_view)
    xyz, rgb = [], []
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        for i, (img, view_xyz, view_rgb) in enumerate(_make_views(job, draws, workers)):
            futures.append(pool.submit(save, (i, torch.from_numpy(img))))
            xyz.append(torch.from_numpy(view_xyz))
            rgb.append(torch.from_numpy(view_rgb))
        for f in futures:
            f.result()

    xyz, rgb = noisy_points(xyz, rgb, draws)
    cameras = {1: Camera(1, "PINHOLE", width, height, np.array([fx, fy, cx, cy]))}
    recorded = [errors[i] @ w2c for i, w2c in enumerate(poses)]
    images = {
        i + 1: Image(i + 1, rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3].copy(), 1, names[i])
        for i, w2c in enumerate(recorded)
    }
    points = Points3D(np.arange(1, len(xyz) + 1, dtype=np.int64), xyz, rgb, np.full(len(xyz), 0.5))
    write_model_binary(out / "sparse" / "0", cameras, images, points)
    (out / "scene.json").write_text(json.dumps(
        {"generator": "splat_trainer.synthetic", "images": n_images, "width": width, "height": height,
         "points": int(len(xyz)), "seed": seed, "supersample": supersample, "style": style,
         **({"detail": detail} if style == "outdoor" else {}), **({"foliage": foliage} if foliage else {}),
         **({"close": close} if close else {}), **({"grass": grass} if grass else {}),
         **({"exposure": exposure, "pose_deg": pose_deg, "pose_shift": pose_shift}
            if exposure or pose_deg or pose_shift else {})}, indent=1))
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
    ap.add_argument("--style", choices=STYLES, default="room",
                    help="room: smooth textures, grows to ~0.3 M Gaussians; outdoor: fractal textures and a far "
                         "background, grows like a real capture")
    ap.add_argument("--detail", type=int, default=DEFAULT_DETAIL, help="outdoor: noise octaves (finer texture)")
    ap.add_argument("--foliage", type=int, default=0,
                    help="outdoor: trees and bushes with leafy crowns (depth layers, gaps, glossy leaves); 0: none")
    ap.add_argument("--exposure", type=float, default=0.0,
                    help="per-view exposure/white-balance jitter (log-normal sigma, e.g. 0.08); 0: none")
    ap.add_argument("--pose-deg", type=float, default=0.0,
                    help="SfM rotation error per recorded pose (degrees, standard deviation); 0: exact poses")
    ap.add_argument("--pose-shift", type=float, default=0.0,
                    help="SfM position error per recorded pose (scene units, standard deviation); 0: exact")
    ap.add_argument("--close", type=float, default=0.0,
                    help="outdoor: fraction of the views on a closer pass round the central cluster (0-1); 0: none")
    ap.add_argument("--grass", type=float, default=0.0,
                    help="outdoor: height of a layer of grass blades over the ground within 12 units of the centre "
                         f"(scene units, e.g. 0.08; at most {GRASS_MAX_HEIGHT}); 0: none")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where the views are traced (default: cuda when available, else cpu)")
    ap.add_argument("--workers", type=int, default=None,
                    help="processes making views, one torch thread each; the files are the same for any number "
                         f"(default: with --device cpu the CPUs this process may use, here {default_workers()}; "
                         "on a GPU 1)")
    a = ap.parse_args(argv)
    if a.workers is None:
        a.workers = auto_workers(a.device)
    if a.workers < 1:
        ap.error(f"--workers {a.workers}: the number of processes making views, at least 1")
    generate_scene(a.out, a.images, a.width, a.height, a.points, a.seed, a.device, a.supersample, a.style, a.detail,
                   a.foliage, a.exposure, a.pose_deg, a.pose_shift, a.close, a.grass, a.workers)
    print(f"wrote {a.images} views of {a.width}x{a.height} and {a.points} points to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
