"""The rollback's adapter: the ledger, the proposal, the workflow and the decisions wired to AWS
clients and settings. The triage path, the decision endpoint and the CLI all use this one."""

from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from ..intake import KnownGoodImage
from ..models import Incident, RollbackAdvice
from . import signing, workflow
from .approvals import Approvals
from .decision import Decider
from .ledger import KnownGoodEntry, Ledger, LedgerError, NotRecorded, record_completed
from .proposal import DEFAULT_CATEGORIES, ProposalConfig, propose


class SecretValue:
    """A Secrets Manager value read on first use and kept (a failed read is retried next time)."""

    def __init__(self, secretsmanager: Any, secret_id: str | None) -> None:
        self._sm = secretsmanager
        self._id = secret_id
        self._value: str | None = None
        self._lock = threading.Lock()

    def get(self) -> str | None:
        if not self._id:
            return None
        with self._lock:
            if self._value is None:
                self._value = self._sm.get_secret_value(SecretId=self._id)["SecretString"]
            return self._value


@dataclass
class RollbackService:
    clients: Any
    table: str
    mode: str = "disabled"
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    repository: str | None = None
    state_machine_arn: str | None = None
    decision_url: str | None = None
    link_key_secret_arn: str | None = None
    approval_timeout_seconds: int = 86_400
    now: Callable[[], float] = time.time
    _link_key: SecretValue | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._link_key = SecretValue(self.clients.secretsmanager, self.link_key_secret_arn)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.clients.dynamodb, self.table)

    @property
    def approvals(self) -> Approvals:
        return Approvals(self.clients.dynamodb, self.table)

    @property
    def decider(self) -> Decider:
        return Decider(self.approvals, self.clients.stepfunctions)

    def link_key(self) -> bytes | None:
        value = self._link_key.get() if self._link_key else None
        return signing.key_from_secret(value) if value else None

    # ------------------------------------------------------------ triage path

    def record_completed(self, image: KnownGoodImage) -> KnownGoodEntry | NotRecorded:
        from ..models import ImageRef

        repository = ImageRef.parse(image.image_uri).repository
        if self.repository and repository and not fnmatch.fnmatchcase(repository, self.repository):
            # Only the pipeline's repository is rolled back (and only it may be tagged: least privilege).
            return NotRecorded(f"{repository} is not the pipeline's repository ({self.repository}); nothing recorded")
        return record_completed(image, self.clients.ecr, self.ledger)

    def advise(self, incident: Incident) -> Incident:
        """The incident with its rollback advice. The ledger being unreadable never stops the alert."""
        image = incident.subject.image
        history: list[KnownGoodEntry] = []
        if image is not None and image.repository:
            try:
                history = self.ledger.history(image.region or incident.subject.region, image.repository)
            except LedgerError as exc:
                return incident.model_copy(update={"rollback": RollbackAdvice(
                    reason=f"the known-good ledger could not be read ({exc})")})
        config = ProposalConfig(mode=self.mode if self.state_machine_arn else "disabled",
                                categories=self.categories, repository=self.repository)
        advice = propose(incident, history, config)
        if advice.proposal is not None and self.decision_url:
            try:
                key = self.link_key()
            except (ClientError, BotoCoreError, ValueError) as exc:
                key = None
                advice = advice.model_copy(update={"reason": advice.reason + f"; no decision links ({type(exc).__name__})"})
            if key:
                expires = int(self.now()) + self.approval_timeout_seconds
                links = {f"{d}_url": signing.link(self.decision_url, key, advice.proposal.approval_id, d, expires)
                         for d in signing.DECISIONS}
                advice = advice.model_copy(update={"proposal": advice.proposal.model_copy(update=links)})
        return incident.model_copy(update={"rollback": advice})

    def start_for(self, incident: Incident) -> str | None:
        proposal = incident.rollback.proposal if incident.rollback else None
        if proposal is None or not self.state_machine_arn:
            return None
        return workflow.start(self.clients.stepfunctions, self.state_machine_arn,
                              workflow.rollback_input(incident, proposal))

    # ------------------------------------------------------------ undo

    def start_undo(self, incident_key: str) -> tuple[str, str]:
        """Start the undo of the incident's latest finished rollback; it waits for a decision like any other."""
        if not self.state_machine_arn:
            raise workflow.WorkflowError("no rollback workflow is configured (ROLLBACK_STATE_MACHINE_ARN)")
        incident = self.approvals.incident_item(incident_key)
        if incident is None:
            raise workflow.WorkflowError(f"no incident {incident_key!r} in the incident table")
        rollback_id = incident.get("latest_rollback_id")
        rollback = self.approvals.get(rollback_id) if rollback_id else None
        if rollback is not None and rollback.get("action") == "undo":
            raise workflow.WorkflowError(f"the latest change of {incident_key} is already an undo ({rollback_id})")
        if rollback is None:
            raise workflow.WorkflowError(f"incident {incident_key} has no finished rollback to undo")
        undo = workflow.undo_input(rollback)
        return undo["approval_id"], workflow.start(self.clients.stepfunctions, self.state_machine_arn, undo)

    def pending_approval(self, incident_key: str) -> str | None:
        incident = self.approvals.incident_item(incident_key)
        return incident.get("latest_approval_id") if incident else None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
