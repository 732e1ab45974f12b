"""Triage latency, AWS calls per incident and the handler's cold import time, in one run.

Against the embedded emulator (moto over HTTP on loopback), each run triages a fresh failed
training job end to end: parse, gather evidence, classify, record the incident, post to the
local Slack receiver and publish to SNS. The baseline is the troubleshooting guide's manual
procedure done by a script: read the whole log stream from its head, the whole execution
history, then classify everything.

The handler's cold import (`-X importtime`, cumulative) is measured where the function runs:
CPython 3.12 with the package `sam build` ships (built by the same `make -C functions
build-TriageFunction` that sam build runs: the requirements, our package and its CPython 3.12
bytecode), then the boto3/botocore that Lambda's python3.12 runtime provides, and nothing else on
sys.path. The package bundles boto3 and botocore, so the runtime's come after them on sys.path and
are shadowed: boto3 is imported from the package, as in Lambda. Comparison rows: the same
requirements as sam build's default python_pip builder packs them (no bytecode, so every cold
start compiles), and the dev venv. The Lambda environments are built in .bench-env/ (needs
python3.12, make and a package index) and rebuilt when functions/ changes.

    python bench/triage_latency.py [--runs 50] [--log-lines 5000] [--json OUT]
    python bench/triage_latency.py --import-only [--import-repeats 7]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from incident_responder.classify import classify  # noqa: E402
from incident_responder.clients import make_clients  # noqa: E402
from incident_responder.demo.emulator import EMULATOR_CREDENTIALS, start_emulator  # noqa: E402
from incident_responder.demo.provision import (  # noqa: E402
    TRAINING_LOG_GROUP,
    create_incident_table,
    create_topic_with_inbox,
    create_training_job,
    push_images,
    write_training_log,
)
from incident_responder.demo.run import training_job_event  # noqa: E402
from incident_responder.demo.slack_receiver import SlackReceiver  # noqa: E402
from incident_responder.runtime import ResponderSettings, build_runtime  # noqa: E402
from incident_responder.respond import handle_event  # noqa: E402

REGION = "us-west-2"
TARGETS = {"p50_ms": 300.0, "api_calls": 12, "import_ms": 400.0}
HANDLER_MODULE = "incident_responder.handlers.triage"


def _training_log(lines: int) -> list[str]:
    progress = [
        f"step={i * 10}/30000 loss=0.{4000 - i % 3000:04d} psnr=2{i % 10}.1 gaussians={100000 + i * 37} "
        f"steps_per_s=41.2 eta=21m{i % 60:02d}s"
        for i in range(lines)
    ]
    return progress + [
        "Traceback (most recent call last):",
        '  File "/opt/ml/code/splat_trainer/trainer.py", line 402, in train',
        "    loss.backward()",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.29 GiB. GPU 0 has a total "
        "capacity of 14.58 GiB of which 1.12 GiB is free.",
    ]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _baseline(clients: Any, event: dict[str, Any]) -> None:
    """The guide's Step 2 by script: the whole stream from its head, then classify it all."""
    job = event["detail"]["TrainingJobName"]
    clients.sagemaker.describe_training_job(TrainingJobName=job)
    streams = clients.logs.describe_log_streams(logGroupName=TRAINING_LOG_GROUP, logStreamNamePrefix=job + "/")
    lines: list[str] = []
    for stream in streams["logStreams"]:
        token = None
        while True:
            kwargs = {"logGroupName": TRAINING_LOG_GROUP, "logStreamName": stream["logStreamName"],
                      "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            page = clients.logs.get_log_events(**kwargs)
            lines += [e["message"] for e in page["events"]]
            if not page["events"] or page.get("nextForwardToken") == token:
                break
            token = page.get("nextForwardToken")
    reason = event["detail"].get("FailureReason", "")
    classify("\n".join([reason, *lines]), trusted_lines=len(reason.splitlines()))


def _time_runs(runs: int, prepare: Callable[[], Any], act: Callable[[Any], Any]) -> list[float]:
    timings = []
    for _ in range(runs):
        item = prepare()
        start = time.perf_counter()
        act(item)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def measure_triage(runs: int, log_lines: int) -> dict[str, Any]:
    with start_emulator() as emulator, SlackReceiver() as slack:
        # Provisioning goes through its own clients so that only triage calls are counted.
        setup = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        clients = make_clients(region=REGION, endpoint_url=emulator.url, credentials=EMULATOR_CREDENTIALS)
        create_incident_table(setup, "bench-incidents")
        topic_arn, _ = create_topic_with_inbox(setup, "bench-alerts")
        setup.secretsmanager.create_secret(Name="bench-slack", SecretString=json.dumps({"webhook_url": slack.url}))
        image = push_images(setup, "spaceport/3dgs", ["latest"])[0]
        settings = ResponderSettings(region=REGION, endpoint_url=emulator.url, incident_table="bench-incidents",
                                     sns_topic_arn=topic_arn, slack_webhook_secret_arn="bench-slack",
                                     log_wait_seconds=0)
        runtime = build_runtime(settings, clients=clients)
        log = _training_log(log_lines)

        def failed_job() -> dict[str, Any]:
            job = f"3dgs-bench-{uuid.uuid4().hex[:12]}"
            create_training_job(setup, job, image_uri=image)
            emulator.fail_training_job(job, "AlgorithmError: , exit code: 1", region=REGION)
            write_training_log(setup, job, log)
            return training_job_event(setup.sagemaker.describe_training_job(TrainingJobName=job), REGION)

        calls: list[int] = []
        verdicts: set[str] = set()

        def triage(event: dict[str, Any]) -> None:
            outcome = handle_event(event, runtime)
            calls.append(outcome.api_calls)
            verdicts.add(f"{outcome.outcome}:{outcome.category}/{outcome.cause}")

        _time_runs(3, failed_job, triage)  # warm-up: connections, rule catalog
        calls.clear()
        ours = _time_runs(runs, failed_job, triage)
        baseline_runs = max(10, runs // 5)
        baseline_calls_before = clients.counter.count
        baseline = _time_runs(baseline_runs, failed_job, lambda e: _baseline(clients, e))
        baseline_calls = (clients.counter.count - baseline_calls_before) / baseline_runs
        return {
            "runs": runs,
            "log_lines": log_lines,
            "p50_ms": statistics.median(ours),
            "p95_ms": _percentile(ours, 0.95),
            "max_ms": max(ours),
            "api_calls_max": max(calls),
            "api_calls_mean": statistics.mean(calls),
            "verdicts": sorted(verdicts),
            "baseline_p50_ms": statistics.median(baseline),
            "baseline_p95_ms": _percentile(baseline, 0.95),
            "baseline_calls_per_incident": baseline_calls,
        }


# The same Powertools set-up as the handler with an empty handler: what any such function pays.
POWERTOOLS_SKELETON = """
import os
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent
logger, tracer, metrics = Logger(), Tracer(), Metrics()
persistence = DynamoDBPersistenceLayer(table_name=os.environ["INCIDENT_TABLE"])
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent(config=IdempotencyConfig(event_key_jmespath="id"), persistence_store=persistence)
def handler(event, context):
    return {}
"""

# boto3 and botocore as Lambda's python3.12 runtime provides them. AWS no longer publishes the
# version (https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html#python-sdk-included says
# to print boto3.__version__ from a function: it varies by Region and over time); 1.38.36 is what
# python3.12 and python3.13 functions printed in August 2025, reported in
# https://github.com/terricain/aioboto3/issues/381. BENCH_LAMBDA_BOTO3=X.Y.Z overrides it.
LAMBDA_RUNTIME_BOTO3 = os.environ.get("BENCH_LAMBDA_BOTO3", "1.38.36")
BENCH_ENV = ROOT / ".bench-env"
FUNCTIONS = ROOT / "functions"


def find_python312() -> str:
    """A python3.12 that really is CPython 3.12 (a pyenv shim may point elsewhere)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which("python3.12"), *sorted(pyenv_root.glob("versions/3.12*/bin/python3.12"), reverse=True)]
    for candidate in filter(None, candidates):
        probe = subprocess.run([str(candidate), "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return str(candidate)
    raise SystemExit("the Lambda-faithful import bench needs CPython 3.12 (the functions' runtime): "
                     "pyenv install 3.12, or put python3.12 on PATH")


def _sources_digest() -> str:
    """What a function's build depends on: functions/Makefile, requirements.txt and our package."""
    digest = hashlib.sha256()
    files = [FUNCTIONS / "Makefile", FUNCTIONS / "requirements.txt",
             *sorted(p for p in (FUNCTIONS / "incident_responder").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")]
    for path in files:
        digest.update(str(path.relative_to(FUNCTIONS)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Build into target unless a complete build is there; drop older builds of the same kind."""
    if not (target / ".complete").is_file():
        for old in target.parent.glob(target.name.rsplit("-", 1)[0] + "-*"):
            shutil.rmtree(old, ignore_errors=True)
        print(f"building {target.relative_to(ROOT)} ...", file=sys.stderr)
        build(target)
        (target / ".complete").write_text("")
    return target


def lambda_environment() -> dict[str, Path | str]:
    """Folders laid out like the deployed TriageFunction, built in .bench-env/ and rebuilt only
    when functions/Makefile, functions/requirements.txt or the package change.

    shipped   what `sam build` puts in /var/task: `make -C functions build-TriageFunction`, the
              target sam build runs (functions/Makefile): the requirements (boto3 included) from
              Lambda-compatible wheels, our package, and CPython 3.12 unchecked-hash .pyc.
    python_pip  the same requirements and package as sam build's default python_pip builder packs
              them (aws-lambda-builders, run here as sam build runs it): wheels unzipped, every
              *.pyc and __pycache__ left out. The comparison row: what we shipped before.
    runtime   what the python3.12 runtime adds after /var/task on sys.path: boto3 and botocore
              LAMBDA_RUNTIME_BOTO3 (compiled, as the runtime ships them). Both packages bundle
              boto3 and botocore (functions/requirements.txt), which come first on sys.path and
              shadow the runtime's: boto3 is imported from the package, as it is in Lambda.
    """
    python = find_python312()
    key = _sources_digest()

    def make(target: Path) -> None:
        subprocess.run(["make", "--no-print-directory", "-C", str(FUNCTIONS), "build-TriageFunction",
                        f"ARTIFACTS_DIR={target}", f"PYTHON312={python}"], check=True, stdout=subprocess.DEVNULL)

    def python_pip(target: Path) -> None:
        from aws_lambda_builders.builder import LambdaBuilder

        scratch = target.with_name(target.name + ".scratch")
        shutil.rmtree(scratch, ignore_errors=True)
        LambdaBuilder(language="python", dependency_manager="pip", application_framework=None).build(
            str(FUNCTIONS), str(target), str(scratch), str(FUNCTIONS / "requirements.txt"),
            runtime="python3.12", executable_search_paths=[str(Path(python).parent)], architecture="x86_64")
        shutil.rmtree(scratch, ignore_errors=True)

    def runtime(target: Path) -> None:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", str(target), f"boto3=={LAMBDA_RUNTIME_BOTO3}",
                        f"botocore=={LAMBDA_RUNTIME_BOTO3}"], check=True)

    def skeleton(target: Path, compiled: bool) -> Path:
        """The Powertools skeleton as a module of the package: with its .pyc in the shipped one."""
        target.mkdir(parents=True, exist_ok=True)
        source = target / "powertools_skeleton.py"
        if not source.is_file() or source.read_text() != POWERTOOLS_SKELETON:
            shutil.rmtree(target / "__pycache__", ignore_errors=True)
            source.write_text(POWERTOOLS_SKELETON)
        if compiled:
            subprocess.run([python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(target)],
                           check=True)
        return target

    return {
        "python": python,
        "shipped": _build_once(BENCH_ENV / f"shipped-{key}", make),
        "python_pip": _build_once(BENCH_ENV / f"python-pip-{key}", python_pip),
        "runtime": _build_once(BENCH_ENV / f"runtime-boto3-{LAMBDA_RUNTIME_BOTO3}", runtime),
        "skeleton_pyc": skeleton(BENCH_ENV / "skeleton-pyc", compiled=True),
        "skeleton_src": skeleton(BENCH_ENV / "skeleton-src", compiled=False),
    }


def import_environments() -> list[dict[str, Any]]:
    """Where the handler's import is measured. In all of them LAMBDA_TASK_ROOT is set (the X-Ray
    SDK then skips its sampling clients) and the function's environment variables are set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    base.update({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "INCIDENT_TABLE": "incidents",
                 "AWS_LAMBDA_FUNCTION_NAME": "incident-responder-triage",
                 "POWERTOOLS_SERVICE_NAME": "incident-responder"})
    built = lambda_environment()

    def in_lambda(task: Path, skeleton: Path) -> dict[str, str]:
        # -S: nothing on sys.path but the stdlib, /var/task and the runtime's boto3. /var/task is
        # read-only in Lambda: bytecode is read from the package if it is there, never written.
        return {**base, "PYTHONPATH": os.pathsep.join(map(str, (task, skeleton, built["runtime"]))),
                "LAMBDA_TASK_ROOT": str(task), "PYTHONDONTWRITEBYTECODE": "1"}

    dev_skeleton = BENCH_ENV / "dev-skeleton"
    dev_skeleton.mkdir(parents=True, exist_ok=True)
    (dev_skeleton / "powertools_skeleton.py").write_text(POWERTOOLS_SKELETON)
    return [
        {"name": "lambda", "label": "Lambda python3.12, as `sam build` ships it (.pyc, boto3 bundled)",
         "argv": [built["python"], "-S"], "prelude": "",
         "env": in_lambda(built["shipped"], built["skeleton_pyc"]), "warm_up": False},
        {"name": "lambda_no_pyc", "label": "  without bytecode (sam build's default python_pip build)",
         "argv": [built["python"], "-S"], "prelude": "",
         "env": in_lambda(built["python_pip"], built["skeleton_src"]), "warm_up": False},
        {"name": "dev", "label": f"dev venv (Python {sys.version_info[0]}.{sys.version_info[1]}, .pyc, no awscrt)",
         # Lambda's runtime has no awscrt, which botocore imports wherever it is installed
         # (aws-sam-cli installs it here); pyOpenSSL and cryptography (moto, sam-cli) stay, and
         # botocore.httpsession imports them: this row is the dev machine, not Lambda.
         "argv": [sys.executable], "prelude": "import sys; sys.modules['awscrt'] = None; ",
         "env": {**base, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(dev_skeleton)]),
                 "LAMBDA_TASK_ROOT": str(ROOT / "functions"),
                 "PYTHONPYCACHEPREFIX": str(BENCH_ENV / "dev-pycache")}, "warm_up": True},
    ]


def _cumulative_ms(env: dict[str, Any], modules: tuple[str, ...]) -> dict[str, float]:
    """Cumulative `-X importtime` of each module, imported in this order in one fresh interpreter."""
    code = env["prelude"] + "; ".join(f"import {m}" for m in modules)
    result = subprocess.run([*env["argv"], "-X", "importtime", "-c", code], env=env["env"],
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{env['name']}: import failed:\n{result.stderr[-3000:]}")
    found: dict[str, float] = {}
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() in modules and parts[2].startswith(" " + parts[2].strip()):
            found[parts[2].strip()] = int(parts[1]) / 1000  # top level only: not a nested re-import
    missing = [m for m in modules if m not in found]
    if missing:
        raise RuntimeError(f"{env['name']}: {missing} not in -X importtime output")
    return found


def measure_import(repeats: int = 7) -> dict[str, Any]:
    """Median cumulative `-X importtime` of the handler module, the Powertools skeleton and boto3,
    each in a fresh interpreter, interleaved so that machine noise hits all alike."""
    envs = import_environments()
    for env in envs:
        if env["warm_up"]:  # compile once, so that the timed runs read bytecode
            for modules in ((HANDLER_MODULE,), ("powertools_skeleton",), ("boto3",)):
                _cumulative_ms(env, modules)
    runs: dict[str, dict[str, list[float]]] = {
        env["name"]: {"handler": [], "skeleton": [], "boto3": []} for env in envs}
    for _ in range(repeats):
        for env in envs:
            row = runs[env["name"]]
            row["handler"].append(_cumulative_ms(env, (HANDLER_MODULE,))[HANDLER_MODULE])
            row["skeleton"].append(_cumulative_ms(env, ("powertools_skeleton",))["powertools_skeleton"])
            row["boto3"].append(_cumulative_ms(env, ("boto3",))["boto3"])
    figures: dict[str, Any] = {"import_repeats": repeats, "lambda_runtime_boto3": LAMBDA_RUNTIME_BOTO3,
                               "import_envs": {}}
    for env in envs:
        row = runs[env["name"]]
        figures["import_envs"][env["name"]] = {
            "label": env["label"].strip(), "python": env["argv"][0],
            **{f"{k}_ms": statistics.median(v) for k, v in row.items()},
            "handler_ms_min": min(row["handler"]),
        }
    primary = figures["import_envs"]["lambda"]
    figures.update(import_ms=primary["handler_ms"], import_ms_min=primary["handler_ms_min"],
                   skeleton_import_ms=primary["skeleton_ms"], boto3_import_ms=primary["boto3_ms"])
    return figures


def print_import_table(figures: dict[str, Any]) -> None:
    target = TARGETS["import_ms"]
    print(f"\nhandler cold import: cumulative -X importtime (ms), median of {figures['import_repeats']}, interleaved")
    print(f"{'environment':<68} {'handler':>7} {'skeleton':>8} {'boto3':>6}  target  met")
    for name, row in figures["import_envs"].items():
        label = ("  " if name == "lambda_no_pyc" else "") + row["label"]
        print(f"{label:<68} {row['handler_ms']:>7.0f} {row['skeleton_ms']:>8.0f} {row['boto3_ms']:>6.0f} "
              f" < {target:.0f}  {'yes' if row['handler_ms'] < target else 'NO'}")
    print("skeleton: the handler's Powertools set-up (Logger, Tracer, Metrics, idempotency on DynamoDB) around an "
          "empty handler. handler: everything the function does at init, the rule catalog's parsing and "
          "compilation included; only AWS clients and the Slack secret wait for the first event.")
    print(f"Lambda rows: {Path(figures['import_envs']['lambda']['python']).name}, the package built as `sam build` "
          f"builds it (functions/Makefile; python_pip for the comparison row), boto3/botocore "
          f"{figures['lambda_runtime_boto3']} as the runtime's after it on sys.path (shadowed by the boto3 and "
          f"botocore the package bundles), nothing else on sys.path.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--log-lines", type=int, default=5000, help="progress lines before the error")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--import-only", action="store_true", help="only the handler's cold import")
    parser.add_argument("--import-repeats", type=int, default=7)
    parser.add_argument("--no-import", action="store_true", help="skip the cold-import measurement")
    args = parser.parse_args(argv)

    figures: dict[str, Any] = {}
    if not args.import_only:
        figures.update(measure_triage(args.runs, args.log_lines))
    if not args.no_import:
        figures.update(measure_import(args.import_repeats))
    if not args.import_only:
        rows = [
            ("event-to-report p50 (ms)", f"{figures['p50_ms']:.0f}", f"{figures['baseline_p50_ms']:.0f}",
             f"< {TARGETS['p50_ms']:.0f}", figures["p50_ms"] < TARGETS["p50_ms"]),
            ("event-to-report p95 (ms)", f"{figures['p95_ms']:.0f}", f"{figures['baseline_p95_ms']:.0f}", "", None),
            ("AWS API calls per incident (max)", f"{figures['api_calls_max']}",
             f"{figures['baseline_calls_per_incident']:.0f}", f"<= {TARGETS['api_calls']}",
             figures["api_calls_max"] <= TARGETS["api_calls"]),
        ]
        print(f"Triage against the emulator: {figures['runs']} runs, {figures['log_lines']} log lines per job "
              f"(verdicts: {', '.join(figures['verdicts'])})")
        print(f"{'measure':<36} {'ours':>8} {'baseline':>8} {'target':>8}  met")
        for name, ours, base, target, met in rows:
            print(f"{name:<36} {ours:>8} {base:>8} {target:>8}  {'' if met is None else ('yes' if met else 'NO')}")
        print("baseline: the guide's manual steps, scripted: DescribeTrainingJob, the whole log stream "
              "from its head, classify all (no store, no notifications).")
    if not args.no_import:
        print_import_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
