"""The trained splat as a standard 3DGS .ply: written, read back, and byte-identical to gsplat's exporter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from splat_trainer.export import export_ply, read_ply, splat_to_ply_bytes


def random_splats(n=25, k=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"means": torch.randn(n, 3, generator=g), "scales": torch.randn(n, 3, generator=g),
            "quats": torch.randn(n, 4, generator=g), "opacities": torch.randn(n, generator=g),
            "sh0": torch.randn(n, 1, 3, generator=g), "shN": torch.randn(n, k, 3, generator=g)}


@pytest.mark.parametrize("k", [0, 3, 15])  # SH degree 0, 1, 3
def test_round_trip(tmp_path, k):
    s = random_splats(k=k)
    export_ply(s, tmp_path / "splat.ply", use_gsplat=False)
    ply = read_ply(tmp_path / "splat.ply")
    assert list(ply)[:6] == ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"]
    np.testing.assert_array_equal(np.stack([ply["x"], ply["y"], ply["z"]], 1), s["means"].numpy())
    np.testing.assert_array_equal(np.stack([ply[f"f_dc_{j}"] for j in range(3)], 1), s["sh0"][:, 0].numpy())
    # f_rest is channel-major (all R coefficients, then G, then B), as in the original 3DGS code
    rest = np.stack([ply[f"f_rest_{j}"] for j in range(3 * k)], 1) if k else np.zeros((25, 0))
    np.testing.assert_array_equal(rest, s["shN"].permute(0, 2, 1).reshape(25, -1).numpy())
    np.testing.assert_array_equal(ply["opacity"], s["opacities"].numpy())
    np.testing.assert_array_equal(np.stack([ply[f"scale_{i}"] for i in range(3)], 1), s["scales"].numpy())
    np.testing.assert_array_equal(np.stack([ply[f"rot_{i}"] for i in range(4)], 1), s["quats"].numpy())


@pytest.mark.parametrize("field, row", [("means", 3), ("opacities", 7), ("shN", 0)])
def test_non_finite_splats_are_dropped(tmp_path, field, row):
    s = random_splats()
    s[field][row] = float("nan")
    export_ply(s, tmp_path / "splat.ply", use_gsplat=False)
    ply = read_ply(tmp_path / "splat.ply")
    assert len(ply["x"]) == 24
    assert not np.isin(ply["x"], s["means"][row].numpy()).any()


def test_same_bytes_as_gsplats_exporter():
    exporter = pytest.importorskip("gsplat.exporter")
    s = random_splats()
    args = (s["means"], s["scales"], s["quats"], s["opacities"], s["sh0"], s["shN"])
    assert splat_to_ply_bytes(*args) == exporter.export_splats(*args, format="ply")


def test_write_is_atomic_and_leaves_no_temporary(tmp_path):
    export_ply(random_splats(), tmp_path / "model" / "splat.ply", use_gsplat=False)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["splat.ply"]


@pytest.mark.parametrize("corrupt, message", [(lambda b: b[:-10], "truncated"), (lambda b: b"xyz" + b, "not a PLY"),
                                              (lambda b: b.replace(b"binary_little_endian", b"ascii_little_endian!"),
                                               "only binary_little_endian")])
def test_reader_rejects_broken_files(tmp_path, corrupt, message):
    path = tmp_path / "splat.ply"
    export_ply(random_splats(), path, use_gsplat=False)
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        read_ply(path)
