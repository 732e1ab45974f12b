"""The `training` channel: find the COLMAP model and images, load a Scene, split train/test views.

Accepted layouts (the usual SfM outputs), searched in this order:
  <channel>/sparse/0/{cameras,images,points3D}.{bin,txt}
  <channel>/sparse/{...}
  <channel>/{...}
and images in <channel>/images (or <channel>/images_<data_factor> when data_factor > 1 and it exists).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .colmap import ColmapModel, detect_model_format, read_model

SPARSE_CANDIDATES = ("sparse/0", "sparse", ".")
IMAGE_DIR_NAME = "images"


class DatasetError(ValueError):
    """The channel's layout or content is wrong; the message says what is missing and how to fix it."""


def find_sparse_dir(channel_dir: str | Path) -> Path:
    channel_dir = Path(channel_dir)
    if not channel_dir.is_dir():
        raise DatasetError(f"input channel {channel_dir} does not exist: pass the SfM output as the 'training' channel")
    for rel in SPARSE_CANDIDATES:
        candidate = (channel_dir / rel).resolve() if rel != "." else channel_dir
        if candidate.is_dir() and detect_model_format(candidate) is not None:
            return candidate
    searched = ", ".join(str(channel_dir / r) for r in SPARSE_CANDIDATES)
    raise DatasetError(
        f"no COLMAP model (cameras, images, points3D as .bin or .txt) in {searched}; "
        "upload the SfM output with its sparse/0 folder"
    )


def find_images_dir(channel_dir: str | Path, data_factor: int = 1) -> Path:
    channel_dir = Path(channel_dir)
    if data_factor > 1 and (channel_dir / f"{IMAGE_DIR_NAME}_{data_factor}").is_dir():
        return channel_dir / f"{IMAGE_DIR_NAME}_{data_factor}"
    if (channel_dir / IMAGE_DIR_NAME).is_dir():
        return channel_dir / IMAGE_DIR_NAME
    raise DatasetError(f"no {IMAGE_DIR_NAME}/ folder in {channel_dir}: upload the images next to sparse/")


def missing_images(model: ColmapModel, images_dir: str | Path) -> list[str]:
    """Names of the images the model references that are not files in images_dir (sorted)."""
    images_dir = Path(images_dir)
    return sorted(img.name for img in model.images.values() if not (images_dir / img.name).is_file())


def test_indices(n_images: int, test_every: int) -> list[int]:
    """simple_trainer's split: every test_every-th image (in name order) is held out."""
    return [i for i in range(n_images) if i % test_every == 0]


@dataclass
class SceneStats:
    n_images: int
    width: int
    height: int
    n_points: int


def scene_stats(model: ColmapModel, data_factor: int = 1) -> SceneStats:
    """Sizes the memory estimate needs, from the model alone (no image decoding)."""
    widths = [model.cameras[i.camera_id].width // data_factor for i in model.images.values()]
    heights = [model.cameras[i.camera_id].height // data_factor for i in model.images.values()]
    return SceneStats(len(model.images), max(widths, default=0), max(heights, default=0), len(model.points3D))


@dataclass
class Scene:
    names: list[str]
    images: list[torch.Tensor]  # uint8 [H, W, 3] each
    viewmats: torch.Tensor  # [N, 4, 4] world-to-camera, float32
    Ks: torch.Tensor  # [N, 3, 3] float32
    points: torch.Tensor  # [P, 3] float32
    points_rgb: torch.Tensor  # [P, 3] float32 in [0, 1]
    train_ids: list[int]
    test_ids: list[int]
    scene_scale: float
    extra: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.names)

    def to(self, device: torch.device | str, images: bool = True) -> "Scene":
        """Move cameras and points to device; images too unless images=False (then they are pinned in host
        memory on a CUDA machine, for asynchronous copies)."""
        if images:
            self.images = [im.to(device) for im in self.images]
        elif torch.device(device).type == "cuda":
            self.images = [im.pin_memory() for im in self.images]
        self.viewmats, self.Ks = self.viewmats.to(device), self.Ks.to(device)
        self.points, self.points_rgb = self.points.to(device), self.points_rgb.to(device)
        return self


# Radial/OpenCV distortion is small for most lenses: accepted with a warning (simple_trainer undistorts).
DISTORTED_BUT_ACCEPTED = {"SIMPLE_RADIAL", "RADIAL", "OPENCV"}
UNSUPPORTED_DISTORTION = {"OPENCV_FISHEYE", "FULL_OPENCV", "FOV", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "THIN_PRISM_FISHEYE"}


def load_scene(channel_dir: str | Path, data_factor: int = 1, test_every: int = 8,
               model: ColmapModel | None = None) -> Scene:
    """Read the model (unless preflight already did: `model`) and decode every image (downscaled by
    data_factor) into a Scene on the CPU."""
    from PIL import Image as PILImage

    sparse = find_sparse_dir(channel_dir)
    model = model if model is not None else read_model(sparse)
    if len(model.images) == 0:
        raise DatasetError(f"the COLMAP model in {sparse} has no registered images; SfM failed to register any view")
    if len(model.points3D) == 0:
        raise DatasetError(f"the COLMAP model in {sparse} has no 3D points; the Gaussians are initialised from them")
    images_dir = find_images_dir(channel_dir, data_factor)
    missing = missing_images(model, images_dir)
    if missing:
        raise DatasetError(f"{len(missing)} images referenced by the model are missing in {images_dir}: {missing[:5]}")

    ordered = sorted(model.images.values(), key=lambda im: im.name)
    for cam in model.cameras.values():
        if cam.model in UNSUPPORTED_DISTORTION:
            raise DatasetError(
                f"camera {cam.id} uses the {cam.model} model, which this trainer does not undistort; "
                "run `colmap image_undistorter` and upload its output (PINHOLE cameras)"
            )

    def decode(img) -> tuple[str, np.ndarray]:
        cam = model.cameras[img.camera_id]
        with PILImage.open(images_dir / img.name) as pil:
            pil = pil.convert("RGB")
            target = (max(1, round(cam.width / data_factor)), max(1, round(cam.height / data_factor)))
            if pil.size != target:
                pil = pil.resize(target, PILImage.Resampling.BICUBIC)
            return img.name, np.asarray(pil, dtype=np.uint8).copy()

    # PIL releases the GIL while decoding: threads make loading thousands of photos several times faster
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        decoded = dict(pool.map(decode, ordered))
    names, images, viewmats, Ks = [], [], [], []
    extra_warnings: dict[int, str] = {}
    for img in ordered:
        cam = model.cameras[img.camera_id]
        coeffs = cam.params[4:] if cam.model == "OPENCV" else cam.params[3:]
        if cam.model in DISTORTED_BUT_ACCEPTED and cam.id not in extra_warnings and np.any(np.abs(coeffs) > 1e-6):
            extra_warnings[cam.id] = (f"camera {cam.id} ({cam.model}) has distortion {coeffs.round(5).tolist()} "
                                      "that the trainer ignores; undistort with `colmap image_undistorter` "
                                      "for full quality")
            print(f"warning: {extra_warnings[cam.id]}", flush=True)
        fx, fy, cx, cy = cam.intrinsics()
        arr = decoded[img.name]
        sx, sy = arr.shape[1] / cam.width, arr.shape[0] / cam.height
        Ks.append([[fx * sx, 0, cx * sx], [0, fy * sy, cy * sy], [0, 0, 1]])
        viewmats.append(img.world_to_camera())
        images.append(torch.from_numpy(arr))
        names.append(img.name)

    viewmats_t = torch.tensor(np.array(viewmats), dtype=torch.float32)
    cam_centers = torch.linalg.inv(viewmats_t)[:, :3, 3]
    # simple_trainer: scene scale = max camera distance from the cameras' centroid, times 1.1
    scene_scale = float((cam_centers - cam_centers.mean(0)).norm(dim=-1).max()) * 1.1
    test = test_indices(len(names), test_every)
    test_set = set(test)
    train = [i for i in range(len(names)) if i not in test_set] or list(range(len(names)))
    return Scene(
        names=names,
        images=images,
        viewmats=viewmats_t,
        Ks=torch.tensor(np.array(Ks), dtype=torch.float32),
        points=torch.from_numpy(model.points3D.xyz.astype(np.float32)),
        points_rgb=torch.from_numpy(model.points3D.rgb.astype(np.float32) / 255.0),
        train_ids=train,
        test_ids=test,
        scene_scale=max(scene_scale, 1e-6),
        extra={"warnings": list(extra_warnings.values())},
    )
