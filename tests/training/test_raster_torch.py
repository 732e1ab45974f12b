"""The pure-PyTorch rasterizer: what it draws, what it returns for the strategy, and its gradients.
(Its parity with gsplat.rasterization is checked on a GPU by bench/check_raster_parity.py: max image
difference 1.2e-6, gradient relative difference 1e-6, packed and unpacked.)"""

from __future__ import annotations

import math

import pytest
import torch

from splat_trainer.raster_torch import SH_C0, check_scene_size, eval_sh, quat_to_rotmat, rasterization

W, H = 16, 12
K = torch.tensor([[[20.0, 0, 8.0], [0, 20.0, 6.0], [0, 0, 1]]])


def one_gaussian(x=0.0, y=0.0, z=2.0, scale=0.1, opacity=0.8, rgb=(0.9, 0.2, 0.1)):
    means = torch.tensor([[x, y, z]])
    sh = torch.zeros(1, 16, 3)
    sh[0, 0] = (torch.tensor(rgb) - 0.5) / SH_C0
    return dict(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]), scales=torch.full((1, 3), scale),
                opacities=torch.tensor([opacity]), colors=sh, viewmats=torch.eye(4)[None], Ks=K, width=W, height=H)


def test_a_centred_gaussian_peaks_at_the_principal_point_with_its_colour_and_opacity():
    img, alpha, info = rasterization(**one_gaussian(), sh_degree=0, packed=False)
    assert img.shape == (1, H, W, 3) and alpha.shape == (1, H, W, 1)
    a = alpha[0, ..., 0]
    peak = divmod(int(a.argmax()), W)
    assert peak in {(5, 7), (5, 8), (6, 7), (6, 8)}  # the four pixels around (8, 6)
    # sigma = 0.1 * 20 / 2 = 1 px, plus the 0.3 px^2 dilation; pixel centres are (0.5, 0.5) px off the mean
    expected_alpha = 0.8 * math.exp(-0.5 * (0.25 + 0.25) / 1.3)
    assert math.isclose(float(a.max()), expected_alpha, rel_tol=1e-4)
    torch.testing.assert_close(img[0, peak[0], peak[1]] / a.max(), torch.tensor([0.9, 0.2, 0.1]), atol=1e-4, rtol=0)
    assert float(a[0, 0]) < 1e-3  # far from the centre: nothing


@pytest.mark.parametrize("far_first", [True, False])
def test_near_gaussian_occludes_far_one_whatever_their_order(far_first):
    near = one_gaussian(z=2.0, opacity=0.99, rgb=(1.0, 0.0, 0.0))
    far = one_gaussian(z=4.0, opacity=0.99, rgb=(0.0, 0.0, 1.0), scale=0.3)
    first, second = (far, near) if far_first else (near, far)
    both = {k: (torch.cat([first[k], second[k]]) if k in ("means", "quats", "scales", "opacities", "colors") else v)
            for k, v in near.items()}
    img, _, _ = rasterization(**both, sh_degree=0, packed=False)
    alpha_near = 0.99 * math.exp(-0.5 * 0.5 / 1.3)
    alpha_far = 0.99 * math.exp(-0.5 * 0.5 / (1.5**2 + 0.3))  # sigma 0.3 * 20 / 4 = 1.5 px
    r, g, b = img[0, 6, 8].tolist()
    assert math.isclose(r, alpha_near, rel_tol=1e-4)
    assert math.isclose(b, (1 - alpha_near) * alpha_far, rel_tol=1e-4)


@pytest.mark.parametrize("z, visible", [(2.0, True), (-2.0, False), (0.001, False)])
def test_gaussians_behind_or_at_the_camera_get_zero_radii(z, visible):
    _, _, info = rasterization(**one_gaussian(z=z), sh_degree=0, packed=False)
    assert info["radii"].shape == (1, 1, 2)
    assert bool((info["radii"] > 0).all()) is visible


def test_offscreen_gaussian_is_culled():
    _, alpha, info = rasterization(**one_gaussian(x=5.0), sh_degree=0, packed=False)
    assert int(info["radii"].max()) == 0 and float(alpha.max()) == 0.0


def scene(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    return dict(means=torch.cat([(r(n, 2) - 0.5) * 1.5, 2 + r(n, 1)], -1), quats=r(n, 4) - 0.5,
                scales=0.03 + r(n, 3) * 0.1, opacities=0.3 + r(n) * 0.6, colors=(r(n, 16, 3) - 0.5) * 0.5,
                viewmats=torch.eye(4)[None].repeat(2, 1, 1), Ks=K.repeat(2, 1, 1), width=W, height=H)


def test_packed_and_unpacked_render_the_same_and_report_the_same_visibility():
    s = scene()
    img_u, a_u, info_u = rasterization(**s, sh_degree=3, packed=False)
    img_p, a_p, info_p = rasterization(**s, sh_degree=3, packed=True)
    torch.testing.assert_close(img_u, img_p)
    torch.testing.assert_close(a_u, a_p)
    n_visible = int((info_u["radii"] > 0).all(-1).sum())
    assert info_p["means2d"].shape == (n_visible, 2) == (info_p["gaussian_ids"].numel(), 2)
    assert info_u["means2d"].shape == (2, 30, 2)
    for key in ("width", "height", "n_cameras", "radii", "gaussian_ids", "means2d"):
        assert key in info_u and key in info_p
    assert (info_u["width"], info_u["height"], info_u["n_cameras"]) == (W, H, 2)


@pytest.mark.parametrize("packed", [False, True])
def test_means2d_receives_the_gradient_the_strategy_reads(packed):
    s = scene()
    means = s["means"].clone().requires_grad_(True)
    img, _, info = rasterization(**{**s, "means": means}, sh_degree=3, packed=packed)
    info["means2d"].retain_grad()
    img.sum().backward()
    assert info["means2d"].grad is not None and float(info["means2d"].grad.abs().sum()) > 0
    assert float(means.grad.abs().sum()) > 0


def test_gradient_of_the_mean_matches_finite_differences():
    s = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in scene(n=5, seed=2).items()}
    means = s["means"].clone().requires_grad_(True)
    weights = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def f(m):
        img, _, _ = rasterization(**{**s, "means": m, "viewmats": s["viewmats"][:1], "Ks": s["Ks"][:1]},
                                  sh_degree=3, packed=False)
        return (img * weights).sum()

    f(means).backward()
    eps = 1e-6
    for i, j in [(0, 0), (1, 1), (2, 2), (3, 0)]:
        d = torch.zeros_like(means)
        d[i, j] = eps
        numeric = (f(means.detach() + d) - f(means.detach() - d)) / (2 * eps)
        assert math.isclose(float(means.grad[i, j]), float(numeric), rel_tol=1e-3, abs_tol=1e-6)


def test_sh_degree_zero_is_view_independent():
    coeffs = torch.randn(4, 16, 3)
    dirs = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1)
    torch.testing.assert_close(eval_sh(0, coeffs, dirs), eval_sh(0, coeffs, -dirs))
    assert not torch.allclose(eval_sh(3, coeffs, dirs), eval_sh(3, coeffs, -dirs))


@pytest.mark.parametrize("quat", [[1.0, 0, 0, 0], [0.3, 0.1, -0.7, 0.2], [0, 0, 0, 5.0]])
def test_quaternions_give_rotations(quat):
    r = quat_to_rotmat(torch.tensor(quat))
    torch.testing.assert_close(r @ r.T, torch.eye(3), atol=1e-6, rtol=0)
    assert abs(float(torch.linalg.det(r)) - 1) < 1e-6


def test_too_large_a_scene_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="use backend=gsplat on a GPU"):
        check_scene_size(1_000_000, 1152, 864)
