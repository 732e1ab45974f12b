"""The failure registry, the failure line, and how exceptions become failures."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest
import torch

from splat_trainer import failure as failure_module
from splat_trainer.failure import (
    DISK_FULL,
    FAILURE_CODES,
    GPU_OUT_OF_MEMORY,
    GUIDE_CATEGORIES,
    IMPORT_FAILED,
    MAX_FAILURE_CHARS,
    MODULE_NOT_FOUND,
    NO_KERNEL_IMAGE,
    PERMISSION_DENIED,
    UNEXPECTED_EXIT_CODE,
    TrainingFailure,
    UnexpectedFailure,
    failure_from_exception,
    parse_failure_line,
    redact,
    write_failure_file,
)

CODES = list(FAILURE_CODES.values())


@pytest.mark.parametrize("code", CODES, ids=lambda c: c.key)
def test_every_code_is_a_guide_category_with_a_snake_case_cause(code):
    assert code.category in GUIDE_CATEGORIES
    assert re.fullmatch(r"[a-z][a-z0-9_]*", code.cause)
    assert code.remedy.strip(), "a failure without a remedy tells the reader nothing to do"


def test_exit_codes_are_distinct_and_clear_of_success_and_unexpected():
    exit_codes = [c.exit_code for c in CODES]
    assert len(set(exit_codes)) == len(exit_codes)
    assert not {0, UNEXPECTED_EXIT_CODE} & set(exit_codes)
    assert all(10 <= c <= 125 for c in exit_codes)


@pytest.mark.parametrize(
    ("category", "cause", "exit_code", "complaint"),
    [
        ("unknown", "whatever", 99, "not one of the guide's ids"),
        ("cuda_gpu", "Not-Snake", 99, "snake_case"),
        ("cuda_gpu", "fresh_cause", NO_KERNEL_IMAGE.exit_code, "already used"),
        ("cuda_gpu", "fresh_cause", 1, "within 10..125"),
        ("cuda_gpu", "no_kernel_image", 98, "registered twice"),
    ],
)
def test_registry_rejects_a_bad_entry(category, cause, exit_code, complaint):
    before = dict(FAILURE_CODES)
    with pytest.raises(ValueError, match=complaint):
        failure_module._register(category, cause, exit_code, "do something")
    assert FAILURE_CODES == before


def test_line_is_tag_problem_and_remedy():
    failure = TrainingFailure(
        NO_KERNEL_IMAGE, "GPU sm_75 is not in the compiled archs 8.0;8.6", "rebuild with TORCH_CUDA_ARCH_LIST including 7.5"
    )
    assert failure.line() == (
        "[cuda_gpu/no_kernel_image] GPU sm_75 is not in the compiled archs 8.0;8.6: "
        "rebuild with TORCH_CUDA_ARCH_LIST including 7.5"
    )
    assert failure.exit_code == NO_KERNEL_IMAGE.exit_code
    assert parse_failure_line(failure.line()) == ("cuda_gpu", "no_kernel_image")


def test_line_uses_the_codes_remedy_when_none_is_given():
    assert TrainingFailure(IMPORT_FAILED, "import gsplat failed").line().endswith(": " + IMPORT_FAILED.remedy)


def test_multiline_problem_becomes_one_line():
    line = TrainingFailure(IMPORT_FAILED, "first\nsecond\r\n\tthird").line()
    assert "\n" not in line and "\r" not in line
    assert "first second third" in line


@pytest.mark.parametrize("problem_chars", [1_000, 5_000, 100_000])
def test_long_problem_is_cut_and_the_remedy_kept(problem_chars):
    line = TrainingFailure(DISK_FULL, "x" * problem_chars, "raise VolumeSizeInGB").line()
    assert len(line) <= MAX_FAILURE_CHARS
    assert line.startswith("[sagemaker_environment/disk_full] x")
    assert line.endswith("…: raise VolumeSizeInGB")


SECRETS = [
    ("aws key id", "credentials AKIAIOSFODNN7EXAMPLE were rejected", "AKIAIOSFODNN7EXAMPLE"),
    ("aws secret", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG"),
    ("password in url", "cannot reach https://admin:hunter2pass@db.internal/x", "hunter2pass"),
    ("presigned url", "GET https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef0123456789&X-Amz-Date=1", "abcdef0123456789"),
    ("slack token", "token xoxb-1234567890-abcdefghij failed", "xoxb-1234567890-abcdefghij"),
    ("bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("api key", "api_key: 'sk_live_0123456789abcdef'", "sk_live_0123456789abcdef"),
]


@pytest.mark.parametrize(("problem", "secret"), [s[1:] for s in SECRETS], ids=[s[0] for s in SECRETS])
def test_secrets_never_reach_the_failure_line(problem, secret):
    line = TrainingFailure(IMPORT_FAILED, problem).line()
    assert secret not in line
    assert "REDACTED" in line


def test_redaction_leaves_ordinary_text_alone():
    text = "GPU sm_75 is not in the compiled archs sm_80;sm_86 (Tesla T4, 15.6 GiB, token count 12)"
    assert redact(text) == text


# --- exceptions produced for real, then classified


def _raise_module_not_found():
    import splat_trainer_no_such_module  # noqa: F401


def _raise_import_error():
    from os import no_such_name  # noqa: F401


def _raise_disk_full():
    with open("/dev/full", "w") as device:
        device.write("x")


def _raise_permission_denied(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:
        (locked / "f").write_text("x")
    # root ignores file modes: act as nobody for the write (the real uid stays root, so the
    # effective one comes back in the finally)
    os.seteuid(65534)
    try:
        (locked / "f").write_text("x")
    finally:
        os.seteuid(0)


def _raise_cuda_out_of_memory():
    # No GPU here: the exception is torch's own class with the message torch's allocator writes.
    raise torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 14.58 GiB "
        "of which 1.02 GiB is free."
    )


def _raise_no_kernel_image():
    raise RuntimeError(
        "CUDA error: no kernel image is available for execution on the device\n"
        "CUDA kernel errors might be asynchronously reported at some other API call"
    )


@pytest.mark.parametrize(
    ("make_exception", "code", "in_line"),
    [
        (_raise_module_not_found, MODULE_NOT_FOUND, "No module named 'splat_trainer_no_such_module'"),
        (_raise_import_error, IMPORT_FAILED, "cannot import name 'no_such_name'"),
        (_raise_disk_full, DISK_FULL, "No space left on device"),
        (_raise_permission_denied, PERMISSION_DENIED, "Permission denied"),
        (_raise_cuda_out_of_memory, GPU_OUT_OF_MEMORY, "CUDA out of memory. Tried to allocate 2.00 GiB"),
        (_raise_no_kernel_image, NO_KERNEL_IMAGE, "no kernel image is available for execution on the device"),
    ],
    ids=["module_not_found", "import_error", "enospc", "permission", "cuda_oom", "no_kernel_image"],
)
def test_well_known_exceptions_get_their_code(make_exception, code, in_line, tmp_path):
    with pytest.raises(BaseException) as caught:
        if make_exception is _raise_permission_denied:
            make_exception(tmp_path)
        else:
            make_exception()
    failure = failure_from_exception(caught.value)
    assert isinstance(failure, TrainingFailure)
    assert failure.code is code
    line = failure.line()
    assert parse_failure_line(line) == (code.category, code.cause)
    assert in_line in line
    assert "test_failure.py:" in line, "the line says where the exception was raised"


def test_enospc_check_uses_errno():
    assert failure_from_exception(OSError(errno.ENOSPC, "No space left on device")).code is DISK_FULL
    assert isinstance(failure_from_exception(OSError(errno.EIO, "Input/output error")), UnexpectedFailure)


def _raise_key_error():
    settings = {"max_steps": 30000}
    return settings["missing_setting"]


def test_unexpected_exception_has_no_tag_and_ends_with_its_traceback():
    with pytest.raises(KeyError) as caught:
        _raise_key_error()
    failure = failure_from_exception(caught.value)
    assert isinstance(failure, UnexpectedFailure)
    assert failure.exit_code == UNEXPECTED_EXIT_CODE
    line = failure.line()
    assert parse_failure_line(line) is None, "an unexpected exception must not guess a category"
    assert line.startswith("KeyError: 'missing_setting' | Traceback (most recent call last")
    assert "in _raise_key_error: return settings[\"missing_setting\"]" in line
    assert "\n" not in line and len(line) <= MAX_FAILURE_CHARS


def test_unexpected_exception_with_huge_message_keeps_type_and_start_within_the_limit():
    with pytest.raises(ValueError) as caught:
        raise ValueError("bad value " + "y" * 5000 + " password=hunter2secret")
    line = failure_from_exception(caught.value).line()
    assert len(line) <= MAX_FAILURE_CHARS
    assert line.startswith("ValueError: bad value yyy")
    assert "hunter2secret" not in line


def test_failure_passes_through_unchanged():
    failure = TrainingFailure(DISK_FULL, "full")
    assert failure_from_exception(failure) is failure


def test_write_failure_file_writes_one_line(tmp_path):
    path = tmp_path / "output" / "failure"
    line = write_failure_file(path, TrainingFailure(DISK_FULL, "0.1 GiB free"))
    assert path.read_text() == line + "\n"
    assert line.startswith("[sagemaker_environment/disk_full] 0.1 GiB free: ")


def test_write_failure_file_reports_an_unwritable_path_on_stderr(tmp_path, capsys):
    blocker = tmp_path / "output"
    blocker.write_text("a file where the output folder should be")
    line = write_failure_file(blocker / "failure", TrainingFailure(DISK_FULL, "0.1 GiB free"))
    assert line.startswith("[sagemaker_environment/disk_full]")
    assert f"could not write the failure file {blocker / 'failure'}" in capsys.readouterr().err


README = Path(__file__).resolve().parents[2] / "training" / "README.md"


@pytest.mark.parametrize("code", CODES, ids=lambda c: c.key)
def test_readme_lists_every_code_with_its_exit_code(code):
    # The on-call reader's table must not drift from the registry.
    assert f"| {code.exit_code} | `{code.tag}` |" in README.read_text()


def test_readme_lists_no_code_the_registry_lacks():
    listed = set(re.findall(r"^\| \d+ \| `\[([a-z_]+/[a-z0-9_]+)\]` \|", README.read_text(), re.MULTILINE))
    assert listed == set(FAILURE_CODES)
