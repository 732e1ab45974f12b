"""ECR DescribeImages for the training image: digest and push time."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import ImageEvidence
from .base import GatherState, aws_error

_ECR_URI = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def parse_ecr_uri(uri: str) -> dict[str, str | None] | None:
    match = _ECR_URI.match(uri or "")
    return match.groupdict() if match else None


def gather_image(state: GatherState, clients: Any) -> None:
    uri = state.image_uri
    if not uri:
        if state.training_job_name:
            state.note_missing("image", "the training job names no image")
        return
    parts = parse_ecr_uri(uri)
    if parts is None:
        state.image = ImageEvidence(uri=uri)
        state.note_missing("image", f"{uri} is not an ECR image URI; digest not looked up")
        return
    image_id = {"imageDigest": parts["digest"]} if parts["digest"] else {"imageTag": parts["tag"] or "latest"}
    evidence = ImageEvidence(uri=uri, repository=parts["repository"], tag=parts["tag"] or None)
    try:
        response = clients.ecr.describe_images(
            registryId=parts["registry"], repositoryName=parts["repository"], imageIds=[image_id]
        )
    except (ClientError, BotoCoreError) as exc:
        state.image = evidence
        state.note_missing("image", f"DescribeImages({parts['repository']}) failed: {aws_error(exc)}")
        return
    details = (response.get("imageDetails") or [{}])[0]
    state.image = evidence.model_copy(
        update={
            "digest": details.get("imageDigest"),
            "pushed_at": details.get("imagePushedAt"),
            "size_bytes": details.get("imageSizeInBytes"),
        }
    )
