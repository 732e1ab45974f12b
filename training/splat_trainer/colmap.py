"""COLMAP sparse model reader (binary .bin or text .txt) and a binary writer for the synthetic generator.

Formats follow COLMAP's src/colmap/scene/reconstruction_io.cc (read_write_model.py). Every failure raises
ColmapError naming the file, what is wrong and what to do, because a truncated upload of the SfM output is
a common way a training job dies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# model_id -> (name, number of params)
CAMERA_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
}
CAMERA_MODEL_IDS = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}


class ColmapError(ValueError):
    """The COLMAP model cannot be read; the message names the file and the fix."""


@dataclass
class Camera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # float64

    def intrinsics(self) -> tuple[float, float, float, float]:
        """fx, fy, cx, cy. Distortion parameters (if any) are not part of this."""
        p = self.params
        if self.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "FOV"):
            return float(p[0]), float(p[0]), float(p[1]), float(p[2])
        return float(p[0]), float(p[1]), float(p[2]), float(p[3])


@dataclass
class Image:
    id: int
    qvec: np.ndarray  # (4,) w, x, y, z: world-to-camera rotation
    tvec: np.ndarray  # (3,) world-to-camera translation
    camera_id: int
    name: str
    num_points2d: int = 0

    def rotation_matrix(self) -> np.ndarray:
        return qvec_to_rotmat(self.qvec)

    def world_to_camera(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.rotation_matrix()
        m[:3, 3] = self.tvec
        return m


@dataclass
class Points3D:
    ids: np.ndarray  # (N,) int64
    xyz: np.ndarray  # (N, 3) float64
    rgb: np.ndarray  # (N, 3) uint8
    error: np.ndarray  # (N,) float64

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass
class ColmapModel:
    cameras: dict[int, Camera]
    images: dict[int, Image]
    points3D: Points3D
    source: Path | None = field(default=None)
    format: str = "bin"


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = (float(v) for v in q)
    n = (w * w + x * x + y * y + z * z) ** 0.5
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * x * z + 2 * w * y],
            [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
            [2 * x * z - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y],
        ]
    )


def rotmat_to_qvec(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z) with w >= 0 (COLMAP's convention)."""
    m = np.asarray(r, dtype=np.float64)
    k = np.array(
        [
            [m[0, 0] - m[1, 1] - m[2, 2], 0, 0, 0],
            [m[1, 0] + m[0, 1], m[1, 1] - m[0, 0] - m[2, 2], 0, 0],
            [m[2, 0] + m[0, 2], m[2, 1] + m[1, 2], m[2, 2] - m[0, 0] - m[1, 1], 0],
            [m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], m[0, 0] + m[1, 1] + m[2, 2]],
        ]
    ) / 3.0
    eigvals, eigvecs = np.linalg.eigh(k)
    q = eigvecs[[3, 0, 1, 2], np.argmax(eigvals)]
    return -q if q[0] < 0 else q


# ---------------------------------------------------------------- reading


class _Reader:
    """Bounds-checked reader over a whole binary file, so truncation is reported, not mis-parsed."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise ColmapError(f"cannot read {path}: {exc.strerror}; check the file exists and is readable") from exc
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ColmapError(
                f"{self.path} is truncated: needed {n} more bytes for {what} at offset {self.pos} of "
                f"{len(self.data)}; re-export the model (colmap model_converter) or re-upload it completely"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def cstring(self, what: str) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ColmapError(f"{self.path} is truncated inside {what}: re-export or re-upload the model")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ColmapError(f"{self.path}: {what} is not UTF-8 ({raw[:40]!r}); the file is corrupt") from exc

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise ColmapError(
                f"{self.path} has {len(self.data) - self.pos} unexpected trailing bytes; it is corrupt or not a "
                "COLMAP binary file"
            )


def read_cameras_binary(path: Path) -> dict[int, Camera]:
    r = _Reader(path)
    (count,) = r.unpack("Q", "the camera count")
    cameras: dict[int, Camera] = {}
    for i in range(count):
        cam_id, model_id, width, height = r.unpack("iiQQ", f"camera #{i}")
        if model_id not in CAMERA_MODELS:
            raise ColmapError(f"{path}: camera {cam_id} has unknown model id {model_id}; the file is corrupt")
        name, n_params = CAMERA_MODELS[model_id]
        params = np.array(r.unpack("d" * n_params, f"camera {cam_id} params"), dtype=np.float64)
        cameras[cam_id] = Camera(cam_id, name, int(width), int(height), params)
    r.expect_end()
    return cameras


def read_images_binary(path: Path) -> dict[int, Image]:
    r = _Reader(path)
    (count,) = r.unpack("Q", "the image count")
    images: dict[int, Image] = {}
    for i in range(count):
        vals = r.unpack("idddddddi", f"image #{i}")
        image_id, qvec, tvec, camera_id = vals[0], np.array(vals[1:5]), np.array(vals[5:8]), vals[8]
        name = r.cstring(f"the name of image {image_id}")
        (n_pts,) = r.unpack("Q", f"the 2D point count of image {image_id}")
        r.take(24 * n_pts, f"the 2D points of image {image_id}")  # x, y (double), point3D_id (int64)
        images[image_id] = Image(image_id, qvec, tvec, camera_id, name, int(n_pts))
    r.expect_end()
    return images


def read_points3d_binary(path: Path) -> Points3D:
    r = _Reader(path)
    (count,) = r.unpack("Q", "the point count")
    ids = np.empty(count, np.int64)
    xyz = np.empty((count, 3), np.float64)
    rgb = np.empty((count, 3), np.uint8)
    err = np.empty(count, np.float64)
    for i in range(count):
        vals = r.unpack("QdddBBBd", f"point #{i}")
        ids[i], xyz[i], rgb[i], err[i] = vals[0], vals[1:4], vals[4:7], vals[7]
        (track_len,) = r.unpack("Q", f"the track length of point {vals[0]}")
        r.take(8 * track_len, f"the track of point {vals[0]}")  # (image_id int32, point2D_idx int32)
    r.expect_end()
    return Points3D(ids, xyz, rgb, err)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ColmapError(f"cannot read {path}: {exc.strerror}; check the file exists and is readable") from exc
    except UnicodeDecodeError as exc:
        raise ColmapError(f"{path} is not UTF-8 text; is it a binary model misnamed .txt?") from exc


def _text_lines(path: Path) -> list[str]:
    text = _read_text(path)
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def read_cameras_text(path: Path) -> dict[int, Camera]:
    cameras: dict[int, Camera] = {}
    for lineno, line in enumerate(_text_lines(path), 1):
        parts = line.split()
        try:
            cam_id, model, width, height = int(parts[0]), parts[1], int(parts[2]), int(parts[3])
            if model not in CAMERA_MODEL_IDS:
                raise ColmapError(f"{path}: camera {cam_id} has unknown model {model!r}")
            n_params = CAMERA_MODEL_IDS[model][1]
            params = np.array([float(v) for v in parts[4:]], dtype=np.float64)
            if len(params) != n_params:
                raise ColmapError(f"{path}: camera {cam_id} ({model}) has {len(params)} params, expected {n_params}")
        except (IndexError, ValueError) as exc:
            if isinstance(exc, ColmapError):
                raise
            raise ColmapError(f"{path}: data line {lineno} is malformed ({line[:80]!r}): {exc}") from exc
        cameras[cam_id] = Camera(cam_id, model, width, height, params)
    return cameras


def read_images_text(path: Path) -> dict[int, Image]:
    lines = _text_lines_keep_empty_points(path)
    images: dict[int, Image] = {}
    for k in range(0, len(lines), 2):
        line = lines[k]
        parts = line.split()
        try:
            image_id = int(parts[0])
            qvec = np.array([float(v) for v in parts[1:5]])
            tvec = np.array([float(v) for v in parts[5:8]])
            camera_id = int(parts[8])
            name = " ".join(parts[9:])
            if not name:
                raise ValueError("missing image name")
        except (IndexError, ValueError) as exc:
            raise ColmapError(f"{path}: image line {line[:80]!r} is malformed: {exc}") from exc
        n_pts = len(lines[k + 1].split()) // 3 if k + 1 < len(lines) else 0
        images[image_id] = Image(image_id, qvec, tvec, camera_id, name, n_pts)
    return images


def _text_lines_keep_empty_points(path: Path) -> list[str]:
    # images.txt has two lines per image and the second (2D points) may be empty: keep empty lines there.
    text = _read_text(path)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_points3d_text(path: Path) -> Points3D:
    rows = []
    for lineno, line in enumerate(_text_lines(path), 1):
        parts = line.split()
        try:
            rows.append((int(parts[0]), *map(float, parts[1:4]), *map(int, parts[4:7]), float(parts[7])))
        except (IndexError, ValueError) as exc:
            raise ColmapError(f"{path}: data line {lineno} is malformed ({line[:80]!r}): {exc}") from exc
    arr = np.array(rows, dtype=np.float64).reshape(-1, 8)
    return Points3D(arr[:, 0].astype(np.int64), arr[:, 1:4], arr[:, 4:7].astype(np.uint8), arr[:, 7])


def detect_model_format(sparse_dir: Path) -> str | None:
    """'bin' or 'txt' if a complete model of that format is in sparse_dir, else None."""
    for ext in ("bin", "txt"):
        if all((sparse_dir / f"{n}.{ext}").is_file() for n in ("cameras", "images", "points3D")):
            return ext
    return None


def read_model(sparse_dir: str | Path) -> ColmapModel:
    """Read cameras/images/points3D (.bin preferred over .txt) from sparse_dir and check consistency."""
    sparse_dir = Path(sparse_dir)
    fmt = detect_model_format(sparse_dir)
    if fmt is None:
        present = sorted(p.name for p in sparse_dir.iterdir()) if sparse_dir.is_dir() else []
        raise ColmapError(
            f"no complete COLMAP model in {sparse_dir}: need cameras, images and points3D as .bin or .txt, "
            f"found {present[:10] or 'nothing'}; upload the SfM output's sparse/0 folder"
        )
    if fmt == "bin":
        cameras = read_cameras_binary(sparse_dir / "cameras.bin")
        images = read_images_binary(sparse_dir / "images.bin")
        points = read_points3d_binary(sparse_dir / "points3D.bin")
    else:
        cameras = read_cameras_text(sparse_dir / "cameras.txt")
        images = read_images_text(sparse_dir / "images.txt")
        points = read_points3d_text(sparse_dir / "points3D.txt")
    for img in images.values():
        if img.camera_id not in cameras:
            raise ColmapError(
                f"{sparse_dir}: image {img.name!r} refers to camera {img.camera_id}, which is not in cameras.{fmt}; "
                "the model files come from different reconstructions"
            )
    return ColmapModel(cameras, images, points, source=sparse_dir, format=fmt)


# ---------------------------------------------------------------- writing


def write_model_binary(
    sparse_dir: str | Path, cameras: dict[int, Camera], images: dict[int, Image], points: Points3D
) -> None:
    """Write a COLMAP binary model (no 2D points or tracks: the trainer does not use them)."""
    sparse_dir = Path(sparse_dir)
    sparse_dir.mkdir(parents=True, exist_ok=True)
    with open(sparse_dir / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", len(cameras)))
        for cam in cameras.values():
            mid, n_params = CAMERA_MODEL_IDS[cam.model]
            if len(cam.params) != n_params:
                raise ValueError(f"camera {cam.id} ({cam.model}) needs {n_params} params, got {len(cam.params)}")
            f.write(struct.pack("<iiQQ", cam.id, mid, cam.width, cam.height))
            f.write(struct.pack("<" + "d" * n_params, *cam.params))
    with open(sparse_dir / "images.bin", "wb") as f:
        f.write(struct.pack("<Q", len(images)))
        for img in images.values():
            f.write(struct.pack("<idddddddi", img.id, *img.qvec, *img.tvec, img.camera_id))
            f.write(img.name.encode("utf-8") + b"\x00")
            f.write(struct.pack("<Q", 0))
    with open(sparse_dir / "points3D.bin", "wb") as f:
        f.write(struct.pack("<Q", len(points)))
        for i in range(len(points)):
            f.write(
                struct.pack("<QdddBBBd", int(points.ids[i]), *points.xyz[i], *(int(c) for c in points.rgb[i]), float(points.error[i]))
            )
            f.write(struct.pack("<Q", 0))


def write_model_text(
    sparse_dir: str | Path, cameras: dict[int, Camera], images: dict[int, Image], points: Points3D
) -> None:
    """Write the same model as COLMAP text (used to test the text reader against the binary one)."""
    sparse_dir = Path(sparse_dir)
    sparse_dir.mkdir(parents=True, exist_ok=True)
    with open(sparse_dir / "cameras.txt", "w") as f:
        f.write("# Camera list with one line of data per camera\n")
        for cam in cameras.values():
            f.write(f"{cam.id} {cam.model} {cam.width} {cam.height} " + " ".join(repr(float(p)) for p in cam.params) + "\n")
    with open(sparse_dir / "images.txt", "w") as f:
        f.write("# Image list with two lines of data per image\n")
        for img in images.values():
            vals = " ".join(repr(float(v)) for v in (*img.qvec, *img.tvec))
            f.write(f"{img.id} {vals} {img.camera_id} {img.name}\n\n")
    with open(sparse_dir / "points3D.txt", "w") as f:
        f.write("# 3D point list with one line of data per point\n")
        for i in range(len(points)):
            x, y, z = (repr(float(v)) for v in points.xyz[i])
            r, g, b = (int(c) for c in points.rgb[i])
            f.write(f"{int(points.ids[i])} {x} {y} {z} {r} {g} {b} {float(points.error[i])!r}\n")
