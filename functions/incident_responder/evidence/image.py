"""ECR DescribeImages for the training image: digest and push time."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..models import ImageEvidence, ImageRef
from .base import GatherState, aws_error


def gather_image(state: GatherState, clients: Any) -> None:
    uri = state.image_uri
    if not uri:
        if state.training_job_name:
            state.note_missing("image", "the training job names no image")
        return
    ref = ImageRef.parse(uri)
    if not ref.is_ecr:
        state.image = ImageEvidence(uri=uri)
        state.note_missing("image", f"{uri} is not an ECR image URI; digest not looked up")
        return
    image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
    evidence = ImageEvidence(uri=uri, repository=ref.repository, tag=ref.tag, digest=ref.digest)
    try:
        response = clients.ecr.describe_images(
            registryId=ref.registry, repositoryName=ref.repository, imageIds=[image_id]
        )
    except (ClientError, BotoCoreError) as exc:
        state.image = evidence
        state.note_aws_failure("image", f"DescribeImages({ref.repository}) failed: {aws_error(exc)}")
        return
    details = (response.get("imageDetails") or [{}])[0]
    state.image = evidence.model_copy(
        update={
            "digest": details.get("imageDigest"),
            "pushed_at": details.get("imagePushedAt"),
            "size_bytes": details.get("imageSizeInBytes"),
        }
    )
