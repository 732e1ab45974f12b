"""A corpus of secrets in the formats and encodings logs carry them in, generated at test time.

No secret-shaped literal is stored in the repository: every value is built from random
characters with the right shape (prefix, alphabet, length), so a scanner has nothing to flag
and each run draws new values. Reused by the redaction tests and by the end-to-end checks of
the sinks and stores (a case's `text` goes in; none of its `secrets` may come out).

    cases = secret_cases(seed)          # >= 40 formats and encodings
    leaks(output, cases)                # [(case id, leaked fragment)], [] when nothing leaked
    BENIGN                              # lines that must come through unchanged
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from urllib.parse import quote

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


@dataclass(frozen=True)
class SecretCase:
    id: str
    text: str  # one line, or several for block formats
    secrets: tuple[str, ...]  # values none of whose 12-character pieces may survive
    kind: str | None = None  # the marker expected, when the format has its own kind


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def chars(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def mixed(self, n: int, alphabet: str = ALNUM) -> str:
        """Random characters holding at least one lower, upper and digit (as real keys do)."""
        body = self.chars(n - 3, alphabet)
        return body[: n // 2] + self.rng.choice(string.ascii_lowercase) + self.rng.choice(
            string.ascii_uppercase) + self.rng.choice(string.digits) + body[n // 2:]

    def password(self) -> str:
        return self.mixed(14, ALNUM + "!#%^*")


def secret_cases(seed: int = 20261130) -> list[SecretCase]:
    g = _Gen(seed)
    access_key = "AKIA" + g.chars(16, UPPER_DIGITS)
    temp_key = "ASIA" + g.chars(16, UPPER_DIGITS)
    secret_key = g.mixed(18) + "/" + g.mixed(10) + "+" + g.mixed(10)
    session = "IQoJb3JpZ2luX2Vj" + g.chars(150, B64)
    webhook_path = "T" + g.chars(8, UPPER_DIGITS) + "/B" + g.chars(8, UPPER_DIGITS) + "/" + g.chars(24)
    webhook = "https://hooks.slack.com/services/" + webhook_path
    wandb = g.chars(40, HEX)
    hf = "hf_" + g.chars(34)
    openai = "sk-proj-" + g.chars(48, URLSAFE)
    anthropic = "sk-ant-api03-" + g.chars(80, URLSAFE)
    pw = [g.password() for _ in range(16)]
    env_file = f"AWS_ACCESS_KEY_ID={access_key}\nAWS_SECRET_ACCESS_KEY={secret_key}\nREGION=us-west-2\n"
    env_b64 = base64.b64encode(env_file.encode()).decode()
    docker_auth = base64.b64encode(f"ci:{pw[0]}".encode()).decode()
    basic = base64.b64encode(f"deploy:{pw[1]}".encode()).decode()
    jwt = "eyJ" + g.chars(30, URLSAFE) + ".eyJ" + g.chars(60, URLSAFE) + "." + g.chars(43, URLSAFE)
    pem_body = [g.chars(64, B64) for _ in range(5)]
    ghp = "ghp_" + g.chars(36)
    glpat = "glpat-" + g.chars(20, URLSAFE)
    pypi = "pypi-AgEIcHlwaS5vcmc" + g.chars(60, URLSAFE)
    sendgrid = "SG." + g.chars(22, URLSAFE) + "." + g.chars(43, URLSAFE)
    azure = g.chars(86, B64) + "=="
    entropy = g.mixed(32)
    apikey = g.mixed(32)
    split_at = 20

    cases = [
        SecretCase("aws_access_key_id", f"botocore: using access key {access_key}", (access_key,), "aws_access_key_id"),
        SecretCase("aws_secret_access_key_env", f"export AWS_SECRET_ACCESS_KEY={secret_key}", (secret_key,)),
        SecretCase("aws_secret_key_other_name", f"AWS_SECRET_KEY={secret_key}", (secret_key,)),
        SecretCase("aws_credentials_csv", f"{temp_key},{secret_key}", (temp_key, secret_key)),
        SecretCase("aws_session_token_bare", f"token refreshed: {session}", (session,), "aws_session_token"),
        SecretCase("aws_credentials_json", json.dumps({"AccessKeyId": temp_key, "SecretAccessKey": secret_key,
                                                        "SessionToken": session}), (temp_key, secret_key, session)),
        SecretCase("db_password_env", f"DB_PASSWORD={pw[2]}", (pw[2],), "secret_assignment"),
        SecretCase("password_json", json.dumps({"user": "mlops", "password": pw[3]}), (pw[3],)),
        SecretCase("password_json_in_json", json.dumps(json.dumps({"cause": {"password": pw[4]}})), (pw[4],)),
        SecretCase("yaml_password", f"  password: {pw[5]}", (pw[5],)),
        SecretCase("yaml_value_on_next_line", f"database:\n  password:\n    {pw[6]}\n  host: db.internal", (pw[6],)),
        SecretCase("yaml_block_scalar", f"auth_token: |\n  {apikey}\nnext: 1", (apikey,)),
        SecretCase("env_export_quoted", f"export MY_SERVICE_API_KEY='{g.mixed(24)}'", ()),
        SecretCase("client_secret_ini", f"client_secret = {g.mixed(30)}", ()),
        SecretCase("x_api_key_header", f"> X-Api-Key: {g.mixed(32)}", ()),
        SecretCase("openai_key", f"OpenAI(api_key=...) -> {openai}", (openai,), "openai_api_key"),
        SecretCase("anthropic_key", f"client = Anthropic() # {anthropic}", (anthropic,), "openai_api_key"),
        SecretCase("huggingface_token", f"huggingface-cli login --token {hf}", (hf,), "huggingface_token"),
        SecretCase("wandb_env", f"WANDB_API_KEY={wandb}", (wandb,)),
        SecretCase("wandb_login", f"+ wandb login {wandb}", (wandb,), "wandb_api_key"),
        SecretCase("wandb_netrc", f"machine api.wandb.ai login user password {wandb}", (wandb,)),
        SecretCase("slack_webhook", f"posting to {webhook} failed", (webhook_path,), "slack_webhook_url"),
        SecretCase("slack_webhook_json_escaped", json.dumps({"url": webhook}).replace("/", "\\/"), (webhook_path,)),
        SecretCase("slack_webhook_url_encoded", f"callback={quote(webhook, safe='')}",
                   (webhook_path, quote(webhook_path, safe=""))),
        SecretCase("slack_bot_token", "SLACK_BOT_TOKEN=xoxb-" + (t := g.chars(11, string.digits) + "-" + g.chars(24)),
                   (t,)),
        SecretCase("github_token", f"git clone https://{ghp}@github.com/org/repo", (ghp,)),
        SecretCase("github_fine_grained", "GH_TOKEN=github_pat_11" + (t2 := g.chars(80, ALNUM + "_")), (t2,)),
        SecretCase("gitlab_token", f"PRIVATE-TOKEN: {glpat}", (glpat,)),
        SecretCase("google_api_key", "maps key AIza" + (t3 := g.chars(35, URLSAFE)), (t3,), "google_api_key"),
        SecretCase("stripe_key", "sk_live_" + (t4 := g.chars(24)), (t4,)),
        SecretCase("npm_token", "//registry.npmjs.org/:_authToken=npm_" + (t5 := g.chars(36)), (t5,)),
        SecretCase("pypi_token", f"twine upload -p {pypi}", (pypi,), "pypi_token"),
        SecretCase("sendgrid_key", f"SENDGRID={sendgrid}", (sendgrid,)),
        SecretCase("jwt_bare", f"id token {jwt}", (jwt,)),
        SecretCase("authorization_bearer", f"> Authorization: Bearer {jwt[::-1]}", (jwt[::-1],), "bearer_token"),
        SecretCase("authorization_basic", f"Authorization: Basic {basic}", (basic, pw[1])),
        SecretCase("url_password", f"postgresql://mlops:{pw[7]}@db.internal:5432/runs", (pw[7],), "url_password"),
        SecretCase("url_password_with_slash", f"https://ci:{pw[8][:6]}/{pw[8][6:]}@pypi.example.com/simple",
                   (pw[8][:6] + "/" + pw[8][6:],)),
        SecretCase("url_password_with_at", f"mongodb://admin:{pw[9][:6]}@{pw[9][6:]}@mongo:27017/db",
                   (pw[9][:6] + "@" + pw[9][6:],)),
        SecretCase("pip_index_url_token", f"pip install --extra-index-url https://__token__:{pypi[::-1]}@pkgs.example.com/simple x",
                   (pypi[::-1],)),
        SecretCase("json_unicode_escaped_equals", f'{{"env": "DB_PASSWORD\\u003d{pw[10]}"}}', (pw[10],)),
        SecretCase("url_encoded_pair", f"GET /callback?client_id=abc%26api_key%3D{pw[11]}%26x%3D1", (pw[11],)),
        SecretCase("doubly_url_encoded_pair", f"next=%2Flogin%253Fpassword%253D{pw[12]}", (pw[12],)),
        SecretCase("split_by_concatenation", f'openai.api_key = "{openai[:split_at]}" + "{openai[split_at:]}"',
                   (openai,)),
        SecretCase("python_implicit_concatenation", f"token = ('{hf[:12]}' '{hf[12:]}')", (hf,)),
        SecretCase("base64_env_file", f"ENV_B64={env_b64}", (secret_key, env_b64[8:60])),
        SecretCase("docker_config_auth", json.dumps({"auths": {"123.dkr.ecr": {"auth": docker_auth}}}),
                   (docker_auth, pw[0])),
        SecretCase("hyperparameters_json", json.dumps({"lr": "0.001", "wandb_api_key": wandb, "db_password": pw[13]}),
                   (wandb, pw[13])),
        SecretCase("azure_storage_key", f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={azure};", (azure,)),
        SecretCase("entropy_after_secret_word", f"the secret is {entropy}", (entropy,), "high_entropy_secret"),
        SecretCase("private_key_pem", "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(pem_body)
                   + "\n-----END RSA PRIVATE KEY-----", tuple(pem_body), "private_key"),
        SecretCase("private_key_cut_off", "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(pem_body[:3]),
                   tuple(pem_body[:3]), "private_key"),
        SecretCase("session_token_percent_encoded", f"X-Amz-Security-Token={quote(session, safe='')}&X-Amz-Date=1",
                   (session, quote(session, safe=""))),
        # a value that starts with `$` but names no secret's variable is a value (`$NAME` references are not)
        SecretCase("password_starting_with_dollar", "DB_PASSWORD=$" + (t6 := g.mixed(16)), (t6,)),
    ]
    # cases whose secret is generated inside the text: take it from there
    fixed = []
    for case in cases:
        if not case.secrets:
            value = case.text.rsplit(" ", 1)[-1].split("=", 1)[-1].strip("'\"")
            case = SecretCase(case.id, case.text, (value,), case.kind)
        fixed.append(case)
    return fixed


def fragments(secret: str, width: int = 12) -> set[str]:
    """Every piece of `secret` a leak check looks for (the whole when it is short)."""
    if len(secret) <= width:
        return {secret}
    return {secret[i:i + width] for i in range(len(secret) - width + 1)}


def leaks(output: str, cases: list[SecretCase]) -> list[tuple[str, str]]:
    """(case id, leaked piece) for every secret piece found in `output`; [] means no leak."""
    found = []
    for case in cases:
        for secret in case.secrets:
            for piece in sorted(fragments(secret)):
                if piece in output or json.dumps(piece)[1:-1] in output:
                    found.append((case.id, piece))
                    break
    return found


# Ordinary lines that must come through redaction unchanged: log lines, digests, ARNs,
# account ids, step numbers, paths, commits, request ids, hyperparameters without secrets.
BENIGN: tuple[str, ...] = (
    "Loading 110 images from /opt/ml/input/data/training/images (640x480)",
    "Step 7000/30000 loss=0.0213 psnr=30.61 ssim=0.912 num_GS=1523334 mem=0.85GiB",
    "Image: 123456789012.dkr.ecr.us-west-2.amazonaws.com/spaceport/3dgs@sha256:" + "3f9a" * 16,
    "arn:aws:sagemaker:us-west-2:123456789012:training-job/3dgs-prod-validation-1764378390",
    "arn:aws:iam::123456789012:role/SpaceportSageMakerRole",
    "account 123456789012 region us-west-2",
    "s3://spaceport-ml-123456789012/colmap/run-7/sparse/0/points3D.bin",
    "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 (HEAD -> main)",
    "RequestId: 5f3c2a1b-9e8d-4c7b-a6f5-e4d3c2b1a098",
    "checkpoint ckpt_6999.pt saved to /opt/ml/checkpoints/ckpt_6999.pt",
    "Downloading https://download.pytorch.org/whl/cu118/torch-2.0.1%2Bcu118-cp310-cp310-linux_x86_64.whl",
    "aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}",
    "AWS_SESSION_TOKEN is not set; using the instance role",
    "max_tokens=512 num_tokens: 4096 tokenizer=bert-base-uncased",
    "Bearer token missing from request",
    "RuntimeError: CUDA error: no kernel image is available for execution on the device",
    "ModuleNotFoundError: No module named 'gsplat'",
    "Training progress:  42%|████▏     | 12600/30000 [03:10<04:22, 66.21it/s]",
    '{"TrainingJobName": "3dgs-1", "TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: exit code: 1"}',
    "ssh://git@github.com:22/org/repo.git",
    "Connecting to https://sagemaker.us-west-2.amazonaws.com:443/v1/jobs@latest (attempt 2/5)",
    "http://169.254.170.2/v2/credentials/2f1e0d9c-8b7a-4c6d-9e5f-1a2b3c4d5e6f",
    "data/colmap/images/IMG_20240101_120000_000000000001.jpg",
    "token_ttl_seconds=3600 password_min_length=12",
    # messages about credentials are not credentials
    "botocore.exceptions.NoCredentialsError: Unable to locate credentials",
    "InvalidClientTokenId: The security token included in the request is invalid.",
    "ExpiredToken: The security token included in the request is expired",
    "TokenRetrievalError: Error when retrieving token from sso: Token has expired and refresh failed",
    'Resource handler returned message: "x" (RequestToken: 7b08be0e-fada-d308-578a-333a227387fd, HandlerErrorCode: x)',
    "ListObjectsV2 failed for s3://bucket/prefix nextToken:[null]: Unable to execute request to S3",
    "reusable workflows get the caller's secrets with `secrets: inherit`",
    "auth_mode: iam token_type: bearer password_file: /run/secrets/db",
    # a GitHub permission level, the evidence an OIDC failure turns on (actions/runner's reusable-workflow check)
    "The workflow is requesting 'id-token: write', but is only allowed 'id-token: none'.",
    "permissions:\n  id-token: write\n  contents: read",
    # references to secrets, not secrets: a variable passed on, and a traceback's source lines (wave 11's ja/jg logs)
    "docker run -e AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY --rm -it "
    "amazon/aws-cli:latest",
    '  File "/usr/lib/python3/site-packages/botocore/credentials.py", line 2105, in _refresh\n'
    "    self._frozen_token = self._refresh_using()",
    '    api_key = os.environ["OPENAI_API_KEY"]',
)
