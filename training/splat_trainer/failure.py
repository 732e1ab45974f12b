"""Failure codes of the training image and the one-line failure file SageMaker reads.

SageMaker turns the first 1,024 characters of ``/opt/ml/output/failure`` into the job's
``FailureReason`` (prefixed with ``AlgorithmError: ``). The incident responder reads that
text; a line of the form ``[<category>/<cause>] <what is wrong>: <what to do>`` is
classified from its tag alone, so every failure this image knows about gets a stable
tag here, a distinct exit code, and a remedy written for the person on call.

Categories are the troubleshooting guide's ids (the responder ignores any other), causes
are snake_case and stable: renaming one breaks the responder's rule for it.

An exception nobody anticipated gets NO tag (guessing a category would mislead the
responder): its line is the exception type, message and the last traceback frames, which
the responder's ordinary text rules read like any other log.
"""

from __future__ import annotations

import errno
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass
from pathlib import Path

# SageMaker keeps only this many characters of the failure file.
MAX_FAILURE_CHARS = 1024
# Exit code of an exception without a failure code (Python's own code for an uncaught one).
UNEXPECTED_EXIT_CODE = 1

GUIDE_CATEGORIES = (
    "entry_point",
    "cuda_gpu",
    "python_dependencies",
    "sagemaker_environment",
    "file_permissions_paths",
    "workflow_parsing",
    "aws_credentials",
    "cdk_bootstrap_trust",
)
_CAUSE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
# What a classifier sees at the start of a coded line; also used to parse one back.
TAG_PATTERN = re.compile(r"^\[(?P<category>[a-z_]+)/(?P<cause>[a-z0-9_]+)\] ")


@dataclass(frozen=True)
class FailureCode:
    """One known way for a training job to fail: its tag, exit code and default remedy."""

    category: str
    cause: str
    exit_code: int
    remedy: str

    @property
    def key(self) -> str:
        return f"{self.category}/{self.cause}"

    @property
    def tag(self) -> str:
        return f"[{self.key}]"


FAILURE_CODES: dict[str, FailureCode] = {}


def _register(category: str, cause: str, exit_code: int, remedy: str) -> FailureCode:
    # Checked at import so a bad registry entry fails every test, not a live job.
    if category not in GUIDE_CATEGORIES:
        raise ValueError(f"failure category {category!r} is not one of the guide's ids {GUIDE_CATEGORIES}")
    if not _CAUSE_PATTERN.match(cause):
        raise ValueError(f"failure cause {cause!r} must be snake_case")
    if not 10 <= exit_code <= 125:
        # 0 is success, 1 an unexpected exception, 126+ belong to the shell and to signals.
        raise ValueError(f"exit code {exit_code} for {category}/{cause} must be within 10..125")
    taken = {c.exit_code: c.key for c in FAILURE_CODES.values()}
    if exit_code in taken:
        raise ValueError(f"exit code {exit_code} of {category}/{cause} is already used by {taken[exit_code]}")
    code = FailureCode(category, cause, exit_code, remedy)
    if code.key in FAILURE_CODES:
        raise ValueError(f"failure code {code.key} is registered twice")
    FAILURE_CODES[code.key] = code
    return code


# --- entry point: how the container was started
BAD_ARGUMENTS = _register(
    "entry_point", "bad_arguments", 10,
    "start the image as SageMaker does (`docker run IMAGE train`) or see `--help`; "
    "do not override the ENTRYPOINT or pass ContainerArguments",
)
# --- CUDA and the GPU
TORCH_WITHOUT_CUDA = _register(
    "cuda_gpu", "torch_without_cuda", 11,
    "the image carries a CPU-only torch build: rebuild it from a CUDA base (see training/Dockerfile)",
)
DRIVER_TOO_OLD = _register(
    "cuda_gpu", "driver_too_old", 12,
    "use an instance whose NVIDIA driver supports the image's CUDA runtime, or rebuild the image on an older CUDA",
)
GPU_NOT_VISIBLE = _register(
    "cuda_gpu", "gpu_not_visible", 13,
    "run on a GPU instance type (e.g. ml.g4dn.xlarge) and do not set CUDA_VISIBLE_DEVICES in the job",
)
NO_KERNEL_IMAGE = _register(
    "cuda_gpu", "no_kernel_image", 14,
    "rebuild the image with TORCH_CUDA_ARCH_LIST including this GPU's architecture",
)
GSPLAT_KERNELS_UNAVAILABLE = _register(
    "cuda_gpu", "gsplat_kernels_unavailable", 15,
    "rebuild the image so gsplat's CUDA kernels compile at build time "
    "(pip install --no-build-isolation gsplat with TORCH_CUDA_ARCH_LIST set)",
)
# --- Python packages
IMPORT_FAILED = _register(
    "python_dependencies", "import_failed", 20,
    "rebuild the image with training/requirements.txt and check the build's smoke import step",
)
MODULE_NOT_FOUND = _register(
    "python_dependencies", "module_not_found", 21,
    "add the missing package (pinned) to training/requirements.txt and rebuild the image",
)
# --- how SageMaker set the job up
INVALID_HYPERPARAMETER = _register(
    "sagemaker_environment", "invalid_hyperparameter", 30,
    "fix the job's HyperParameters (all values are strings) and start it again",
)
HYPERPARAMETERS_UNREADABLE = _register(
    "sagemaker_environment", "hyperparameters_unreadable", 31,
    "pass HyperParameters as a map of strings in CreateTrainingJob",
)
INPUT_CHANNEL_MISSING = _register(
    "sagemaker_environment", "input_channel_missing", 32,
    "add an InputDataConfig channel named 'training' pointing at the SfM output (sparse model + images)",
)
DISK_FULL = _register(
    "sagemaker_environment", "disk_full", 33,
    "raise the job's VolumeSizeInGB or lower the number of Gaussians (strategy=mcmc with cap_max)",
)
GPU_MEMORY_BUDGET_EXCEEDED = _register(
    "sagemaker_environment", "gpu_memory_budget_exceeded", 34,
    "raise data_factor (downscale images), use strategy=mcmc with a smaller cap_max, or a larger GPU instance",
)
GPU_OUT_OF_MEMORY = _register(
    "sagemaker_environment", "gpu_out_of_memory", 35,
    "raise data_factor (downscale images), use strategy=mcmc with a smaller cap_max, or a larger GPU instance",
)
# --- files and paths
COLMAP_MODEL_MISSING = _register(
    "file_permissions_paths", "colmap_model_missing", 40,
    "upload the SfM output with cameras, images and points3D (.bin or .txt) under sparse/0, sparse/ or the channel root",
)
COLMAP_MODEL_UNREADABLE = _register(
    "file_permissions_paths", "colmap_model_unreadable", 41,
    "re-export the COLMAP model (colmap model_converter) and upload it again",
)
COLMAP_MODEL_EMPTY = _register(
    "file_permissions_paths", "colmap_model_empty", 42,
    "check the SfM step: it registered no images or triangulated no points",
)
IMAGE_MISSING = _register(
    "file_permissions_paths", "image_missing", 43,
    "upload every image the COLMAP model references into the channel's images/ folder (names are case-sensitive)",
)
OUTPUT_NOT_WRITABLE = _register(
    "file_permissions_paths", "output_not_writable", 44,
    "let the container's user write to /opt/ml (do not mount it read-only; run as root or chown it in the image)",
)
IMAGE_UNREADABLE = _register(
    "file_permissions_paths", "image_unreadable", 46,
    "re-upload the image files intact (JPEG or PNG); a partial S3 sync leaves truncated or empty files",
)
COLMAP_CAMERA_UNSUPPORTED = _register(
    "file_permissions_paths", "colmap_camera_unsupported", 47,
    "run `colmap image_undistorter` on the SfM output and upload its result (PINHOLE cameras)",
)
PERMISSION_DENIED = _register(
    "file_permissions_paths", "permission_denied", 45,
    "make the path readable/writable for the container's user",
)


def _single_line(text: str) -> str:
    return " ".join(text.split())


# Redaction before the text leaves the container: the failure reason is shown in the
# console, in events and in Slack. Patterns match the secret formats themselves.
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}(?![A-Z0-9])"), "[REDACTED:aws_key_id]"),
    (re.compile(r"(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{10,}"), "[REDACTED:slack_token]"),
    (re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}"), "[REDACTED:github_token]"),
    (re.compile(r"hooks\.slack\.com/[A-Za-z0-9_/\-]+"), "[REDACTED:slack_webhook_url]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[REDACTED:bearer]"),
    (re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s]+"), r"\1[REDACTED:presigned]"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1[REDACTED:password]@"),
    (
        re.compile(
            r"(?i)((?:secret|password|passwd|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
            r"[\w-]*[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{4,}"
        ),
        r"\1[REDACTED]",
    ),
)


def redact(text: str) -> str:
    """Masks credentials (AWS keys, tokens, passwords, presigned URLs) in ``text``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


class TrainingFailure(Exception):
    """A failure this image knows: raising it ends the job with its code and failure line."""

    def __init__(self, code: FailureCode, problem: str, remedy: str | None = None) -> None:
        self.code = code
        self.problem = problem
        self.remedy = remedy if remedy is not None else code.remedy
        super().__init__(self.line())

    @property
    def exit_code(self) -> int:
        return self.code.exit_code

    def line(self) -> str:
        """``[category/cause] problem: remedy`` on one line, redacted, at most 1,024 characters.

        When too long, the problem is cut and the remedy kept: the remedy is what the
        person reading the FailureReason acts on.
        """
        tag = self.code.tag + " "
        problem = redact(_single_line(self.problem))
        remedy = _shorten(redact(_single_line(self.remedy)), 400)
        room = MAX_FAILURE_CHARS - len(tag) - len(": ") - len(remedy)
        return f"{tag}{_shorten(problem, room)}: {remedy}"


class UnexpectedFailure(Exception):
    """An exception without a failure code: reported as type, message and traceback tail."""

    exit_code = UNEXPECTED_EXIT_CODE

    def __init__(self, exc: BaseException) -> None:
        self.original = exc
        super().__init__(self.line())

    def line(self) -> str:
        exc = self.original
        head = redact(_single_line(f"{type(exc).__name__}: {exc}"))
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        where = " | ".join(
            f'File "{f.filename}", line {f.lineno}, in {f.name}' + (f": {f.line.strip()}" if f.line else "")
            for f in frames
        )
        tail = " | " + redact(_single_line(f"Traceback (most recent call last, last {len(frames)} frames): {where}"))
        # The exception's own message matters most: keep it whole up to 3/4 of the budget.
        head = _shorten(head, MAX_FAILURE_CHARS * 3 // 4)
        return _shorten(head + (tail if frames else ""), MAX_FAILURE_CHARS)


_LIBRARY_DIRS = tuple(
    {str(Path(sysconfig.get_paths()[key]).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def _where(exc: BaseException) -> str:
    """The deepest frame in our code (not the standard library's or an installed package's):
    where the person reading the line would start looking."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    ours = [f for f in frames if not str(Path(f.filename).resolve()).startswith(_LIBRARY_DIRS)]
    frame = (ours or frames)[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"


def _is_cuda_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError exists since 2.5 (torch.cuda.OutOfMemoryError before); both are
    # RuntimeErrors whose message starts like this, which also covers torch without CUDA here.
    return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)


def failure_from_exception(exc: BaseException) -> TrainingFailure | UnexpectedFailure:
    """The failure to report for ``exc``: its own if it has one, a code for well-known
    exception types, and otherwise an uncoded line with the traceback tail."""
    if isinstance(exc, TrainingFailure):
        return exc
    message = _single_line(str(exc))
    if isinstance(exc, ModuleNotFoundError):
        return TrainingFailure(MODULE_NOT_FOUND, f"ModuleNotFoundError: {message}{_where(exc)}",
                               f"add the package providing {exc.name!r} (pinned) to training/requirements.txt "
                               "and rebuild the image" if exc.name else None)
    if isinstance(exc, ImportError):
        return TrainingFailure(IMPORT_FAILED, f"ImportError: {message}{_where(exc)}")
    if isinstance(exc, PermissionError):
        return TrainingFailure(PERMISSION_DENIED, f"PermissionError: {message}{_where(exc)}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return TrainingFailure(DISK_FULL, f"{type(exc).__name__}: {message}{_where(exc)}")
    if _is_cuda_out_of_memory(exc):
        return TrainingFailure(GPU_OUT_OF_MEMORY, f"{type(exc).__name__}: {message}{_where(exc)}")
    if isinstance(exc, RuntimeError) and "no kernel image is available for execution on the device" in message:
        return TrainingFailure(NO_KERNEL_IMAGE, f"{type(exc).__name__}: {message}{_where(exc)}")
    return UnexpectedFailure(exc)


def write_failure_file(path: Path, failure: TrainingFailure | UnexpectedFailure) -> str:
    """Writes the failure's line to ``path`` (SageMaker's ``/opt/ml/output/failure``).

    Returns the line. The write must not hide the failure it reports, so a folder that
    cannot be created or written is reported on stderr instead (the line still reaches
    CloudWatch, which is where the responder looks next).
    """
    line = failure.line()
    assert len(line) <= MAX_FAILURE_CHARS and "\n" not in line
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n", encoding="utf-8")
    except OSError as write_error:
        print(f"could not write the failure file {path}: {write_error}", file=sys.stderr)
    return line


def parse_failure_line(text: str) -> tuple[str, str] | None:
    """(category, cause) of a coded failure line, or None for an uncoded one."""
    match = TAG_PATTERN.match(text.strip())
    return (match["category"], match["cause"]) if match else None
