"""The known-good ledger: which digest each completed training job actually ran, per repository.

A Completed event names the image as the job was given it, usually a mutable tag (`:latest`). The
digest behind that tag now is the job's only if the tag was pushed before the job started: ECR's
imagePushedAt is compared with the job's TrainingStartTime, and when the tag names an image pushed
after the start nothing is recorded (and the reason is said), rather than guessing.

Known limit: ECR keeps one imagePushedAt per digest. A tag moved (PutImage) to an *older* image after
the job started is not visible in ECR's data; CloudTrail's PutImage events would show it.

Each recorded digest is protected from lifecycle expiry by a `known-good-<digest prefix>` tag
(docs/rollback.md has the lifecycle rule that keeps that prefix).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from ..intake import KnownGoodImage
from ..models import ImageRef

PROTECT_TAG_PREFIX = "known-good-"
# sha256 digests are 64 hex characters; 16 of them are unique enough within one repository.
PROTECT_DIGEST_CHARS = 16
LEDGER_KEY_PREFIX = "known-good-ledger#"
# One item per repository: the newest completion per digest, bounded so the item stays small.
MAX_ENTRIES_PER_REPOSITORY = 200


class LedgerError(RuntimeError):
    """The ledger could not be read or written."""


class KnownGoodEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str
    registry: str | None = None
    repository: str
    digest: str
    tag: str | None = None
    training_job_name: str
    started_at: datetime | None = None
    completed_at: datetime
    protect_tag: str | None = None

    @property
    def uri(self) -> str:
        if self.registry:
            return ImageRef.in_ecr(self.registry, self.region, self.repository, digest=self.digest).uri
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class NotRecorded:
    reason: str


def protect_tag(digest: str) -> str:
    return PROTECT_TAG_PREFIX + digest.split(":", 1)[-1][:PROTECT_DIGEST_CHARS]


def resolve(image: KnownGoodImage, ecr: Any) -> KnownGoodEntry | NotRecorded:
    """The digest the completed job ran, or why it cannot be known."""
    ref = ImageRef.parse(image.image_uri)
    if not ref.is_ecr:
        return NotRecorded(f"{image.image_uri} is not an ECR image; nothing recorded")
    base = dict(region=ref.region or image.region, registry=ref.registry, repository=ref.repository,
                tag=ref.tag, training_job_name=image.training_job_name, started_at=image.training_started_at,
                completed_at=image.completed_at)
    if ref.digest:
        return KnownGoodEntry(digest=ref.digest, **base)
    tag = ref.tag or "latest"
    try:
        details = ecr.describe_images(registryId=ref.registry, repositoryName=ref.repository,
                                      imageIds=[{"imageTag": tag}])["imageDetails"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return NotRecorded(f"{ref.repository}:{tag} no longer exists ({code}); nothing recorded")
        raise LedgerError(f"ECR DescribeImages({ref.repository}:{tag}) failed ({code})") from None
    except BotoCoreError as exc:
        raise LedgerError(f"ECR DescribeImages({ref.repository}:{tag}) failed ({type(exc).__name__})") from None
    if not details:
        return NotRecorded(f"{ref.repository}:{tag} no longer exists; nothing recorded")
    detail = details[0]
    pushed_at = _utc(detail.get("imagePushedAt"))
    started_at = _utc(image.training_started_at)
    if started_at is None:
        return NotRecorded(f"the event for {image.training_job_name} has no TrainingStartTime, so the digest behind "
                           f"{ref.repository}:{tag} at its start cannot be told; nothing recorded")
    if pushed_at is None or pushed_at > started_at:
        return NotRecorded(f"{ref.repository}:{tag} now names {detail['imageDigest']}, pushed "
                           f"{pushed_at.isoformat() if pushed_at else 'at an unknown time'}, after "
                           f"{image.training_job_name} started ({started_at.isoformat()}): the digest the job ran "
                           "is unknown; nothing recorded")
    return KnownGoodEntry(digest=detail["imageDigest"], **base)


def protect(entry: KnownGoodEntry, ecr: Any) -> str:
    """Tag the digest `known-good-<prefix>` (same manifest) so a lifecycle rule can keep it."""
    tag = protect_tag(entry.digest)
    try:
        images = ecr.batch_get_image(registryId=entry.registry, repositoryName=entry.repository,
                                     imageIds=[{"imageDigest": entry.digest}])["images"]
        if not images:
            raise LedgerError(f"{entry.repository}@{entry.digest} no longer exists; not protected")
        ecr.put_image(registryId=entry.registry, repositoryName=entry.repository,
                      imageManifest=images[0]["imageManifest"],
                      imageManifestMediaType=images[0].get("imageManifestMediaType") or _media_type(images[0]),
                      imageDigest=entry.digest, imageTag=tag)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code != "ImageAlreadyExistsException":  # already tagged: the state we want
            raise LedgerError(f"ECR PutImage({entry.repository}:{tag}) failed ({code})") from None
    except BotoCoreError as exc:
        raise LedgerError(f"ECR PutImage({entry.repository}:{tag}) failed ({type(exc).__name__})") from None
    return tag


def _media_type(image: dict[str, Any]) -> str:
    return json.loads(image["imageManifest"]).get("mediaType", "application/vnd.docker.distribution.manifest.v2+json")


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Ledger:
    """The ledger's items in the incident table: one per repository, entries keyed by digest."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    @staticmethod
    def key(region: str, repository: str) -> dict[str, str]:
        return {"S": f"{LEDGER_KEY_PREFIX}{region}#{repository}"}

    def record(self, entry: KnownGoodEntry) -> None:
        """Keep the newest completion per digest (events arrive out of order and more than once)."""
        key = self.key(entry.region, entry.repository)
        try:
            self._db.put_item(TableName=self._table,
                              Item={"id": key, "kind": {"S": "known_good_ledger"}, "region": {"S": entry.region},
                                    "repository": {"S": entry.repository}, "entries": {"M": {}}},
                              ConditionExpression="attribute_not_exists(id)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise LedgerError(f"incident table PutItem failed ({exc.response['Error'].get('Code')})") from None
        except BotoCoreError as exc:
            raise LedgerError(f"incident table PutItem failed ({type(exc).__name__})") from None
        try:
            self._db.update_item(
                TableName=self._table, Key={"id": key},
                UpdateExpression="SET entries.#d = :e",
                ConditionExpression="(attribute_not_exists(entries.#d) OR entries.#d.completed_at < :t) "
                                    "AND size(entries) < :max",
                ExpressionAttributeNames={"#d": entry.digest},
                ExpressionAttributeValues={":e": {"M": {"completed_at": {"S": entry.completed_at.isoformat()},
                                                        "entry": {"S": entry.model_dump_json()}}},
                                           ":t": {"S": entry.completed_at.isoformat()},
                                           ":max": {"N": str(MAX_ENTRIES_PER_REPOSITORY)}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return  # a newer completion of this digest is recorded already (or the ledger is full)
            raise LedgerError(f"incident table UpdateItem failed ({exc.response['Error'].get('Code')})") from None
        except BotoCoreError as exc:
            raise LedgerError(f"incident table UpdateItem failed ({type(exc).__name__})") from None

    def history(self, region: str, repository: str) -> list[KnownGoodEntry]:
        """The repository's known-good digests, newest completion first."""
        try:
            item = self._db.get_item(TableName=self._table, Key={"id": self.key(region, repository)},
                                     ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise LedgerError(f"incident table GetItem failed ({_code(exc)})") from None
        return entries_of(item)


def entries_of(item: dict[str, Any] | None) -> list[KnownGoodEntry]:
    if not item:
        return []
    found = [KnownGoodEntry.model_validate_json(v["M"]["entry"]["S"]) for v in item.get("entries", {}).get("M", {}).values()]
    return sorted(found, key=lambda e: e.completed_at, reverse=True)


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__


def record_completed(image: KnownGoodImage, ecr: Any, ledger: Ledger) -> KnownGoodEntry | NotRecorded:
    """A completed job: resolve its digest, protect it, record it."""
    resolved = resolve(image, ecr)
    if isinstance(resolved, NotRecorded):
        return resolved
    entry = resolved.model_copy(update={"protect_tag": protect(resolved, ecr)})
    ledger.record(entry)
    return entry
