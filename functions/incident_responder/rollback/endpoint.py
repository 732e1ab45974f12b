"""The decision endpoint's logic (handlers/decide.py routes HTTP to it): Slack buttons and signed links.

Slack: the signature is checked on the raw body (slack_sdk's verifier, 5-minute window) before
anything in it is believed; only allow-listed users decide; the answer is immediate (one DynamoDB
read, one conditional write, one SendTaskSuccess) and the message is updated through its
response_url with who decided. Links: GET shows a confirmation page and never acts; POST decides.
"""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs

from ..report.slack import APPROVE_ACTION, REJECT_ACTION, UNDO_ACTION
from . import signing
from .decision import Actor, Result, SlackAction, slack_action, slack_check
from .service import RollbackService
from .workflow import WorkflowError

logger = logging.getLogger(__name__)
RESPONSE_URL_TIMEOUT_S = 2
_DECISION_OF = {APPROVE_ACTION: "approve", REJECT_ACTION: "reject"}


@dataclass
class HttpReply:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"


class SlackGroups:
    """Members of the allow-listed Slack user groups (usergroups.users.list with the app's bot token),
    cached for a minute. Fails closed: a group that cannot be read allows nobody."""

    TTL_S = 60.0

    def __init__(self, groups: frozenset[str], bot_token: Callable[[], str | None], api_url: str,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.groups = groups
        self._token = bot_token
        self._api_url = api_url
        self._now = now
        self._members: tuple[float, frozenset[str]] | None = None

    def members(self) -> frozenset[str]:
        if not self.groups:
            return frozenset()
        if self._members is not None and self._now() - self._members[0] < self.TTL_S:
            return self._members[1]
        from slack_sdk import WebClient

        token = self._token()
        if not token:
            raise LookupError("no Slack bot token to read the allow-listed groups (SlackBotTokenSecretArn)")
        client = WebClient(token=token, base_url=self._api_url, timeout=RESPONSE_URL_TIMEOUT_S)
        found: set[str] = set()
        for group in sorted(self.groups):
            found.update(client.usergroups_users_list(usergroup=group)["users"])
        self._members = (self._now(), frozenset(found))
        return self._members[1]


@dataclass
class DecisionEndpoint:
    service: RollbackService
    slack_signing_secret: Callable[[], str | None]
    allowed_slack_users: frozenset[str]
    now: Callable[[], float] = time.time
    slack_groups: SlackGroups | None = None

    def _allow_list_refusal(self, action: SlackAction) -> str | None:
        """None when the user may decide, else the reason they may not."""
        if action.user_id in self.allowed_slack_users:
            return None
        if self.slack_groups is not None and self.slack_groups.groups:
            try:
                if action.user_id in self.slack_groups.members():
                    return None
            except Exception as exc:  # noqa: BLE001 - fail closed, and say why
                return f"the allow-listed Slack groups could not be read ({type(exc).__name__}); nobody outside " \
                       "ALLOWED_SLACK_USERS may decide"
        return f"Slack user {action.user_id} ({action.user_name}) is not on the allow-list"

    # ------------------------------------------------------------ Slack

    def slack(self, body: str, headers: dict[str, str]) -> HttpReply:
        action = slack_action(body)
        claimed = action.value if action else None
        actor = Actor(id=action.user_id if action else "?", name=(action.user_name if action else "?") or "?", via="slack")
        secret = self.slack_signing_secret()
        if not secret:
            return HttpReply(503, "Slack decisions are not configured (SlackSigningSecretArn).", "text/plain")
        problem = slack_check(secret, body, headers, self.now)
        if problem:
            self.service.decider.refuse(claimed, problem, actor)
            return HttpReply(401, "", "text/plain")
        if action is None:
            return HttpReply(400, "not a block_actions payload", "text/plain")
        refusal = self._allow_list_refusal(action)
        if refusal:
            result = self.service.decider.refuse(claimed, refusal, actor)
            return self._answer(action, result, original=False)
        if action.action_id in _DECISION_OF:
            result = self.service.decider.decide(action.value, _DECISION_OF[action.action_id], actor)
            return self._answer(action, result, original=True)
        if action.action_id == UNDO_ACTION:
            return self._answer(action, self._start_undo(action.value, actor), original=True)
        return HttpReply(200, "", "text/plain")  # a link button: Slack reports the click, nothing to do

    def _start_undo(self, rollback_id: str, actor: Actor) -> Result:
        item = self.service.approvals.get(rollback_id)
        if item is None:
            return self.service.decider.refuse(rollback_id, "unknown approval id", actor, item={})
        try:
            undo_id, _ = self.service.start_undo(item["incident_key"])
        except WorkflowError as exc:
            return self.service.decider.refuse(rollback_id, f"undo not started: {exc}", actor, item=item)
        return Result("approved", f"Undo {undo_id} of rollback {rollback_id} proposed by {actor.name}; it waits "
                      "for a decision (buttons below, or incident-responder approve).", undo_id, item["incident_key"])

    def _answer(self, action: SlackAction, result: Result, *, original: bool) -> HttpReply:
        if action.response_url:
            self._update_message(action, result, replace=original and result.acted)
        return HttpReply(200, "", "text/plain")

    def _update_message(self, action: SlackAction, result: Result, *, replace: bool) -> None:
        from slack_sdk.webhook import WebhookClient

        mark = ":white_check_mark:" if result.acted else ":no_entry:"
        note = {"type": "section", "text": {"type": "mrkdwn", "text": f"{mark} {_mrkdwn(result.message)} "
                                                                      f"(<@{action.user_id}>)"}}
        blocks = None
        if replace and action.message_blocks:
            # The report stays; its decision buttons give way to who decided (and an undo when approved).
            kept = [b for b in action.message_blocks if not str(b.get("block_id", "")).startswith("rollback:")]
            blocks = kept + [note]
            if result.status == "approved" and action.action_id == APPROVE_ACTION and result.approval_id:
                blocks.append({"type": "actions", "block_id": f"rollback:{result.approval_id}:undo", "elements": [
                    {"type": "button", "action_id": UNDO_ACTION, "value": result.approval_id,
                     "text": {"type": "plain_text", "text": "Undo rollback"}}]})
            elif result.approval_id and action.action_id == UNDO_ACTION and result.acted:
                blocks.append({"type": "actions", "block_id": f"rollback:{result.approval_id}", "elements": [
                    {"type": "button", "action_id": APPROVE_ACTION, "value": result.approval_id, "style": "primary",
                     "text": {"type": "plain_text", "text": "Approve undo"}},
                    {"type": "button", "action_id": REJECT_ACTION, "value": result.approval_id, "style": "danger",
                     "text": {"type": "plain_text", "text": "Reject undo"}}]})
        try:
            WebhookClient(action.response_url, timeout=RESPONSE_URL_TIMEOUT_S).send(
                text=result.message, blocks=blocks, replace_original=bool(blocks), response_type="ephemeral"
                if not blocks else None)
        except Exception as exc:  # noqa: BLE001 - the decision stands; only its echo in Slack failed
            logger.warning("could not update the Slack message", extra={"error": type(exc).__name__})

    # ------------------------------------------------------------ signed links

    def link_page(self, params: dict[str, str]) -> HttpReply:
        """GET: a confirmation page only. Nothing is decided or recorded (scanners fetch links)."""
        key = self.service.link_key()
        problem = signing.check(key, params, self.now()) if key else "decision links are not configured"
        if problem:
            return HttpReply(403 if "configured" not in problem else 503, _page("Link refused", f"{problem}. Nothing changed."))
        approval, decision = params["approval"], params["decision"]
        fields = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(params[k]))}">'
                         for k in ("approval", "decision", "expires", "sig"))
        body = (f"<p>{html.escape(decision.capitalize())} approval <code>{html.escape(approval)}</code>?</p>"
                f'<form method="post">{fields}<button type="submit">{html.escape(decision.capitalize())}</button></form>')
        return HttpReply(200, _page("Confirm the decision", body))

    def link_decide(self, form_body: str) -> HttpReply:
        params = {k: v[0] for k, v in parse_qs(form_body).items()}
        actor = Actor(id="signed-link", name="holder of a signed link", via="link")
        key = self.service.link_key()
        if not key:
            return HttpReply(503, _page("Link refused", "decision links are not configured. Nothing changed."))
        problem = signing.check(key, params, self.now())
        if problem:
            result = self.service.decider.refuse(params.get("approval", "")[:64] or None, problem, actor)
            return HttpReply(403, _page("Refused", result.message))
        result = self.service.decider.decide(params["approval"], params["decision"], actor)
        return HttpReply(200 if result.acted else 409, _page("Decided" if result.acted else "Refused", result.message))


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body if body.startswith('<') else '<p>' + html.escape(body) + '</p>'}"
            "</body></html>")


def as_json(reply: HttpReply) -> dict[str, Any]:
    return {"statusCode": reply.status, "headers": {"Content-Type": reply.content_type}, "body": reply.body}


__all__ = ["DecisionEndpoint", "HttpReply", "as_json", "json"]
