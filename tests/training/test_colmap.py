"""COLMAP model reading (binary and text), writing, and the errors for broken files."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from splat_trainer.colmap import (
    Camera, ColmapError, Image, Points3D, qvec_to_rotmat, read_model, rotmat_to_qvec, write_model_binary,
    write_model_text,
)


def small_model():
    cameras = {1: Camera(1, "PINHOLE", 64, 48, np.array([50.0, 51.0, 32.0, 24.0])),
               2: Camera(2, "SIMPLE_RADIAL", 80, 60, np.array([70.0, 40.0, 30.0, 0.01]))}
    images = {
        3: Image(3, rotmat_to_qvec(rot_z(0.3)), np.array([0.1, -0.2, 3.0]), 1, "a.png"),
        7: Image(7, rotmat_to_qvec(rot_z(-1.1)), np.array([1.0, 0.5, 2.0]), 2, "sub dir/b.jpg"),
    }
    points = Points3D(np.array([1, 5, 9]), np.array([[0.0, 0.1, 0.2], [1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]),
                      np.array([[255, 0, 0], [0, 128, 0], [1, 2, 3]], dtype=np.uint8), np.array([0.5, 0.25, 1.0]))
    return cameras, images, points


def rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rot_x(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def assert_same_model(model, cameras, images, points):
    assert sorted(model.cameras) == sorted(cameras)
    for cid, cam in cameras.items():
        got = model.cameras[cid]
        assert (got.model, got.width, got.height) == (cam.model, cam.width, cam.height)
        np.testing.assert_allclose(got.params, cam.params)
    assert sorted(model.images) == sorted(images)
    for iid, img in images.items():
        got = model.images[iid]
        assert (got.name, got.camera_id) == (img.name, img.camera_id)
        np.testing.assert_allclose(got.qvec, img.qvec)
        np.testing.assert_allclose(got.tvec, img.tvec)
    np.testing.assert_array_equal(model.points3D.ids, points.ids)
    np.testing.assert_allclose(model.points3D.xyz, points.xyz)
    np.testing.assert_array_equal(model.points3D.rgb, points.rgb)


@pytest.mark.parametrize("writer, fmt", [(write_model_binary, "bin"), (write_model_text, "txt")])
def test_round_trip(tmp_path, writer, fmt):
    cameras, images, points = small_model()
    writer(tmp_path, cameras, images, points)
    model = read_model(tmp_path)
    assert model.format == fmt
    assert_same_model(model, cameras, images, points)


@pytest.mark.parametrize("rotation", [np.eye(3), rot_z(0.7), rot_x(2.5), rot_z(-2.0) @ rot_x(1.2),
                                      rot_x(math.pi) @ rot_z(0.1)])
def test_quaternion_conversion_is_the_inverse_of_colmaps(rotation):
    q = rotmat_to_qvec(rotation)
    assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
    np.testing.assert_allclose(qvec_to_rotmat(q), rotation, atol=1e-12)


def test_known_quaternion_matches_colmap_convention():
    # 90 degrees about z: COLMAP's (w, x, y, z) = (cos 45, 0, 0, sin 45) rotates x onto y
    q = np.array([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)])
    np.testing.assert_allclose(qvec_to_rotmat(q) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_binary_preferred_when_both_formats_exist(tmp_path):
    cameras, images, points = small_model()
    write_model_text(tmp_path, cameras, images, points)
    write_model_binary(tmp_path, cameras, images, points)
    assert read_model(tmp_path).format == "bin"


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
@pytest.mark.parametrize("keep_fraction", [0.0, 0.3, 0.9])
def test_truncated_binary_file_is_reported_with_its_name(tmp_path, name, keep_fraction):
    cameras, images, points = small_model()
    write_model_binary(tmp_path, cameras, images, points)
    path = tmp_path / name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(ColmapError) as info:
        read_model(tmp_path)
    assert name in str(info.value) and "truncated" in str(info.value)
    assert "re-upload" in str(info.value) or "re-export" in str(info.value)


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
def test_trailing_garbage_is_reported(tmp_path, name):
    write_model_binary(tmp_path, *small_model())
    with open(tmp_path / name, "ab") as f:
        f.write(b"\x01\x02\x03")
    with pytest.raises(ColmapError, match=f"{name}.*trailing bytes"):
        read_model(tmp_path)


@pytest.mark.parametrize("missing", ["cameras.bin", "images.bin", "points3D.bin"])
def test_incomplete_model_lists_what_was_found(tmp_path, missing):
    write_model_binary(tmp_path, *small_model())
    (tmp_path / missing).unlink()
    with pytest.raises(ColmapError) as info:
        read_model(tmp_path)
    assert "no complete COLMAP model" in str(info.value) and "sparse/0" in str(info.value)


def test_image_referring_to_an_unknown_camera(tmp_path):
    cameras, images, points = small_model()
    del cameras[2]
    write_model_binary(tmp_path, cameras, images, points)
    with pytest.raises(ColmapError, match="'sub dir/b.jpg' refers to camera 2"):
        read_model(tmp_path)


def test_unknown_camera_model_id(tmp_path):
    cameras, images, points = small_model()
    write_model_binary(tmp_path, cameras, images, points)
    data = bytearray((tmp_path / "cameras.bin").read_bytes())
    data[8 + 4 : 8 + 8] = (99).to_bytes(4, "little")  # model id of the first camera
    (tmp_path / "cameras.bin").write_bytes(bytes(data))
    with pytest.raises(ColmapError, match="unknown model id 99"):
        read_model(tmp_path)


@pytest.mark.parametrize(
    "name, bad_line, fragment",
    [
        ("cameras.txt", "1 PINHOLE 64 48 50.0 51.0\n", "has 2 params, expected 4"),
        ("cameras.txt", "1 NOT_A_MODEL 64 48 1 2 3\n", "unknown model 'NOT_A_MODEL'"),
        ("points3D.txt", "1 0.0 zero 0.2 255 0 0 0.5\n", "data line 1 is malformed"),
        ("images.txt", "3 1 0 0\n\n", "is malformed"),
    ],
)
def test_malformed_text_line(tmp_path, name, bad_line, fragment):
    write_model_text(tmp_path, *small_model())
    (tmp_path / name).write_text(bad_line)
    with pytest.raises(ColmapError) as info:
        read_model(tmp_path)
    assert name in str(info.value) and fragment in str(info.value)


def test_binary_file_misnamed_as_text(tmp_path):
    bin_dir, txt_dir = tmp_path / "bin", tmp_path / "txt"
    write_model_binary(bin_dir, *small_model())
    write_model_text(txt_dir, *small_model())
    shutil.copy(bin_dir / "points3D.bin", txt_dir / "points3D.txt")
    with pytest.raises(ColmapError, match="points3D.txt"):
        read_model(txt_dir)
