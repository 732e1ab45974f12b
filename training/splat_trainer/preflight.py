"""Checks run before training, each ending a bad job at once with a classified failure.

The incident this image was built after: a job that ran for minutes and failed with no
output. Everything that can be known before the first step is checked here, in the order
a person would debug it (the GPU, then the data, then the room to write results), and
the first failed check becomes the job's failure line.

Facts about the machine (GPU, compute capability, compiled architectures, driver, memory)
are gathered once by ``probe_platform()`` into a ``PlatformFacts``; the checks read only
that object, so CPU tests give them any GPU by building one from data.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splat_trainer.failure import (
    COLMAP_CAMERA_UNSUPPORTED,
    COLMAP_MODEL_EMPTY,
    COLMAP_MODEL_MISSING,
    COLMAP_MODEL_UNREADABLE,
    DISK_FULL,
    DRIVER_TOO_OLD,
    GPU_MEMORY_BUDGET_EXCEEDED,
    GPU_NOT_VISIBLE,
    GSPLAT_KERNELS_UNAVAILABLE,
    IMAGE_MISSING,
    IMAGE_UNREADABLE,
    IMPORT_FAILED,
    INPUT_CHANNEL_MISSING,
    NO_KERNEL_IMAGE,
    OUTPUT_NOT_WRITABLE,
    TORCH_WITHOUT_CUDA,
    TrainingFailure,
)
from splat_trainer.paths import SageMakerPaths

if TYPE_CHECKING:
    from splat_trainer.colmap import ColmapModel
    from splat_trainer.config import TrainConfig

GIB = 1024**3
# Where the Dockerfile records the architectures compiled into gsplat's extension.
COMPILED_ARCHS_FILE_ENV = "GSPLAT_COMPILED_ARCHS_FILE"
# Development machines (the GPU benchmark) may use gsplat's JIT-built kernels; the image never does.
ALLOW_JIT_ENV = "SPLAT_ALLOW_GSPLAT_JIT"
# Bytes per Gaussian on disk: 59 float32 parameters (PLY and checkpoint), and in a checkpoint
# also Adam's two moments.
PLY_BYTES_PER_GAUSSIAN = 59 * 4
CHECKPOINT_BYTES_PER_GAUSSIAN = 3 * 59 * 4


# ---------------------------------------------------------------- facts


@dataclass(frozen=True)
class PlatformFacts:
    """What the machine offers; ``None`` means not known (e.g. no GPU to ask)."""

    torch_version: str | None = None
    torch_import_error: str | None = None
    torch_cuda_version: str | None = None  # torch.version.cuda: the CUDA runtime torch was built with
    torch_arch_list: tuple[str, ...] = ()  # torch.cuda.get_arch_list(): sm_XY / compute_XY
    cuda_available: bool = False
    device_count: int = 0
    device_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    gpu_total_memory_bytes: int | None = None
    driver_version: str | None = None  # e.g. 535.183.01
    driver_cuda_version: tuple[int, int] | None = None  # newest CUDA the driver supports
    cuda_visible_devices: str | None = None
    cuda_error: str | None = None  # asking torch about the GPU raised
    gsplat_version: str | None = None
    gsplat_import_error: str | None = None
    gsplat_compiled_archs: tuple[str, ...] | None = None
    gsplat_kernels_precompiled: bool = False
    gsplat_kernels_error: str | None = None  # loading the kernels or running one failed

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_arch_list(text: str) -> tuple[str, ...]:
    """TORCH_CUDA_ARCH_LIST ("7.5;8.0;9.0+PTX") or a recorded list ("sm_75 compute_90") as sm_/compute_ names."""
    archs: list[str] = []
    for token in re.split(r"[;,\s]+", text.strip()):
        if re.fullmatch(r"(sm|compute)_\d+[a-z]?", token):
            archs.append(token)
            continue
        match = re.fullmatch(r"(\d+)\.(\d+)(\+PTX)?", token)
        if match:
            number = f"{match[1]}{match[2]}"
            archs.append(f"sm_{number}")
            if match[3]:
                archs.append(f"compute_{number}")
    return tuple(dict.fromkeys(archs))


def arch_runs_on(capability: tuple[int, int], archs: tuple[str, ...]) -> bool:
    """Whether code compiled for ``archs`` runs on a GPU of ``capability``.

    A cubin runs on GPUs of the same major version and an equal or higher minor one; PTX
    is JIT-compiled by the driver for any equal or newer GPU. Arch-specific targets
    (sm_90a) run only on exactly that GPU.
    """
    major, minor = capability
    for arch in archs:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([a-z]?)", arch)
        if not match:
            continue
        kind, arch_major, arch_minor, suffix = match[1], int(match[2]), int(match[3]), match[4]
        if suffix:
            if (arch_major, arch_minor) == capability:
                return True
        elif kind == "sm" and arch_major == major and arch_minor <= minor:
            return True
        elif kind == "compute" and (arch_major, arch_minor) <= capability:
            return True
    return False


def _sm(capability: tuple[int, int]) -> str:
    return f"sm_{capability[0]}{capability[1]}"


def _version_tuple(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def _driver_cuda_version() -> tuple[int, int] | None:
    """cuDriverGetVersion from libcuda: the newest CUDA version the installed driver supports."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return version.value // 1000, (version.value % 1000) // 10


def _driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.stdout.strip().splitlines()[:1]
    return first[0].strip() if out.returncode == 0 and first else None


def _recorded_gsplat_archs(env: dict[str, str]) -> tuple[str, ...] | None:
    path = env.get(COMPILED_ARCHS_FILE_ENV)
    if path and Path(path).is_file():
        return parse_arch_list(Path(path).read_text())
    return None


def _error_text(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _run_gsplat_kernels(torch: Any) -> None:
    """Rasterizes one Gaussian into a 16x16 image on the GPU: loads the kernels and runs them."""
    from gsplat import rasterization

    device = torch.device("cuda")
    rasterization(
        means=torch.tensor([[0.0, 0.0, 2.0]], device=device),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=device),
        scales=torch.full((1, 3), 0.1, device=device),
        opacities=torch.tensor([0.9], device=device),
        colors=torch.ones((1, 3), device=device),
        viewmats=torch.eye(4, device=device)[None],
        Ks=torch.tensor([[[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]]], device=device),
        width=16,
        height=16,
    )
    torch.cuda.synchronize()


def probe_platform(env: dict[str, str] | None = None, run_kernels: bool = True) -> PlatformFacts:
    """Gathers the facts from this machine. Never raises: what cannot be learned stays None."""
    env = dict(os.environ if env is None else env)
    facts: dict[str, Any] = {"cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES")}
    try:
        import torch
    except Exception as exc:  # a broken torch install is itself a fact to report
        return PlatformFacts(torch_import_error=_error_text(exc), **facts)
    facts["torch_version"] = torch.__version__
    facts["torch_cuda_version"] = torch.version.cuda
    facts["driver_cuda_version"] = _driver_cuda_version()
    facts["driver_version"] = _driver_version()
    if torch.version.cuda:
        facts["torch_arch_list"] = tuple(torch.cuda.get_arch_list())
        try:
            facts["cuda_available"] = torch.cuda.is_available()
            facts["device_count"] = torch.cuda.device_count() if facts["cuda_available"] else 0
            if facts["device_count"]:
                props = torch.cuda.get_device_properties(0)
                facts["device_name"] = props.name
                facts["compute_capability"] = (props.major, props.minor)
                facts["gpu_total_memory_bytes"] = int(props.total_memory)
        except Exception as exc:  # a GPU that is present but broken (ECC, fallen off the bus)
            facts.update(cuda_available=False, device_count=0, cuda_error=_error_text(exc))
    try:
        import gsplat

        facts["gsplat_version"] = gsplat.__version__
    except Exception as exc:
        facts["gsplat_import_error"] = _error_text(exc)
        return PlatformFacts(**facts)
    facts["gsplat_compiled_archs"] = _recorded_gsplat_archs(env)
    facts["gsplat_kernels_precompiled"] = importlib.util.find_spec("gsplat.csrc") is not None
    if facts["gsplat_kernels_precompiled"]:
        try:
            importlib.import_module("gsplat.csrc")
        except Exception as exc:
            facts["gsplat_kernels_error"] = _error_text(exc)
    allow_jit = env.get(ALLOW_JIT_ENV) == "1"
    can_run = facts.get("device_count") and not facts.get("gsplat_kernels_error")
    if run_kernels and can_run and (facts["gsplat_kernels_precompiled"] or allow_jit):
        try:
            _run_gsplat_kernels(torch)
        except Exception as exc:
            facts["gsplat_kernels_error"] = _error_text(exc)
    return PlatformFacts(**facts)


# ---------------------------------------------------------------- checks
# Each check returns a short "what was found" detail or raises TrainingFailure.


def _describe_gpu(facts: PlatformFacts) -> str:
    cap = f" ({_sm(facts.compute_capability)})" if facts.compute_capability else ""
    return f"{facts.device_name or 'GPU'}{cap}"


def check_imports(facts: PlatformFacts, need_gsplat: bool = True) -> str:
    if facts.torch_import_error:
        raise TrainingFailure(IMPORT_FAILED, f"import torch failed: {facts.torch_import_error}")
    if need_gsplat and facts.gsplat_import_error:
        raise TrainingFailure(IMPORT_FAILED, f"import gsplat failed: {facts.gsplat_import_error}")
    return f"torch {facts.torch_version}, gsplat {facts.gsplat_version or 'not used (torch backend)'}"


def check_torch_has_cuda(facts: PlatformFacts) -> str:
    if not facts.torch_cuda_version:
        raise TrainingFailure(
            TORCH_WITHOUT_CUDA, f"torch {facts.torch_version} is a CPU-only build (torch.version.cuda is None)"
        )
    return f"torch built with CUDA {facts.torch_cuda_version}"


def check_driver(facts: PlatformFacts) -> str:
    runtime = _version_tuple(facts.torch_cuda_version)
    driver = facts.driver_cuda_version
    if runtime and driver and driver[0] < runtime[0]:
        driver_name = f"NVIDIA driver {facts.driver_version}" if facts.driver_version else "the NVIDIA driver"
        raise TrainingFailure(
            DRIVER_TOO_OLD,
            f"{driver_name} supports CUDA up to {driver[0]}.{driver[1]}, "
            f"but torch {facts.torch_version} needs a CUDA {runtime[0]}.x driver (runtime {facts.torch_cuda_version})",
        )
    if driver is None:
        return "driver version unknown (no libcuda)"
    return f"driver supports CUDA {driver[0]}.{driver[1]} >= runtime {facts.torch_cuda_version}"


def check_gpu_visible(facts: PlatformFacts) -> str:
    if facts.cuda_available and facts.device_count > 0:
        return f"{facts.device_count} GPU(s), using {_describe_gpu(facts)}"
    reasons = []
    if facts.cuda_error:
        reasons.append(f"CUDA failed: {facts.cuda_error}")
    if facts.driver_cuda_version is None:
        reasons.append("no NVIDIA driver in the container (libcuda.so.1 not found)")
    if facts.cuda_visible_devices is not None:
        reasons.append(f"CUDA_VISIBLE_DEVICES={facts.cuda_visible_devices!r}")
    why = f" ({'; '.join(reasons)})" if reasons else ""
    raise TrainingFailure(
        GPU_NOT_VISIBLE,
        f"torch {facts.torch_version} sees no CUDA GPU{why}; gsplat training needs one",
    )


def check_compute_capability(facts: PlatformFacts) -> str:
    cap = facts.compute_capability
    if cap is None:
        raise TrainingFailure(GPU_NOT_VISIBLE, "the GPU's compute capability could not be read")
    wanted = f"{cap[0]}.{cap[1]}"
    # torch.cuda.get_arch_list() is empty when torch cannot list them: unknown, not "none".
    for owner, archs in (("torch", facts.torch_arch_list or None), ("gsplat", facts.gsplat_compiled_archs)):
        if archs is None:
            continue  # not recorded (a development install): the kernel check below still runs them
        if not arch_runs_on(cap, archs):
            listed = ";".join(archs) or "none"
            raise TrainingFailure(
                NO_KERNEL_IMAGE,
                f"GPU {facts.device_name or ''} {_sm(cap)} is not in {owner}'s compiled archs {listed}",
                f"rebuild the image with TORCH_CUDA_ARCH_LIST including {wanted}"
                if owner == "gsplat"
                else f"use a base image whose torch supports {_sm(cap)} (see torch.cuda.get_arch_list()), "
                "or an instance type with a GPU it supports",
            )
    recorded = "recorded" if facts.gsplat_compiled_archs is not None else "not recorded"
    return f"{_sm(cap)} supported by torch and gsplat (gsplat archs {recorded})"


def check_gsplat_kernels(facts: PlatformFacts, env: dict[str, str] | None = None) -> str:
    env = dict(os.environ if env is None else env)
    error = facts.gsplat_kernels_error
    if error and "no kernel image is available" in error:
        cap = facts.compute_capability
        wanted = f" including {cap[0]}.{cap[1]}" if cap else ""
        raise TrainingFailure(
            NO_KERNEL_IMAGE,
            f"gsplat's kernels do not run on {_describe_gpu(facts)}: {error}",
            f"rebuild the image with TORCH_CUDA_ARCH_LIST{wanted}",
        )
    if error:
        raise TrainingFailure(GSPLAT_KERNELS_UNAVAILABLE, f"gsplat's CUDA kernels failed to load or run: {error}")
    if not facts.gsplat_kernels_precompiled and env.get(ALLOW_JIT_ENV) != "1":
        raise TrainingFailure(
            GSPLAT_KERNELS_UNAVAILABLE,
            f"gsplat {facts.gsplat_version} has no precompiled kernels (module gsplat.csrc is missing), "
            "so it would JIT-compile them at job start (minutes, and only where nvcc exists)",
        )
    how = "precompiled" if facts.gsplat_kernels_precompiled else "JIT-built (allowed by " + ALLOW_JIT_ENV + ")"
    return f"gsplat kernels {how} and ran on {_describe_gpu(facts)}"


def check_input_channel(paths: SageMakerPaths, channel: str) -> Path:
    channel_dir = paths.channel(channel)
    if not channel_dir.is_dir():
        available = paths.available_channels()
        raise TrainingFailure(
            INPUT_CHANNEL_MISSING,
            f"input channel {channel!r} is missing ({channel_dir} does not exist; "
            f"channels present: {', '.join(available) or 'none'})",
        )
    if not any(channel_dir.iterdir()):
        raise TrainingFailure(
            INPUT_CHANNEL_MISSING,
            f"input channel {channel!r} ({channel_dir}) is empty: its S3 prefix holds no objects",
        )
    return channel_dir


def check_colmap_model(channel_dir: Path) -> ColmapModel:
    from splat_trainer.colmap import ColmapError, read_model
    from splat_trainer.dataset import DatasetError, find_sparse_dir

    try:
        sparse_dir = find_sparse_dir(channel_dir)
    except DatasetError as exc:
        raise TrainingFailure(COLMAP_MODEL_MISSING, str(exc)) from exc
    try:
        model = read_model(sparse_dir)
    except (ColmapError, OSError) as exc:
        raise TrainingFailure(COLMAP_MODEL_UNREADABLE, f"COLMAP model in {sparse_dir} is unreadable: {exc}") from exc
    if len(model.cameras) == 0 or len(model.images) == 0 or len(model.points3D) == 0:
        raise TrainingFailure(
            COLMAP_MODEL_EMPTY,
            f"COLMAP model in {sparse_dir} has {len(model.cameras)} cameras, {len(model.images)} registered images "
            f"and {len(model.points3D)} 3D points; training needs at least one of each",
        )
    from splat_trainer.dataset import UNSUPPORTED_DISTORTION

    unsupported = sorted({c.model for c in model.cameras.values() if c.model in UNSUPPORTED_DISTORTION})
    if unsupported:
        raise TrainingFailure(
            COLMAP_CAMERA_UNSUPPORTED,
            f"COLMAP model in {sparse_dir} uses camera model(s) {', '.join(unsupported)}, which the trainer "
            "does not undistort",
        )
    return model


def check_images_present(model: ColmapModel, channel_dir: Path, data_factor: int) -> str:
    from splat_trainer.dataset import DatasetError, find_images_dir, missing_images

    try:
        images_dir = find_images_dir(channel_dir, data_factor)
    except DatasetError as exc:
        raise TrainingFailure(IMAGE_MISSING, str(exc)) from exc
    missing = missing_images(model, images_dir)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise TrainingFailure(
            IMAGE_MISSING,
            f"{len(missing)} of {len(model.images)} images referenced by the COLMAP model are not in {images_dir}: {shown}",
        )
    unreadable = _undecodable_images(images_dir, sorted(img.name for img in model.images.values()))
    if unreadable:
        shown = "; ".join(unreadable[:3]) + ("; ..." if len(unreadable) > 3 else "")
        raise TrainingFailure(
            IMAGE_UNREADABLE, f"{len(unreadable)} of {len(model.images)} images in {images_dir} are not readable images: {shown}"
        )
    return f"all {len(model.images)} images present and readable in {images_dir}"


def _undecodable_images(images_dir: Path, names: list[str]) -> list[str]:
    """Images whose header does not decode (empty, truncated before the header, not an image).
    Only headers are read: milliseconds per image, whatever its size."""
    from PIL import Image, UnidentifiedImageError

    bad = []
    for name in names:
        try:
            with Image.open(images_dir / name) as image:
                width, height = image.size
            if width == 0 or height == 0:
                bad.append(f"{name} (0 pixels)")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            bad.append(f"{name} ({type(exc).__name__})")
    return bad


def check_outputs_writable(paths: SageMakerPaths) -> str:
    for folder in paths.writable_dirs():
        probe = folder / f".preflight-{uuid.uuid4().hex}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise TrainingFailure(
                OUTPUT_NOT_WRITABLE, f"{folder} is not writable ({type(exc).__name__}: {exc.strerror or exc})"
            ) from exc
    return "writable: " + ", ".join(str(p) for p in paths.writable_dirs())


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def disk_needed_bytes(cfg: TrainConfig, peak_gaussians: int) -> int:
    """Room for the PLY, the kept checkpoints (one more while a new one is written) and a margin."""
    checkpoints = (cfg.keep_checkpoints + 1) * CHECKPOINT_BYTES_PER_GAUSSIAN * peak_gaussians
    return int(cfg.min_free_disk_gb * GIB + PLY_BYTES_PER_GAUSSIAN * peak_gaussians + checkpoints)


def check_free_disk(paths: SageMakerPaths, needed: int, free_bytes: Callable[[Path], int] = disk_free_bytes) -> str:
    for folder in (paths.checkpoint_dir, paths.model_dir):
        free = free_bytes(folder)
        if free < needed:
            raise TrainingFailure(
                DISK_FULL,
                f"{folder} has {free / GIB:.2f} GiB free, the run needs about {needed / GIB:.2f} GiB "
                "(checkpoints, the .ply and a margin of min_free_disk_gb)",
            )
    return f"at least {needed / GIB:.2f} GiB free for checkpoints and model"


def check_gpu_memory(cfg: TrainConfig, model: ColmapModel, facts: PlatformFacts) -> str:
    """The memory plan for the scene (memory.plan_memory: where the images live, the most Gaussians the budget
    holds, cap_max) with the job's time and cost on ml.g4dn.xlarge; a scene that cannot fit at all fails."""
    from splat_trainer.cost import estimate_t4_job
    from splat_trainer.dataset import scene_stats
    from splat_trainer.memory import plan_memory

    stats = scene_stats(model, cfg.data_factor)
    estimate = estimate_t4_job(cfg.max_steps, stats.n_images, stats.width, stats.height, cfg.test_every,
                               len(cfg.eval_steps)).line()
    total = facts.gpu_total_memory_bytes
    if total is None:
        return f"GPU memory unknown: not checked; {estimate}"
    plan = plan_memory(cfg, stats.n_images, stats.width, stats.height, stats.n_points, total)
    if not plan.fits:
        options = [f"data_factor={cfg.data_factor * 2}" if cfg.data_factor < 8 else None,
                   "a GPU with more memory"]
        raise TrainingFailure(
            GPU_MEMORY_BUDGET_EXCEEDED,
            f"the scene ({stats.n_images} images of {stats.width}x{stats.height}, {stats.n_points} points, "
            f"strategy={cfg.strategy}) cannot fit: {plan.reason}; budget {plan.budget_bytes / GIB:.1f} GiB "
            f"({cfg.gpu_memory_budget_fraction:.0%} of {_describe_gpu(facts)}'s {total / GIB:.1f} GiB)",
            "set " + " or ".join(o for o in options if o),
        )
    return f"{plan.summary()}; {estimate}"


# ---------------------------------------------------------------- the whole preflight


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass
class PreflightReport:
    facts: PlatformFacts
    checks: list[CheckResult] = field(default_factory=list)
    failure: TrainingFailure | None = None
    model: ColmapModel | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "ok" if self.ok else self.failure.line(),
            "exit_code": 0 if self.ok else self.failure.exit_code,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "facts": self.facts.to_json(),
        }


def uses_gpu(cfg: TrainConfig) -> bool:
    """Only the pure-PyTorch backend runs without a GPU; "auto" in this image means gsplat on CUDA,
    so a job that lands on a machine without a usable GPU fails here instead of crawling on the CPU."""
    return cfg.backend != "torch"


def run_preflight(
    cfg: TrainConfig,
    paths: SageMakerPaths,
    facts: PlatformFacts,
    *,
    channel: str = "training",
    env: dict[str, str] | None = None,
    free_bytes: Callable[[Path], int] = disk_free_bytes,
    gpu_only: bool = False,
) -> PreflightReport:
    """Runs the checks in order and stops at the first failure (later checks need earlier results)."""
    report = PreflightReport(facts)

    def step(name: str, check: Callable[[], Any]) -> Any:
        value = check()
        report.checks.append(CheckResult(name, True, value if isinstance(value, str) else str(value)))
        return value

    try:
        step("imports", lambda: check_imports(facts, need_gsplat=uses_gpu(cfg)))
        if uses_gpu(cfg):
            step("torch_cuda", lambda: check_torch_has_cuda(facts))
            step("driver", lambda: check_driver(facts))
            step("gpu_visible", lambda: check_gpu_visible(facts))
            step("compute_capability", lambda: check_compute_capability(facts))
            step("gsplat_kernels", lambda: check_gsplat_kernels(facts, env))
        if gpu_only:
            return report
        channel_dir = step("input_channel", lambda: check_input_channel(paths, channel))
        model = check_colmap_model(channel_dir)
        report.checks.append(CheckResult(
            "colmap_model", True,
            f"{len(model.cameras)} cameras, {len(model.images)} images, {len(model.points3D)} points ({model.format})",
        ))
        report.model = model
        step("images", lambda: check_images_present(model, channel_dir, cfg.data_factor))
        step("outputs_writable", lambda: check_outputs_writable(paths))
        step("free_disk", lambda: check_free_disk(paths, _disk_needed(cfg, model, facts), free_bytes))
        if uses_gpu(cfg):
            step("gpu_memory", lambda: check_gpu_memory(cfg, model, facts))
    except TrainingFailure as failure:
        report.failure = failure
        report.checks.append(CheckResult(failure.code.key, False, failure.line()))
    return report


def _disk_needed(cfg: TrainConfig, model: ColmapModel, facts: PlatformFacts) -> int:
    from splat_trainer.dataset import scene_stats
    from splat_trainer.memory import expected_peak_gaussians

    stats = scene_stats(model, cfg.data_factor)
    peak = expected_peak_gaussians(
        cfg, stats.n_points, facts.gpu_total_memory_bytes, stats.n_images, stats.width, stats.height
    )
    return disk_needed_bytes(cfg, peak)
