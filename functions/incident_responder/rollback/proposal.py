"""Whether an incident's report proposes a rollback, and to which digest (pure: no AWS)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ..models import Incident, RollbackAdvice, RollbackProposal
from .ledger import KnownGoodEntry

DEFAULT_CATEGORIES = ("entry_point", "cuda_gpu", "python_dependencies")
APPROVAL_ID_CHARS = 10


@dataclass(frozen=True)
class ProposalConfig:
    mode: str  # ecr-retag | parameter | disabled
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    repository: str | None = None  # the pipeline's repository; None: any


def approval_id(*parts: str) -> str:
    """A short, deterministic id (a retried event proposes the same approval, not a second one)."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:APPROVAL_ID_CHARS]


def propose(incident: Incident, history: list[KnownGoodEntry], config: ProposalConfig) -> RollbackAdvice:
    category = incident.diagnosis.category.value
    if config.mode == "disabled":
        return RollbackAdvice(reason="rollback is disabled (RollbackMode=disabled)")
    if category not in config.categories:
        return RollbackAdvice(reason=f"the diagnosis ({category}) does not point at the image "
                                     f"(rollback categories: {', '.join(config.categories)})")
    if config.repository and "*" in config.repository:
        return RollbackAdvice(reason=f"the pipeline's repository is a pattern ({config.repository}); a rollback "
                                     "needs one repository (TrainingImageRepository)")
    image = incident.subject.image
    if image is None or not image.is_ecr:
        return RollbackAdvice(reason="the failing job's image is not an ECR image")
    if config.repository and image.repository != config.repository:
        return RollbackAdvice(reason=f"the failing image's repository ({image.repository}) is not the pipeline's "
                                     f"({config.repository})")
    if not image.digest:
        return RollbackAdvice(reason=f"the digest of the failing image ({image.uri}) is unknown, so a different "
                                     "known-good digest cannot be told")
    candidates = [e for e in history if e.repository == image.repository and e.digest != image.digest]
    if not candidates:
        return RollbackAdvice(reason=f"no known-good digest of {image.repository} other than the failing one "
                                     f"({image.digest[:19]}…) is recorded")
    target = max(candidates, key=lambda e: e.completed_at)
    proposal = RollbackProposal(
        approval_id=approval_id(incident.key, "rollback", target.digest),
        mode=config.mode,  # type: ignore[arg-type]
        region=image.region or incident.subject.region,
        registry=image.registry,
        repository=image.repository,
        tag=image.tag,
        from_digest=image.digest,
        to_digest=target.digest,
        to_training_job=target.training_job_name,
        to_completed_at=target.completed_at,
    )
    return RollbackAdvice(proposal=proposal, reason=(
        f"{category} points at the image; {target.digest[:19]}… last succeeded in {target.training_job_name} "
        f"({target.completed_at.strftime('%Y-%m-%d %H:%M UTC')})"))
