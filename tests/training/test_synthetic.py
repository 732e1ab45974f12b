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


# ---------------------------------------------------------------- outdoor style and foliage

@pytest.mark.parametrize("foliage, close", [(0, 0.0), (12, 0.0), (0, 0.5)])
def test_outdoor_sfm_points_project_onto_pixels_of_their_own_colour(tmp_path, foliage, close):
    """The camera check above, for the outdoor style with and without leafy crowns (whose leaves are glossy:
    a point's colour is the one its own view saw), and with half the views on the close pass."""
    w, h, per_view = 160, 120, 100
    scene_dir = generate_scene(tmp_path, n_images=4, width=w, height=h, n_points=4 * per_view, seed=3,
                               style="outdoor", foliage=foliage, close=close)
    scene = load_scene(scene_dir, test_every=100)
    errors = []
    for i in range(scene.n_images):
        pts, rgb = scene.points[per_view * i:per_view * (i + 1)], scene.points_rgb[per_view * i:per_view * (i + 1)]
        p = pts @ scene.viewmats[i, :3, :3].T + scene.viewmats[i, :3, 3]
        uv = p @ scene.Ks[i].T
        uv = uv[:, :2] / uv[:, 2:3]
        inside = (p[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        px = uv[inside].long()
        pixel = scene.images[i][px[:, 1], px[:, 0]].float() / 255.0
        errors.append((pixel - rgb[inside]).abs().max(dim=-1).values)
    err = torch.cat(errors)
    assert len(err) >= 0.95 * 4 * per_view
    # fine noise textures and leaf edges differ within a pixel; the bulk must agree
    assert float(err.median()) < 0.06, float(err.median())


def test_foliage_adds_crowns_and_trunks_and_leaves_the_rest_of_the_scene_unchanged():
    from splat_trainer.synthetic import make_outdoor

    bare, leafy = make_outdoor(7, foliage=0), make_outdoor(7, foliage=10)
    assert bare.foliage is None and leafy.foliage.centre.shape == (10, 3)
    n_boxes = bare.prim.box_min.shape[0]
    assert torch.equal(leafy.prim.box_min[:n_boxes], bare.prim.box_min)
    assert torch.equal(leafy.prim.sphere_c, bare.prim.sphere_c)
    trunks = leafy.prim.box_max[n_boxes:]
    assert trunks.shape[0] == 10 - 2  # two bushes (a fifth) have no trunk
    assert torch.allclose(trunks[:, 2], leafy.foliage.centre[2:, 2])  # each trunk reaches its crown's centre


def test_a_crown_has_gaps_through_which_inner_shells_and_the_background_are_seen():
    from splat_trainer.synthetic import LEAF_KIND, LEAF_SHELLS, Foliage, _foliage_hits

    fol = Foliage(centre=torch.tensor([[0.0, 0.0, 0.0]]), radius=torch.tensor([1.0]),
                  colour=torch.full((1, 2, 3), 0.3))
    g = torch.Generator().manual_seed(0)
    n = 4000
    # parallel rays towards the crown from x = -5, spread over its disc
    yz = (torch.rand(n, 2, generator=g) - 0.5) * 1.2
    origins = torch.stack([torch.full((n,), -5.0), yz[:, 0], yz[:, 1]], -1)
    dirs = torch.tensor([[1.0, 0.0, 0.0]]).expand(n, 3)
    best_t = torch.full((n,), 100.0)
    kind, index = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    _foliage_hits(origins, dirs, fol, best_t, kind, index)
    from splat_trainer.synthetic import LEAF_CORE

    r = yz.norm(dim=-1)
    assert bool((kind[r < LEAF_CORE * 0.99] == LEAF_KIND).all())  # a ray aimed at the dark core never passes
    through = (kind == 0) & (best_t == 100.0)
    assert float(through[r > LEAF_SHELLS[1]].float().mean()) > 0.05  # the background shows through the rim
    entry = 5.0 - torch.sqrt((1.0 - yz.pow(2).sum(-1)).clamp_min(0))
    on_outer = (best_t - entry).abs() < 1e-3
    frac_outer = float(on_outer.float().mean())
    assert 0.25 < frac_outer < 0.7, frac_outer  # the outer shell is part leaf, part gap
    depth = (origins + dirs * best_t[:, None]).norm(dim=-1)
    assert float((depth < LEAF_SHELLS[1] + 1e-3).float().mean()) > 0.1  # rays reach the inner shells
    # a ray that misses the crown is left alone
    far = torch.tensor([[-5.0, 3.0, 0.0]])
    t, k, i = torch.tensor([100.0]), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)
    _foliage_hits(far, dirs[:1], fol, t, k, i)
    assert float(t) == 100.0 and int(k) == 0


def test_foliage_is_deterministic_and_outdoor_only(tmp_path):
    a = generate_scene(tmp_path / "a", n_images=2, width=24, height=18, n_points=40, seed=2, style="outdoor", foliage=6)
    b = generate_scene(tmp_path / "b", n_images=2, width=24, height=18, n_points=40, seed=2, style="outdoor", foliage=6)
    for name in ("sparse/0/points3D.bin", "images/view_0001.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert json.loads((a / "scene.json").read_text())["foliage"] == 6
    with pytest.raises(ValueError, match="foliage=3: .*style outdoor only"):
        generate_scene(tmp_path / "c", n_images=1, width=8, height=6, n_points=10, foliage=3)


def _poses(scene_dir):
    model = read_model(scene_dir / "sparse" / "0")
    return {img.name: img for img in model.images.values()}


def test_pose_error_moves_the_recorded_poses_not_the_images(tmp_path):
    """SfM never recovers the exact pose: the model records a perturbed one, the image stays what the true
    camera saw."""
    clean = generate_scene(tmp_path / "clean", n_images=12, width=24, height=18, n_points=60, seed=3)
    noisy = generate_scene(tmp_path / "noisy", n_images=12, width=24, height=18, n_points=60, seed=3,
                           pose_deg=0.2, pose_shift=0.01)
    exact, recorded = _poses(clean), _poses(noisy)
    angles, shifts = [], []
    for name, image in exact.items():
        assert (clean / "images" / name).read_bytes() == (noisy / "images" / name).read_bytes()
        r_true, r_rec = image.rotation_matrix(), recorded[name].rotation_matrix()
        cos = (np.trace(r_rec @ r_true.T) - 1) / 2
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
        shifts.append(np.linalg.norm(recorded[name].tvec - r_rec @ r_true.T @ image.tvec))
    # |N(0, 0.2 deg)| has a mean of 0.16 deg; a rotation left out, or one in radians, misses this band
    assert 0.05 < float(np.mean(angles)) < 0.4, angles
    assert 0.005 < float(np.mean(shifts)) < 0.04, shifts
    assert json.loads((noisy / "scene.json").read_text())["pose_deg"] == 0.2


def test_exposure_jitter_changes_each_views_brightness_and_colour_not_its_pose(tmp_path):
    clean = generate_scene(tmp_path / "clean", n_images=8, width=24, height=18, n_points=40, seed=4)
    exposed = generate_scene(tmp_path / "exposed", n_images=8, width=24, height=18, n_points=40, seed=4,
                             exposure=0.1)
    assert (clean / "sparse/0/images.bin").read_bytes() == (exposed / "sparse/0/images.bin").read_bytes()
    ratios = []
    for name in _poses(clean):
        a = np.asarray(PILImage.open(clean / "images" / name), dtype=np.float64)
        b = np.asarray(PILImage.open(exposed / "images" / name), dtype=np.float64)
        unclipped = (a > 10) & (a < 200)
        ratios.append([float(np.median(b[..., c][unclipped[..., c]] / a[..., c][unclipped[..., c]])) for c in range(3)])
    ratios = np.array(ratios)
    assert 0.03 < float(np.std(np.log(ratios[:, 0]))) < 0.3  # views differ in exposure
    assert float(np.abs(ratios[:, 0] - ratios[:, 2]).max()) > 0.005  # and in white balance


def test_capture_imperfections_are_standard_deviations(tmp_path):
    with pytest.raises(ValueError, match=">= 0"):
        generate_scene(tmp_path, n_images=2, width=8, height=6, n_points=10, exposure=-0.1)


def test_the_close_pass_puts_that_share_of_the_views_nearer_the_subject_and_outside_every_object():
    from splat_trainer.synthetic import make_outdoor, outdoor_camera_poses

    assert all(np.array_equal(a, b) for a, b in zip(outdoor_camera_poses(40, 0), outdoor_camera_poses(40, 0, 0.0)))
    poses = outdoor_camera_poses(40, 0, close=0.25)
    eyes = np.stack([-p[:3, :3].T @ p[:3, 3] for p in poses])
    ring = np.linalg.norm(eyes[:, :2], axis=1)
    assert len(poses) == 40 and bool((ring[30:] < 3.0).all()) and bool((ring[:30] > 3.4).all())
    prim = make_outdoor(0).prim
    to_spheres = np.linalg.norm(eyes[:, None] - prim.sphere_c.numpy()[None], axis=-1) - prim.sphere_r.numpy()[None]
    outside = np.maximum(prim.box_min.numpy()[None] - eyes[:, None], eyes[:, None] - prim.box_max.numpy()[None])
    assert float(to_spheres.min()) > 0.3 and bool((outside.max(-1) > 0.3).all())  # no camera inside or touching
    # the close views are 2-4x nearer the central cluster's surfaces than the outer ones
    cluster = np.linalg.norm(prim.sphere_c.numpy()[:, :2], axis=1) < 2.0
    nearest = to_spheres[:, cluster].min(axis=1)
    assert 1.8 < float(np.median(nearest[:30]) / np.median(nearest[30:])) < 5.0


def test_close_pass_is_recorded_and_refused_outside_its_range(tmp_path):
    scene = generate_scene(tmp_path / "a", n_images=4, width=24, height=18, n_points=40, seed=2, style="outdoor",
                           close=0.5)
    assert json.loads((scene / "scene.json").read_text())["close"] == 0.5
    for bad, style in [(1.0, "outdoor"), (-0.1, "outdoor"), (0.25, "room")]:
        with pytest.raises(ValueError, match="close=.*fraction of views on the close pass"):
            generate_scene(tmp_path / "b", n_images=4, width=8, height=6, n_points=10, style=style, close=bad)
