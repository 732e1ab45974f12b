"""Every preflight failure, produced for real (a real scene, real files, real folders) and
through the real job (``main.run``), with the machine's GPU given as data.

``FAILURE_CASES`` is the table: what is wrong -> the failure code and what its line says.
tests/training/test_failure_classification.py runs the responder's classifier on the same
failure files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from splat_trainer import main as job
from splat_trainer.colmap import Camera, Points3D, read_model, write_model_binary
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
    INVALID_HYPERPARAMETER,
    NO_KERNEL_IMAGE,
    OUTPUT_NOT_WRITABLE,
    TORCH_WITHOUT_CUDA,
    FailureCode,
    parse_failure_line,
)
from splat_trainer.paths import SageMakerPaths
from splat_trainer.preflight import (
    COMPILED_ARCHS_FILE_ENV,
    PlatformFacts,
    _recorded_gsplat_archs,
    arch_runs_on,
    parse_arch_list,
    probe_platform,
    run_preflight,
)
from splat_trainer.synthetic import generate_scene

GIB = 1024**3

# An ml.g4dn.xlarge as the image sees it: torch 2.13.0+cu126, driver 535, gsplat built by the Dockerfile.
T4 = PlatformFacts(
    torch_version="2.13.0+cu126",
    torch_cuda_version="12.6",
    torch_arch_list=("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    cuda_available=True,
    device_count=1,
    device_name="Tesla T4",
    compute_capability=(7, 5),
    gpu_total_memory_bytes=15_642_329_088,
    driver_version="535.183.01",
    driver_cuda_version=(12, 2),
    gsplat_version="1.5.3",
    gsplat_compiled_archs=("compute_90", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90"),
    gsplat_kernels_precompiled=True,
)
PLENTY_OF_DISK = 500 * GIB
HEALTHY_HYPERPARAMETERS = {"max_steps": "100", "eval_steps": "100"}
GPU_CHECKS = ["imports", "torch_cuda", "driver", "gpu_visible", "compute_capability", "gsplat_kernels"]
DATA_CHECKS = ["input_channel", "colmap_model", "images", "outputs_writable", "free_disk"]


# ---------------------------------------------------------------- ways to break a job's input


def _channel(root: Path) -> Path:
    return SageMakerPaths(root).channel()


def remove_channel(root: Path) -> None:
    shutil.rmtree(_channel(root))
    (_channel(root).parent / "images_only").mkdir()  # a channel under another name


def empty_channel(root: Path) -> None:
    shutil.rmtree(_channel(root))
    _channel(root).mkdir()


def remove_sparse_model(root: Path) -> None:
    shutil.rmtree(_channel(root) / "sparse")


def truncate_images_bin(root: Path) -> None:
    images_bin = _channel(root) / "sparse" / "0" / "images.bin"
    images_bin.write_bytes(images_bin.read_bytes()[:100])


def drop_all_points(root: Path) -> None:
    sparse = _channel(root) / "sparse" / "0"
    model = read_model(sparse)
    no_points = Points3D(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0))
    write_model_binary(sparse, model.cameras, model.images, no_points)


def use_a_fisheye_camera(root: Path) -> None:
    sparse = _channel(root) / "sparse" / "0"
    model = read_model(sparse)
    fisheye = {cid: Camera(cid, "OPENCV_FISHEYE", cam.width, cam.height, np.array([*cam.params, 0.01, 0.0, 0.0, 0.0]))
               for cid, cam in model.cameras.items()}
    write_model_binary(sparse, fisheye, model.images, model.points3D)


def cut_one_image_short(root: Path) -> None:
    # What an interrupted S3 download leaves: the first bytes, not a whole PNG header.
    image = _channel(root) / "images" / "view_0002.png"
    image.write_bytes(image.read_bytes()[:10])


def empty_one_image(root: Path) -> None:
    (_channel(root) / "images" / "view_0004.png").write_bytes(b"")


def delete_one_image(root: Path) -> None:
    (_channel(root) / "images" / "view_0003.png").unlink()


def remove_images_folder(root: Path) -> None:
    shutil.rmtree(_channel(root) / "images")


def block_model_folder(root: Path) -> None:
    (root / "model").write_text("a file where SageMaker's model folder should be")


def nothing(root: Path) -> None:
    pass


@dataclass(frozen=True)
class FailureCase:
    id: str
    code: FailureCode
    says: tuple[str, ...]  # fragments the failure line must contain
    facts: dict = field(default_factory=dict)  # changes to the healthy T4
    hyperparameters: dict = field(default_factory=dict)
    damage: Callable[[Path], None] = nothing
    free_disk_bytes: int = PLENTY_OF_DISK


FAILURE_CASES = [
    FailureCase("torch_broken", IMPORT_FAILED, ("import torch failed: OSError: libcudnn.so.9",),
                facts={"torch_import_error": "OSError: libcudnn.so.9: cannot open shared object file"}),
    FailureCase("gsplat_missing", IMPORT_FAILED, ("import gsplat failed: ModuleNotFoundError",),
                facts={"gsplat_import_error": "ModuleNotFoundError: No module named 'gsplat'", "gsplat_version": None}),
    FailureCase("cpu_only_torch", TORCH_WITHOUT_CUDA, ("torch 2.4.1+cpu is a CPU-only build",),
                facts={"torch_version": "2.4.1+cpu", "torch_cuda_version": None, "cuda_available": False}),
    FailureCase("driver_too_old", DRIVER_TOO_OLD,
                ("NVIDIA driver 470.256.02 supports CUDA up to 11.4", "needs a CUDA 12.x driver"),
                facts={"driver_version": "470.256.02", "driver_cuda_version": (11, 4), "cuda_available": False,
                       "device_count": 0}),
    FailureCase("no_gpu", GPU_NOT_VISIBLE, ("sees no CUDA GPU", "libcuda.so.1 not found", "run on a GPU instance type"),
                facts={"cuda_available": False, "device_count": 0, "driver_cuda_version": None, "driver_version": None}),
    FailureCase("gpu_broken", GPU_NOT_VISIBLE, ("CUDA failed: RuntimeError: CUDA error: uncorrectable ECC error",),
                facts={"cuda_available": False, "device_count": 0,
                       "cuda_error": "RuntimeError: CUDA error: uncorrectable ECC error encountered"}),
    FailureCase("gpu_hidden", GPU_NOT_VISIBLE, ("CUDA_VISIBLE_DEVICES=''",),
                facts={"cuda_available": False, "device_count": 0, "cuda_visible_devices": ""}),
    FailureCase("gsplat_built_without_sm75", NO_KERNEL_IMAGE,
                ("GPU Tesla T4 sm_75 is not in gsplat's compiled archs sm_80;sm_86",
                 "rebuild the image with TORCH_CUDA_ARCH_LIST including 7.5"),
                facts={"gsplat_compiled_archs": ("sm_80", "sm_86")}),
    FailureCase("torch_without_the_gpus_arch", NO_KERNEL_IMAGE,
                ("sm_120 is not in torch's compiled archs",),
                facts={"compute_capability": (12, 0), "device_name": "NVIDIA RTX PRO 6000",
                       "gsplat_compiled_archs": ("sm_75", "compute_90")}),
    FailureCase("kernel_launch_no_kernel_image", NO_KERNEL_IMAGE,
                ("no kernel image is available for execution on the device", "TORCH_CUDA_ARCH_LIST including 7.5"),
                facts={"gsplat_compiled_archs": None,
                       "gsplat_kernels_error": "RuntimeError: CUDA error: no kernel image is available for execution "
                                               "on the device"}),
    FailureCase("gsplat_kernels_do_not_load", GSPLAT_KERNELS_UNAVAILABLE,
                ("failed to load or run", "undefined symbol"),
                facts={"gsplat_kernels_error": "ImportError: gsplat/csrc.so: undefined symbol: _ZN3c104cuda9SetDevice"}),
    FailureCase("gsplat_would_jit", GSPLAT_KERNELS_UNAVAILABLE, ("no precompiled kernels", "JIT-compile"),
                facts={"gsplat_kernels_precompiled": False}),
    FailureCase("channel_missing", INPUT_CHANNEL_MISSING,
                ("input channel 'training' is missing", "channels present: images_only"), damage=remove_channel),
    FailureCase("channel_empty", INPUT_CHANNEL_MISSING, ("is empty",), damage=empty_channel),
    FailureCase("no_colmap_model", COLMAP_MODEL_MISSING, ("no COLMAP model",), damage=remove_sparse_model),
    FailureCase("truncated_model", COLMAP_MODEL_UNREADABLE, ("images.bin",), damage=truncate_images_bin),
    FailureCase("model_without_points", COLMAP_MODEL_EMPTY, ("0 3D points",), damage=drop_all_points),
    FailureCase("fisheye_camera", COLMAP_CAMERA_UNSUPPORTED, ("camera model(s) OPENCV_FISHEYE", "image_undistorter"),
                damage=use_a_fisheye_camera),
    FailureCase("image_cut_short", IMAGE_UNREADABLE, ("1 of 6 images", "view_0002.png (UnidentifiedImageError)"),
                damage=cut_one_image_short),
    FailureCase("image_empty", IMAGE_UNREADABLE, ("view_0004.png (UnidentifiedImageError)",),
                damage=empty_one_image),
    FailureCase("image_deleted", IMAGE_MISSING, ("1 of 6 images", "view_0003.png"), damage=delete_one_image),
    FailureCase("images_folder_missing", IMAGE_MISSING, ("no images/ folder",), damage=remove_images_folder),
    FailureCase("model_folder_blocked", OUTPUT_NOT_WRITABLE, ("/model is not writable",), damage=block_model_folder),
    FailureCase("disk_full", DISK_FULL, ("has 0.50 GiB free", "raise the job's VolumeSizeInGB"),
                free_disk_bytes=GIB // 2),
    FailureCase("budget_below_the_sfm_points", GPU_MEMORY_BUDGET_EXCEEDED,
                ("300 points, strategy=default) cannot fit", "fewer than the 300 SfM points need",
                 "of Tesla T4 (sm_75)'s 14.6 GiB", "set data_factor=2 or a GPU with more memory"),
                hyperparameters={"gpu_memory_budget_fraction": "0.03"}),
]


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory) -> Path:
    """A real synthetic SfM output: COLMAP binary model + 6 PNG views (generated once)."""
    return generate_scene(tmp_path_factory.mktemp("scene"), n_images=6, width=24, height=18, n_points=300, seed=1)


def make_job_root(tmp_path: Path, scene: Path, hyperparameters: dict[str, str]) -> Path:
    root = tmp_path / "opt-ml"
    shutil.copytree(scene, SageMakerPaths(root).channel())
    paths = SageMakerPaths(root)
    paths.hyperparameters_file.parent.mkdir(parents=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    return root


def must_not_train(*args, **kwargs):
    raise AssertionError("preflight failed, so training must not start")


def run_case(case: FailureCase, tmp_path: Path, scene: Path) -> tuple[int, Path]:
    """Runs the job for one failure case; returns its exit code and its SM_ROOT."""
    root = make_job_root(tmp_path, scene, {**HEALTHY_HYPERPARAMETERS, **case.hyperparameters})
    case.damage(root)
    facts = dataclasses.replace(T4, **case.facts)
    exit_code = job.run(
        ["train"], env={"SM_ROOT": str(root)}, probe=lambda env: facts,
        free_bytes=lambda path: case.free_disk_bytes, trainer=must_not_train,
    )
    return exit_code, root


@pytest.mark.parametrize("case", FAILURE_CASES, ids=lambda c: c.id)
def test_preflight_failure_ends_the_job_with_its_code_and_failure_file(case, tmp_path, tiny_scene):
    exit_code, root = run_case(case, tmp_path, tiny_scene)
    content = SageMakerPaths(root).failure_file.read_text()
    line = content.rstrip("\n")
    assert content == line + "\n" and "\n" not in line, "exactly one line"
    assert len(line) <= 1024
    assert parse_failure_line(line) == (case.code.category, case.code.cause), line
    assert exit_code == case.code.exit_code
    for fragment in case.says:
        assert fragment in line, f"{fragment!r} not in {line!r}"


def test_every_preflight_failure_code_has_a_case():
    preflight_codes = {
        IMPORT_FAILED, TORCH_WITHOUT_CUDA, DRIVER_TOO_OLD, GPU_NOT_VISIBLE, NO_KERNEL_IMAGE, GSPLAT_KERNELS_UNAVAILABLE,
        INPUT_CHANNEL_MISSING, COLMAP_MODEL_MISSING, COLMAP_MODEL_UNREADABLE, COLMAP_MODEL_EMPTY,
        COLMAP_CAMERA_UNSUPPORTED, IMAGE_MISSING, IMAGE_UNREADABLE,
        OUTPUT_NOT_WRITABLE, DISK_FULL, GPU_MEMORY_BUDGET_EXCEEDED,
    }
    assert {case.code for case in FAILURE_CASES} == preflight_codes


def test_healthy_t4_job_passes_every_check_and_trains(tmp_path, tiny_scene):
    root = make_job_root(tmp_path, tiny_scene, HEALTHY_HYPERPARAMETERS)
    calls = []
    exit_code = job.run(
        ["train"], env={"SM_ROOT": str(root)}, probe=lambda env: T4, free_bytes=lambda path: PLENTY_OF_DISK,
        trainer=lambda cfg, paths, report, channel: calls.append((cfg.max_steps, report.ok, channel)),
    )
    assert exit_code == 0
    assert calls == [(100, True, "training")]
    assert not SageMakerPaths(root).failure_file.exists()


def test_healthy_report_lists_the_checks_in_order(tmp_path, tiny_scene):
    root = make_job_root(tmp_path, tiny_scene, HEALTHY_HYPERPARAMETERS)
    cfg = job.load_config(HEALTHY_HYPERPARAMETERS)
    report = run_preflight(cfg, SageMakerPaths(root), T4, free_bytes=lambda path: PLENTY_OF_DISK, env={})
    assert report.ok, report.failure
    assert [c.name for c in report.checks] == GPU_CHECKS + DATA_CHECKS + ["gpu_memory"]
    assert all(c.ok for c in report.checks)
    assert report.model is not None and len(report.model.images) == 6


def test_torch_backend_needs_no_gpu_and_no_gsplat(tmp_path, tiny_scene):
    root = make_job_root(tmp_path, tiny_scene, HEALTHY_HYPERPARAMETERS)
    cfg = job.load_config({**HEALTHY_HYPERPARAMETERS, "backend": "torch"})
    no_gpu = PlatformFacts(torch_version="2.13.0+cpu", gsplat_import_error="ModuleNotFoundError: No module named 'gsplat'")
    report = run_preflight(cfg, SageMakerPaths(root), no_gpu, free_bytes=lambda path: PLENTY_OF_DISK, env={})
    assert report.ok, report.failure
    assert [c.name for c in report.checks] == ["imports"] + DATA_CHECKS


def test_jit_built_gsplat_is_accepted_only_when_allowed(tmp_path, tiny_scene):
    root = make_job_root(tmp_path, tiny_scene, HEALTHY_HYPERPARAMETERS)
    cfg = job.load_config(HEALTHY_HYPERPARAMETERS)
    jit_only = dataclasses.replace(T4, gsplat_kernels_precompiled=False)
    common = dict(free_bytes=lambda path: PLENTY_OF_DISK, gpu_only=True)
    refused = run_preflight(cfg, SageMakerPaths(root), jit_only, env={}, **common)
    allowed = run_preflight(cfg, SageMakerPaths(root), jit_only, env={"SPLAT_ALLOW_GSPLAT_JIT": "1"}, **common)
    assert refused.failure is not None and refused.failure.code is GSPLAT_KERNELS_UNAVAILABLE
    assert allowed.ok and [c.name for c in allowed.checks] == GPU_CHECKS


def test_preflight_only_prints_facts_and_verdict_as_json(tmp_path, tiny_scene, capsys):
    case = next(c for c in FAILURE_CASES if c.id == "gsplat_built_without_sm75")
    root = make_job_root(tmp_path, tiny_scene, HEALTHY_HYPERPARAMETERS)
    facts = dataclasses.replace(T4, **case.facts)
    exit_code = job.run(["--preflight-only"], env={"SM_ROOT": str(root)}, probe=lambda env: facts)
    printed = json.loads(capsys.readouterr().out)
    assert exit_code == NO_KERNEL_IMAGE.exit_code == printed["exit_code"]
    assert printed["verdict"].startswith("[cuda_gpu/no_kernel_image] GPU Tesla T4 sm_75")
    assert printed["facts"]["device_name"] == "Tesla T4"
    assert printed["facts"]["compute_capability"] == [7, 5]
    assert [c["ok"] for c in printed["checks"]] == [True] * 4 + [False]
    assert not SageMakerPaths(root).failure_file.exists(), "a diagnostic run does not write the failure file"


# ---------------------------------------------------------------- architectures


@pytest.mark.parametrize(
    ("capability", "archs", "runs"),
    [
        ((7, 5), ("sm_75",), True),
        ((7, 5), ("sm_70",), True),  # cubins run on the same major, equal or higher minor
        ((7, 0), ("sm_75",), False),
        ((7, 5), ("sm_80", "sm_86"), False),
        ((7, 5), ("compute_70",), True),  # PTX is JIT-compiled for newer GPUs
        ((7, 5), ("compute_80",), False),
        ((8, 9), ("sm_86",), True),
        ((9, 0), ("sm_90a",), True),
        ((10, 0), ("sm_90a",), False),  # arch-specific code runs on exactly that GPU
        ((10, 0), ("sm_90", "compute_90"), True),
        ((10, 0), ("sm_90",), False),
        ((7, 5), (), False),
    ],
)
def test_arch_runs_on(capability, archs, runs):
    assert arch_runs_on(capability, archs) is runs


@pytest.mark.parametrize(
    ("text", "archs"),
    [
        ("7.5;8.0;8.6;8.9;9.0+PTX", ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "compute_90")),
        ("7.5 8.6", ("sm_75", "sm_86")),
        ("compute_90\nsm_75\nsm_80\n", ("compute_90", "sm_75", "sm_80")),
        ("", ()),
    ],
)
def test_parse_arch_list(text, archs):
    assert parse_arch_list(text) == archs


def test_recorded_archs_come_from_the_file_the_dockerfile_writes(tmp_path):
    recorded = tmp_path / "compiled_archs.txt"
    recorded.write_text("compute_90\nsm_75\nsm_80\nsm_86\nsm_89\nsm_90\n")
    assert _recorded_gsplat_archs({COMPILED_ARCHS_FILE_ENV: str(recorded)}) == (
        "compute_90", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90")
    assert _recorded_gsplat_archs({COMPILED_ARCHS_FILE_ENV: str(tmp_path / "absent")}) is None
    assert _recorded_gsplat_archs({}) is None


def test_real_probe_reports_this_machine():
    facts = probe_platform(env={})
    assert facts.torch_import_error is None
    assert facts.torch_version == torch.__version__
    assert facts.torch_cuda_version == torch.version.cuda
    assert facts.cuda_available == (torch.version.cuda is not None and torch.cuda.is_available())
    assert (facts.device_count > 0) == facts.cuda_available
    assert (facts.compute_capability is None) == (facts.device_count == 0)
    json.dumps(facts.to_json())  # --preflight-only prints it


def test_preflight_only_reports_a_bad_hyperparameter_as_json_too(tmp_path, tiny_scene, capsys):
    root = make_job_root(tmp_path, tiny_scene, {"max_steps": "0"})
    exit_code = job.run(["--preflight-only"], env={"SM_ROOT": str(root)}, probe=lambda env: T4)
    printed = json.loads(capsys.readouterr().out)
    assert exit_code == printed["exit_code"] == INVALID_HYPERPARAMETER.exit_code
    assert printed["verdict"].startswith("[sagemaker_environment/invalid_hyperparameter] hyperparameter max_steps='0'")
    assert not SageMakerPaths(root).failure_file.exists()


def test_an_unlisted_torch_arch_list_is_not_a_missing_architecture(tmp_path):
    cfg = job.load_config(HEALTHY_HYPERPARAMETERS)
    unlisted = dataclasses.replace(T4, torch_arch_list=())
    report = run_preflight(cfg, SageMakerPaths(tmp_path), unlisted, env={}, gpu_only=True)
    assert report.ok, report.failure


RECORDED_H200 = Path(__file__).parent / "data" / "preflight_h200.json"


def _recorded_facts() -> PlatformFacts:
    facts = json.loads(RECORDED_H200.read_text())["report"]["facts"]
    as_tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in facts.items()}
    return PlatformFacts(**as_tuples)


def test_facts_recorded_on_a_real_gpu_pass_only_where_jit_kernels_are_allowed(tmp_path):
    # Recorded by the real probe on the benchmark machine (H200, gsplat JIT-built there). The
    # image never allows JIT: the same machine facts must fail its preflight.
    facts = _recorded_facts()
    assert facts.compute_capability == (9, 0) and facts.driver_cuda_version is not None
    cfg = job.load_config(HEALTHY_HYPERPARAMETERS)
    allowed = run_preflight(cfg, SageMakerPaths(tmp_path), facts, env={"SPLAT_ALLOW_GSPLAT_JIT": "1"}, gpu_only=True)
    assert allowed.ok, allowed.failure
    in_the_image = run_preflight(cfg, SageMakerPaths(tmp_path), facts, env={}, gpu_only=True)
    assert in_the_image.failure is not None and in_the_image.failure.code is GSPLAT_KERNELS_UNAVAILABLE


def test_preflight_only_keeps_stdout_pure_json_when_the_probe_prints(tmp_path, capsys):
    def chatty_probe(env):
        print("gsplat: CUDA extension has been set up successfully in 77.31 seconds.")
        return T4

    exit_code = job.run(["--preflight-only", "--gpu-only"], env={"SM_ROOT": str(tmp_path)}, probe=chatty_probe)
    captured = capsys.readouterr()
    assert exit_code == 0
    assert json.loads(captured.out)["verdict"] == "ok"
    assert "set up successfully" in captured.err
