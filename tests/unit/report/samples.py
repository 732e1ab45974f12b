"""Test data: an incident factory, every secret format we redact, and benign 3DGS lines.

Secrets are assembled at import time from prefixes and generated characters so that no
secret-shaped literal sits in the repository for a scanner to flag.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from incident_responder.evidence import GatherSettings, resolve_subject
from incident_responder.evidence.base import GatherState
from incident_responder.links import console_links
from incident_responder.models import (
    Category,
    Diagnosis,
    Evidence,
    EvidenceLine,
    ExecutionEvidence,
    FailureEvent,
    ImageEvidence,
    Incident,
    IntakeError,
    LogEvidence,
    LogStreamTail,
    Missing,
    Subject,
    TrainingJobEvidence,
)

_rng = random.Random(20261129)
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits


def _chars(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _aws_secret_key() -> str:
    # Always mixed case, digits and a slash, like a real one.
    return _chars(18) + "/" + _chars(10) + "+" + "aZ9" + _chars(7)


@dataclass(frozen=True)
class SecretSample:
    id: str
    kind: str
    line: str
    secrets: tuple[str, ...]


ACCESS_KEY_ID = "AKIA" + _chars(16, _UPPER_DIGITS)
TEMP_ACCESS_KEY_ID = "ASIA" + _chars(16, _UPPER_DIGITS)
SECRET_KEY = _aws_secret_key()
SECRET_KEY_2 = _aws_secret_key()
SECRET_KEY_3 = _aws_secret_key()
SECRET_KEY_4 = _aws_secret_key()
SESSION_TOKEN = "IQoJb3JpZ2luX2Vj" + _chars(120) + "/" + _chars(40) + "=="
OLD_SESSION_TOKEN = "Fwo" + "GZXIvYXdzE" + _chars(90)
SLACK_WEBHOOK = "https://hooks.slack.com/services/T" + _chars(8, _UPPER_DIGITS) + "/B" + _chars(8, _UPPER_DIGITS) + "/" + _chars(24)
PRIVATE_KEY_BODY = "\n".join(_chars(64, _ALNUM + "+/") for _ in range(4))
JWT = "eyJ" + _chars(30) + "." + "eyJ" + _chars(40) + "." + _chars(43, _ALNUM + "-_")
URL_PASSWORD = "p4ss" + _chars(12)

SECRET_SAMPLES: tuple[SecretSample, ...] = (
    SecretSample("aws_access_key_id_akia", "aws_access_key_id",
                 f"botocore.credentials: using access key {ACCESS_KEY_ID}", (ACCESS_KEY_ID,)),
    SecretSample("aws_access_key_id_asia", "aws_access_key_id",
                 f"AWS_ACCESS_KEY_ID={TEMP_ACCESS_KEY_ID}", (TEMP_ACCESS_KEY_ID,)),
    SecretSample("aws_secret_ini", "aws_secret_access_key",
                 f"aws_secret_access_key = {SECRET_KEY}", (SECRET_KEY,)),
    SecretSample("aws_secret_env", "aws_secret_access_key",
                 f"+ export AWS_SECRET_ACCESS_KEY={SECRET_KEY_2}", (SECRET_KEY_2,)),
    SecretSample("aws_secret_json", "aws_secret_access_key",
                 f'{{"AccessKeyId": "{TEMP_ACCESS_KEY_ID}", "SecretAccessKey": "{SECRET_KEY_3}", "Expiration": "2026-11-29T02:00:00Z"}}',
                 (TEMP_ACCESS_KEY_ID, SECRET_KEY_3)),
    # `aws configure`'s prompts, as a terminal session pasted into an issue shows them (wave 6 of the corpus, ph001)
    SecretSample("aws_secret_configure_prompt", "aws_secret_access_key",
                 f"AWS Secret Access Key [None]: {SECRET_KEY}", (SECRET_KEY,)),
    SecretSample("aws_secret_configure_prompt_with_current", "aws_secret_access_key",
                 f"AWS Secret Access Key [****************{SECRET_KEY_2[-4:]}]: {SECRET_KEY_2}", (SECRET_KEY_2,)),
    SecretSample("aws_secret_configure_set", "aws_secret_access_key",
                 f"+ aws configure set aws_secret_access_key {SECRET_KEY_3} --profile ci", (SECRET_KEY_3,)),
    SecretSample("aws_secret_csv_next_to_key_id", "aws_secret_access_key",
                 f"{ACCESS_KEY_ID},{SECRET_KEY_4}", (ACCESS_KEY_ID, SECRET_KEY_4)),
    SecretSample("aws_session_token_ini", "aws_session_token",
                 f"aws_session_token={SESSION_TOKEN}", (SESSION_TOKEN,)),
    SecretSample("aws_session_token_json", "aws_session_token",
                 f'"SessionToken": "{OLD_SESSION_TOKEN}"', (OLD_SESSION_TOKEN,)),
    SecretSample("aws_session_token_bare", "aws_session_token",
                 f"token refreshed: {SESSION_TOKEN}", (SESSION_TOKEN,)),
    *(
        SecretSample(f"slack_token_{prefix.rstrip('-')}", "slack_token", f"SLACK_TOKEN={value}", (value,))
        for prefix, value in (
            ("xoxb-", "xoxb-" + _chars(11, string.digits) + "-" + _chars(13, string.digits) + "-" + _chars(24)),
            ("xoxp-", "xoxp-" + _chars(11, string.digits) + "-" + _chars(12, string.digits) + "-" + _chars(32)),
            ("xoxa-", "xoxa-2-" + _chars(40)),
            ("xapp-", "xapp-1-A" + _chars(10, _UPPER_DIGITS) + "-" + _chars(13, string.digits) + "-" + _chars(64, "0123456789abcdef")),
        )
    ),
    SecretSample("slack_webhook_url", "slack_webhook_url",
                 f"posting to {SLACK_WEBHOOK} failed", (SLACK_WEBHOOK.split("://", 1)[1],)),
    *(
        SecretSample(f"github_token_{prefix.rstrip('_')}", "github_token", f"git clone https://x-access-token@github.com (token {value})", (value,))
        for prefix, value in (
            (p, p + _chars(36)) for p in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
        )
    ),
    SecretSample("github_fine_grained_pat", "github_token",
                 "GH_TOKEN=github_pat_11" + (pat := _chars(20, _UPPER_DIGITS) + "_" + _chars(59)), ("github_pat_11" + pat,)),
    SecretSample("authorization_bearer_header", "bearer_token",
                 f"> Authorization: Bearer {JWT}", (JWT,)),
    SecretSample("authorization_bearer_json", "bearer_token",
                 f'{{"headers": {{"Authorization": "Bearer {JWT[::-1]}"}}}}', (JWT[::-1],)),
    SecretSample("url_password", "url_password",
                 f"connecting to postgresql://mlops:{URL_PASSWORD}@db.internal:5432/runs", (URL_PASSWORD,)),
    SecretSample("url_password_https", "url_password",
                 f"pip install --index-url https://ci:{URL_PASSWORD[::-1]}@pypi.example.com/simple gsplat", (URL_PASSWORD[::-1],)),
    SecretSample("private_key_rsa", "private_key",
                 "-----BEGIN RSA PRIVATE KEY-----\n" + PRIVATE_KEY_BODY + "\n-----END RSA PRIVATE KEY-----",
                 tuple(PRIVATE_KEY_BODY.splitlines())),
    SecretSample("private_key_openssh_cut_off", "private_key",
                 "id_ed25519 contents:\n-----BEGIN OPENSSH PRIVATE KEY-----\n" + PRIVATE_KEY_BODY[::-1],
                 tuple(PRIVATE_KEY_BODY[::-1].splitlines())),
)

# Ordinary lines from 3DGS training logs and AWS output that must come through unchanged.
BENIGN_LINES: tuple[str, ...] = (
    "Loading 110 images from /opt/ml/input/data/training/images (640x480)",
    "Image: 123456789012.dkr.ecr.us-west-2.amazonaws.com/spaceport/3dgs@sha256:" + "3f9a" * 16,
    "ECR URI: 975050048887.dkr.ecr.us-west-2.amazonaws.com/spaceport/3dgs:latest",
    "arn:aws:sagemaker:us-west-2:123456789012:training-job/3dgs-prod-validation-1764378390",
    "arn:aws:states:us-west-2:975050048887:execution:SpaceportMLPipeline:prod-validation-1750876231",
    "arn:aws:iam::123456789012:role/SpaceportSageMakerRole",
    "s3://spaceport-ml-123456789012/colmap/3dgs-prod-validation-1764378390/sparse/0/points3D.bin",
    "Step 7000/30000 loss=0.0213 psnr=30.61 ssim=0.912 num_GS=1523334 mem=0.85GiB",
    "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 (HEAD -> main)",
    "RequestId: 5f3c2a1b-9e8d-4c7b-a6f5-e4d3c2b1a098",
    "RuntimeError: CUDA error: no kernel image is available for execution on the device",
    'exec: "train": executable file not found in $PATH',
    "Collecting gsplat@ git+https://github.com/nerfstudio-project/gsplat.git@v1.5.3",
    "Downloading https://download.pytorch.org/whl/cu118/torch-2.0.1%2Bcu118-cp310-cp310-linux_x86_64.whl",
    "aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}",
    "role-to-assume: ${{ secrets.AWS_ROLE_TO_ASSUME }}",
    "AWS_SESSION_TOKEN is not set; using the instance role",
    "Bearer token missing from request",
    "X-Amzn-Trace-Id: Root=1-6749a1b2-0123456789abcdef01234567",
    "x-amz-id-2: " + "Zk3mQ9pL2vT8xR4nW7yB1cH6jD0sF5gA3eK9uI2oP8lM4zN7qV1wX6tY0rE5bU3",
    "checkpoint ckpt_6999.pt saved to /opt/ml/checkpoints/ckpt_6999.pt",
    "http://169.254.170.2/v2/credentials/2f1e0d9c-8b7a-4c6d-9e5f-1a2b3c4d5e6f",
    "ssh://git@github.com:22/org/repo.git",
    "Connecting to https://sagemaker.us-west-2.amazonaws.com:443 (attempt 2/5)",
)

EVENT_TIME = datetime(2026, 11, 29, 1, 20, 5, tzinfo=timezone.utc)
JOB = "3dgs-prod-validation-1764378390"
ACCOUNT = "123456789012"
REGION = "us-west-2"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/spaceport/3dgs:latest"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
LOG_STREAM = f"{JOB}/algo-1-1764378580"
EXECUTION_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:SpaceportMLPipeline:prod-validation-1764378390"


def make_event(**overrides: Any) -> FailureEvent:
    fields: dict[str, Any] = dict(
        source="sagemaker",
        event_id="0f8a6b1e-6c1d-4f5e-9a55-2d1c1f0c8e01",
        region=REGION,
        account=ACCOUNT,
        time=EVENT_TIME,
        status="Failed",
        training_job_name=JOB,
        training_job_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{JOB}",
        failure_reason='AlgorithmError: framework error: exec: "train": executable file not found in $PATH',
        image_uri=IMAGE_URI,
        secondary_status="Failed",
    )
    fields.update(overrides)
    return FailureEvent(**fields)


def subject_of(event: FailureEvent, evidence: Evidence) -> Subject:
    """The subject evidence gathering would resolve from this event and evidence."""
    job = evidence.training_job
    state = GatherState(
        event=event, settings=GatherSettings(), sleep=lambda _s: None,
        training_job_name=event.training_job_name or (job.name if job else None)
        or (evidence.execution.training_job_name if evidence.execution else None),
        image_uri=event.image_uri or (job.image_uri if job else None) or (evidence.image.uri if evidence.image else None),
        training_job=job, logs=evidence.logs, execution=evidence.execution, image=evidence.image,
    )
    return resolve_subject(state)


def make_evidence(*, log_lines: list[str] | None = None, event: FailureEvent | None = None,
                  **overrides: Any) -> Evidence:
    fields: dict[str, Any] = dict(
        training_job=TrainingJobEvidence(
            name=JOB,
            status="Failed",
            failure_reason='AlgorithmError: framework error: exec: "train": executable file not found in $PATH',
            image_uri=IMAGE_URI,
            instance_type="ml.g4dn.xlarge",
            instance_count=1,
        ),
        logs=LogEvidence(
            group=LOG_GROUP,
            streams=[
                LogStreamTail(
                    stream=LOG_STREAM,
                    lines=log_lines
                    if log_lines is not None
                    else ['exec: "train": executable file not found in $PATH'],
                )
            ],
        ),
        execution=ExecutionEvidence(execution_arn=EXECUTION_ARN, status="FAILED", failed_state="Train3DGS",
                                    training_job_name=JOB),
        image=ImageEvidence(uri=IMAGE_URI, repository="spaceport/3dgs", tag="latest",
                            digest="sha256:" + "3f9a" * 16),
        missing=[Missing(source="logs", reason="only 1 of 2 log streams readable (algo-2 not found)")],
        api_calls=5,
    )
    fields.update(overrides)
    fields.setdefault("subject", Subject(region=REGION))
    evidence = Evidence(**fields)
    if "subject" in overrides:
        return evidence
    return evidence.model_copy(update={"subject": subject_of(event or make_event(), evidence)})


def make_diagnosis(**overrides: Any) -> Diagnosis:
    fields: dict[str, Any] = dict(
        category=Category.entry_point,
        cause="train_argument_replaces_cmd",
        confidence=0.92,
        title='SageMaker ran the image with "train", which replaced the Dockerfile CMD',
        rule_id="entry_point.train_argument",
        evidence=[
            EvidenceLine(line=1, text='exec: "train": executable file not found in $PATH', source=f"log:{LOG_STREAM}"),
        ],
        remediation=[
            "Use an exec-form ENTRYPOINT that accepts and ignores the `train` argument.",
            "Rebuild and push the image, then rerun the pipeline.",
        ],
        commands=[
            f"aws sagemaker describe-training-job --training-job-name {JOB}",
            f"aws logs get-log-events --log-group-name {LOG_GROUP} --log-stream-name {LOG_STREAM}",
        ],
    )
    fields.update(overrides)
    return Diagnosis(**fields)


def make_incident(*, event: FailureEvent | None = None, evidence: Evidence | None = None,
                  diagnosis: Diagnosis | None = None, **overrides: Any) -> Incident:
    event = event or make_event()
    evidence = evidence or make_evidence(event=event)
    subject = subject_of(event, evidence)
    fields: dict[str, Any] = dict(
        key=f"training-job:{REGION}:{JOB}",
        subject=subject,
        event=event,
        evidence=evidence.model_copy(update={"subject": subject}),
        diagnosis=diagnosis or make_diagnosis(),
        links=console_links(subject),
        names=subject.template_names(),
        created_at=EVENT_TIME,
    )
    fields.update(overrides)
    return Incident(**fields)


def make_intake_error(**overrides: Any) -> IntakeError:
    fields: dict[str, Any] = dict(
        event_id="9d1c0b2a-0000-4000-8000-000000000001",
        source="aws.sagemaker",
        detail_type="SageMaker Training Job State Change",
        errors=["detail.TrainingJobName: missing; send the full SageMaker event, not a hand-made excerpt"],
        received_at=EVENT_TIME,
        raw_excerpt='{"version": "0", "detail": {"TrainingJobStatus": "Failed"}}',
    )
    fields.update(overrides)
    return IntakeError(**fields)


def make_leaky_evidence() -> tuple[FailureEvent, Evidence]:
    """An event and evidence carrying every secret format in the log tail, reasons, hyperparameters,
    missing-evidence notes and the names of what failed, as gathering could return them."""
    leaked_lines = [line for sample in SECRET_SAMPLES for line in sample.line.splitlines()]
    everything = "\n".join(sample.line for sample in SECRET_SAMPLES)
    event = make_event(failure_reason="AlgorithmError: " + everything, training_job_name=f"{JOB}-{ACCESS_KEY_ID}")
    evidence = make_evidence(
        event=event,
        log_lines=leaked_lines,
        training_job=TrainingJobEvidence(name=f"{JOB}-{ACCESS_KEY_ID}", failure_reason=everything,
                                         hyperparameters={"hf_token": SECRET_SAMPLES[0].line}),
        execution=ExecutionEvidence(execution_arn=EXECUTION_ARN, cause=everything, error="States.TaskFailed"),
        missing=[Missing(source="logs", reason=f"stream not found ({SLACK_WEBHOOK})")],
    )
    return event, evidence


def make_leaky_incident() -> Incident:
    """The incident triage makes from leaky evidence: what every sink and the record receive."""
    from incident_responder.triage import finish

    event, evidence = make_leaky_evidence()
    return finish(event, evidence)


def all_secret_substrings() -> list[str]:
    return [secret for sample in SECRET_SAMPLES for secret in sample.secrets]
