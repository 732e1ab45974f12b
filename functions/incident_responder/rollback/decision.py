"""One decision, three ways in (Slack button, signed link, CLI). Whatever the way, a decision acts
only once: the approval item goes pending -> approved/rejected under a condition, then the workflow's
task token (read from the item, never from the request) is resumed. Everything refused (double
click, replay, forged or stale signature, expired link, a user not on the list, an unknown or
expired approval) is recorded with its reason on the approval and on its incident."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal
from urllib.parse import parse_qs

from botocore.exceptions import BotoCoreError, ClientError

from .approvals import Approvals

logger = logging.getLogger(__name__)
SLACK_MAX_AGE_S = 300


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    via: Literal["slack", "link", "cli"]

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "via": self.via}


@dataclass(frozen=True)
class Result:
    status: Literal["approved", "rejected", "refused"]
    message: str
    approval_id: str | None = None
    incident_key: str | None = None

    @property
    def acted(self) -> bool:
        return self.status != "refused"


class Decider:
    def __init__(self, approvals: Approvals, stepfunctions: Any) -> None:
        self.approvals = approvals
        self._sfn = stepfunctions

    def refuse(self, approval_id: str | None, reason: str, actor: Actor, *, item: dict[str, Any] | None = None) -> Result:
        if item is None and approval_id:
            try:
                item = self.approvals.get(approval_id)
            except Exception:  # noqa: BLE001 - the refusal stands even if its record cannot be read
                item = None
        incident_key = item.get("incident_key") if item else None
        where = self.approvals.record_refusal(approval_id if item else None, incident_key, reason, actor.as_dict())
        logger.warning("decision refused", extra={"approval_id": approval_id, "reason": reason,
                                                  "actor": actor.as_dict(), "recorded_on": where})
        return Result("refused", f"Refused: {reason}. Nothing changed.", approval_id, incident_key)

    def decide(self, approval_id: str, decision: str, actor: Actor) -> Result:
        if decision not in ("approve", "reject"):
            return self.refuse(approval_id, f"unknown decision {decision[:20]!r}", actor)
        item = self.approvals.get(approval_id)
        if item is None:
            return self.refuse(approval_id, "unknown approval id", actor, item={})
        status = item.get("status")
        if status in ("approved", "rejected") or (status not in ("pending", "proposed", "expired") and item.get("decided_by")):
            return self.refuse(approval_id, f"already decided ({status} by {item.get('decided_by')} via "
                                            f"{item.get('decided_via')})", actor, item=item)
        if status == "expired":
            return self.refuse(approval_id, "the approval expired (no decision within the approval timeout)", actor, item=item)
        if status == "proposed" or (status == "pending" and not item.get("task_token")):
            return self.refuse(approval_id, "the workflow is not waiting for a decision yet; try again shortly",
                               actor, item=item)
        if status != "pending":
            return self.refuse(approval_id, f"not waiting for a decision (status {status})", actor, item=item)
        token = item["task_token"]
        if not self.approvals.claim(approval_id, token, decision, actor.as_dict()):
            return self.refuse(approval_id, "already decided (another decision came first)", actor)
        output = {"decision": decision, "decided_by": actor.name, "decided_by_id": actor.id, "via": actor.via}
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
                self.approvals.mark(approval_id, "expired")
                return self.refuse(approval_id, f"the workflow no longer waits ({code}): expired", actor)
            raise
        verb = "approved" if decision == "approve" else "rejected"
        action = item.get("action", "rollback")
        return Result(verb, f"{action.capitalize()} {approval_id} {verb} by {actor.name} via {actor.via}.",  # type: ignore[arg-type]
                      approval_id, item.get("incident_key"))


# ------------------------------------------------------------------ Slack


@dataclass(frozen=True)
class SlackAction:
    action_id: str
    value: str
    user_id: str
    user_name: str
    response_url: str | None
    message_blocks: list[dict[str, Any]] | None = None


def slack_check(signing_secret: str, body: str, headers: dict[str, str], now: Callable[[], float] = time.time) -> str | None:
    """None when Slack signed this exact body within the last 5 minutes, else why not."""
    from slack_sdk.signature import SignatureVerifier

    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get("x-slack-request-timestamp", ""), lower.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature:
        return "Slack signature headers missing"
    if abs(now() - int(timestamp)) > SLACK_MAX_AGE_S:
        return "stale Slack timestamp (older than 5 minutes: a replay?)"
    verifier = SignatureVerifier(signing_secret, clock=_Clock(now))
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        return "Slack signature invalid (forged or altered request)"
    return None


class _Clock:
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


def slack_action(body: str) -> SlackAction | None:
    """The first button of a block_actions payload (form field `payload`), or None."""
    try:
        payload = json.loads(parse_qs(body).get("payload", [""])[0])
        action = payload["actions"][0]
        user = payload.get("user") or {}
        return SlackAction(action_id=str(action.get("action_id", "")), value=str(action.get("value", ""))[:64],
                           user_id=str(user.get("id", "")), user_name=str(user.get("username") or user.get("name") or user.get("id", "")),
                           response_url=payload.get("response_url"),
                           message_blocks=(payload.get("message") or {}).get("blocks"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
