"""A small differentiable 3DGS rasterizer in pure PyTorch (CPU), for CI and tiny scenes.

It implements the subset of `gsplat.rasterization` the trainer uses, with the same argument names and the
same `info` keys the densification strategy reads (means2d with its gradient, radii [.., 2], width, height,
n_cameras, gaussian_ids/camera_ids when packed). It evaluates every Gaussian at every pixel (no tiles), so
it is O(pixels x Gaussians): fine for 32x24 images and a few thousand Gaussians, not for real scenes.
Projection follows gsplat's (EWA, pinhole, eps2d dilation, 3-sigma per-axis radii, alpha <= 0.99,
skip alpha < 1/255).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Real SH colour, gsplat/3DGS convention. coeffs [..., K, 3], dirs [..., 3] (unit) -> [..., 3]."""
    out = SH_C0 * coeffs[..., 0, :]
    if degree < 1:
        return out
    x, y, z = dirs[..., 0:1], dirs[..., 1:2], dirs[..., 2:3]
    out = out - SH_C1 * y * coeffs[..., 1, :] + SH_C1 * z * coeffs[..., 2, :] - SH_C1 * x * coeffs[..., 3, :]
    if degree < 2:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = (out + SH_C2[0] * xy * coeffs[..., 4, :] + SH_C2[1] * yz * coeffs[..., 5, :]
           + SH_C2[2] * (2 * zz - xx - yy) * coeffs[..., 6, :] + SH_C2[3] * xz * coeffs[..., 7, :]
           + SH_C2[4] * (xx - yy) * coeffs[..., 8, :])
    if degree < 3:
        return out
    return (out + SH_C3[0] * y * (3 * xx - yy) * coeffs[..., 9, :] + SH_C3[1] * xy * z * coeffs[..., 10, :]
            + SH_C3[2] * y * (4 * zz - xx - yy) * coeffs[..., 11, :]
            + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * coeffs[..., 12, :]
            + SH_C3[4] * x * (4 * zz - xx - yy) * coeffs[..., 13, :] + SH_C3[5] * z * (xx - yy) * coeffs[..., 14, :]
            + SH_C3[6] * x * (xx - 3 * yy) * coeffs[..., 15, :])


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Quaternions (w, x, y, z), any norm -> rotation matrices [..., 3, 3]."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(quats.shape[:-1] + (3, 3))


def rasterization(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4]
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    colors: torch.Tensor,  # [N, K, 3] SH coefficients (sh_degree set) or [N, 3] RGB
    viewmats: torch.Tensor,  # [C, 4, 4]
    Ks: torch.Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    packed: bool = True,
    backgrounds: torch.Tensor | None = None,
    absgrad: bool = False,
    rasterize_mode: str = "classic",
    **_ignored: Any,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    C, N = viewmats.shape[0], means.shape[0]
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    p_cam = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]
    z = p_cam[..., 2]
    in_depth = (z > near_plane) & (z < far_plane)
    zc = torch.where(in_depth, z, torch.ones_like(z))
    fx, fy, cx, cy = Ks[:, 0, 0, None], Ks[:, 1, 1, None], Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    x, y = p_cam[..., 0], p_cam[..., 1]
    means2d = torch.stack([fx * x / zc + cx, fy * y / zc + cy], -1)  # [C, N, 2]

    rot = quat_to_rotmat(quats)
    cov3d = rot @ torch.diag_embed(scales * scales) @ rot.transpose(-1, -2)  # [N, 3, 3]
    # Jacobian of the perspective projection (gsplat clamps the tangent to 1.3x the FoV; do the same)
    lim_x = 1.3 * (0.5 * width / fx)
    lim_y = 1.3 * (0.5 * height / fy)
    tx = (x / zc).clamp(-lim_x, lim_x) * zc
    ty = (y / zc).clamp(-lim_y, lim_y) * zc
    zero = torch.zeros_like(zc)
    J = torch.stack([fx / zc, zero, -fx * tx / (zc * zc), zero, fy / zc, -fy * ty / (zc * zc)], -1).reshape(C, N, 2, 3)
    cov_cam = R[:, None] @ cov3d[None] @ R[:, None].transpose(-1, -2)  # [C, N, 3, 3]
    cov2d = J @ cov_cam @ J.transpose(-1, -2)
    det_orig = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] ** 2
    cov2d = cov2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    a, b, c = cov2d[..., 0, 0], cov2d[..., 0, 1], cov2d[..., 1, 1]
    det = a * c - b * b
    valid = in_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)  # [C, N, 3]
    opac = opacities[None].expand(C, N)
    if rasterize_mode == "antialiased":
        opac = opac * torch.sqrt((det_orig / det_safe).clamp_min(0))

    with torch.no_grad():
        rx = torch.ceil(3.0 * torch.sqrt(a.clamp_min(0)))
        ry = torch.ceil(3.0 * torch.sqrt(c.clamp_min(0)))
        on_screen = (
            (means2d[..., 0] + rx > 0) & (means2d[..., 0] - rx < width)
            & (means2d[..., 1] + ry > 0) & (means2d[..., 1] - ry < height)
        )
        visible = valid & on_screen
        radii = torch.stack([rx, ry], -1).to(torch.int32) * visible[..., None]

    if sh_degree is not None:
        cam_centers = -(R.transpose(-1, -2) @ t[..., None])[..., 0]  # [C, 3]
        dirs = F.normalize(means[None] - cam_centers[:, None], dim=-1)
        rgb = (eval_sh(sh_degree, colors[None].expand(C, *colors.shape), dirs) + 0.5).clamp_min(0.0)
    else:
        rgb = colors[None].expand(C, *colors.shape)

    if packed:
        camera_ids, gaussian_ids = torch.nonzero(visible, as_tuple=True)
        means2d_out = means2d[camera_ids, gaussian_ids]  # [nnz, 2]: the tensor whose grad the strategy reads
    else:
        means2d_out = means2d

    ys, xs = torch.meshgrid(torch.arange(height, device=means.device, dtype=means.dtype) + 0.5,
                            torch.arange(width, device=means.device, dtype=means.dtype) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(-1, 2)  # [P, 2]
    renders, alphas = [], []
    for ci in range(C):
        if packed:
            rows = (camera_ids == ci).nonzero(as_tuple=True)[0]
            ids = gaussian_ids[rows]
            m2d = means2d_out[rows]
        else:
            ids = visible[ci].nonzero(as_tuple=True)[0]
            m2d = means2d_out[ci, ids]
        order = torch.argsort(z[ci, ids])
        ids, m2d = ids[order], m2d[order]
        con, op, col = conics[ci, ids], opac[ci, ids], rgb[ci, ids]
        d = pix[:, None, :] - m2d[None]  # [P, M, 2]
        sigma = 0.5 * (con[None, :, 0] * d[..., 0] ** 2 + con[None, :, 2] * d[..., 1] ** 2) + con[None, :, 1] * d[..., 0] * d[..., 1]
        alpha = (op[None] * torch.exp(-sigma.clamp_min(0))).clamp(max=ALPHA_MAX)
        alpha = torch.where((alpha >= ALPHA_MIN) & (sigma >= 0), alpha, torch.zeros_like(alpha))
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
        weights = alpha * trans  # [P, M]
        img = weights @ col
        acc = weights.sum(-1, keepdim=True)
        if backgrounds is not None:
            img = img + (1 - acc) * backgrounds[ci]
        renders.append(img.reshape(height, width, -1))
        alphas.append(acc.reshape(height, width, 1))

    info: dict[str, Any] = {
        "means2d": means2d_out,
        "radii": radii[camera_ids, gaussian_ids] if packed else radii,
        "depths": z[camera_ids, gaussian_ids] if packed else z,
        "conics": conics[camera_ids, gaussian_ids] if packed else conics,
        "width": width,
        "height": height,
        "n_cameras": C,
        "tile_size": 16,
    }
    if packed:
        info["camera_ids"], info["gaussian_ids"] = camera_ids, gaussian_ids
    else:
        info["gaussian_ids"] = None
    return torch.stack(renders), torch.stack(alphas), info


def check_scene_size(n_gaussians: int, width: int, height: int, limit: int = 200_000_000) -> None:
    """The dense evaluation holds pixels x Gaussians floats several times: refuse clearly when too large."""
    if n_gaussians * width * height > limit:
        raise ValueError(
            f"the torch backend evaluates every Gaussian at every pixel: {n_gaussians} Gaussians x {width}x{height} "
            f"pixels is too large for it (limit {limit:.0e}); use backend=gsplat on a GPU, or a smaller scene"
        )

