"""The synthetic scene generator: a readable COLMAP model whose cameras agree with its images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from splat_trainer.colmap import read_model
from splat_trainer.dataset import load_scene
from splat_trainer.synthetic import generate_scene, main

from .conftest import TINY


def test_model_and_images_match_the_request(tiny_scene_dir):
    model = read_model(tiny_scene_dir / "sparse" / "0")
    assert len(model.images) == TINY["n_images"] and len(model.points3D) == TINY["n_points"]
    (cam,) = model.cameras.values()
    assert (cam.model, cam.width, cam.height) == ("PINHOLE", TINY["width"], TINY["height"])
    for img in model.images.values():
        with PILImage.open(tiny_scene_dir / "images" / img.name) as pil:
            assert pil.size == (TINY["width"], TINY["height"])
    meta = json.loads((tiny_scene_dir / "scene.json").read_text())
    assert meta["images"] == TINY["n_images"] and meta["seed"] == TINY["seed"]


def test_sfm_points_project_onto_pixels_of_their_own_colour(tmp_path):
    """The cameras in the model are the cameras the images were rendered with: each point, projected with
    the pose of the view it was sampled from (the generator samples n_points / n_images per view, in view
    order), lands inside that image on a pixel of the point's colour. A transposed rotation or a wrong axis
    convention fails this: it is what once made training plateau at 16 dB."""
    scene_dir = generate_scene(tmp_path, n_images=4, width=64, height=48, n_points=400, seed=5)
    scene = load_scene(scene_dir, test_every=100)
    errors, inside_count = [], 0
    for i in range(scene.n_images):
        pts, rgb = scene.points[100 * i:100 * (i + 1)], scene.points_rgb[100 * i:100 * (i + 1)]
        p = pts @ scene.viewmats[i, :3, :3].T + scene.viewmats[i, :3, 3]
        uv = p @ scene.Ks[i].T
        uv = uv[:, :2] / uv[:, 2:3]
        inside = (p[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < 64) & (uv[:, 1] >= 0) & (uv[:, 1] < 48)
        inside_count += int(inside.sum())
        px = uv[inside].long()
        pixel = scene.images[i][px[:, 1], px[:, 0]].float() / 255.0
        errors.append((pixel - rgb[inside]).abs().max(dim=-1).values)
    err = torch.cat(errors)
    assert inside_count >= 380
    # texture edges and the 1 cm position noise differ a little; the bulk must agree closely
    assert float(err.median()) < 0.03, float(err.median())


def test_same_seed_same_scene(tmp_path):
    a = generate_scene(tmp_path / "a", n_images=2, width=12, height=9, n_points=50, seed=11)
    b = generate_scene(tmp_path / "b", n_images=2, width=12, height=9, n_points=50, seed=11)
    for name in ("sparse/0/cameras.bin", "sparse/0/images.bin", "sparse/0/points3D.bin", "images/view_0001.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_different_seeds_differ(tmp_path):
    a = generate_scene(tmp_path / "a", n_images=1, width=12, height=9, n_points=20, seed=1)
    b = generate_scene(tmp_path / "b", n_images=1, width=12, height=9, n_points=20, seed=2)
    assert (a / "images/view_0000.png").read_bytes() != (b / "images/view_0000.png").read_bytes()


def test_images_are_textured_not_flat(tiny_scene_dir):
    arr = np.asarray(PILImage.open(tiny_scene_dir / "images" / "view_0000.png"), dtype=np.float32)
    assert arr.std() > 20  # several primitives and textures in view


@pytest.mark.parametrize("argv_extra", [["--supersample", "1"], []])
def test_command_line(tmp_path, capsys, argv_extra):
    assert main([str(tmp_path / "out"), "--images", "2", "--width", "8", "--height", "6", "--points", "30",
                 "--device", "cpu", *argv_extra]) == 0
    assert "wrote 2 views of 8x6 and 30 points" in capsys.readouterr().out
    assert len(read_model(tmp_path / "out" / "sparse" / "0").images) == 2


def test_radial_distortion_is_accepted_with_a_warning(tmp_path, capsys):
    import numpy as np

    from splat_trainer.colmap import Camera, write_model_binary

    scene_dir = generate_scene(tmp_path, n_images=2, width=12, height=9, n_points=20, seed=4)
    model = read_model(scene_dir / "sparse" / "0")
    model.cameras[1] = Camera(1, "SIMPLE_RADIAL", 12, 9, np.array([10.8, 6.0, 4.5, 0.02]))
    write_model_binary(scene_dir / "sparse" / "0", model.cameras, model.images, model.points3D)
    scene = load_scene(scene_dir, test_every=2)
    assert "ignores" in scene.extra["warnings"][0] and "image_undistorter" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["OPENCV_FISHEYE", "FULL_OPENCV"])
def test_fisheye_cameras_are_refused_with_the_fix(tmp_path, model):
    import numpy as np

    from splat_trainer.colmap import CAMERA_MODEL_IDS, Camera, write_model_binary
    from splat_trainer.dataset import DatasetError

    scene_dir = generate_scene(tmp_path, n_images=2, width=12, height=9, n_points=20, seed=4)
    m = read_model(scene_dir / "sparse" / "0")
    m.cameras[1] = Camera(1, model, 12, 9, np.zeros(CAMERA_MODEL_IDS[model][1]))
    write_model_binary(scene_dir / "sparse" / "0", m.cameras, m.images, m.points3D)
    with pytest.raises(DatasetError, match="colmap image_undistorter"):
        load_scene(scene_dir)
