"""Slack Block Kit rendering, built from slack_sdk's model classes so Slack's limits are
checked here (``to_dict()`` validates) rather than discovered as a 400 at 3 a.m."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from ..models import Incident, IntakeError
from . import common

HEADER_MAX = HeaderBlock.text_max_length  # 150
SECTION_TEXT_MAX = SectionBlock.text_max_length  # 3000
FIELD_MAX = 2000
FIELDS_MAX = SectionBlock.fields_max_length  # 10
BUTTON_TEXT_MAX = ButtonElement.text_max_length  # 75
BUTTON_URL_MAX = ButtonElement.url_max_length  # 3000
BUTTONS_MAX = ActionsBlock.elements_max_length  # 25
CONTEXT_ELEMENTS_MAX = ContextBlock.elements_max_length  # 10
BLOCKS_MAX = 50
FALLBACK_TEXT_MAX = 3000


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    # A literal ``` inside would close the block early.
    return text.replace("```", "`\u200b``")


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=common.truncate(text, SECTION_TEXT_MAX)))


def _code_section(title: str, lines: list[str]) -> SectionBlock:
    """A titled code block holding as many whole lines as fit, then a count of the rest."""
    head, fence = f"*{title}*\n```", "```"
    budget = SECTION_TEXT_MAX - len(head) - len(fence)
    shown: list[str] = []
    used = 0
    escaped = [_code(escape(line)) for line in lines]
    for index, line in enumerate(escaped):
        remaining = len(escaped) - index - 1
        more_note = f"\n… {remaining} more line(s) not shown" if remaining else ""
        if used + len(line) + 1 + len(more_note) <= budget:
            shown.append(line)
            used += len(line) + 1
            continue
        left = len(escaped) - index
        note = f"… {left} more line(s) not shown"
        room = budget - used - len(note) - 2
        if room > 200:  # worth showing the start of a long line
            shown.append(common.truncate(line, room))
            left -= 1
            note = f"… {left} more line(s) not shown" if left else ""
        if note:
            shown.append(note)
        break
    return SectionBlock(text=MarkdownTextObject(text=head + "\n".join(shown) + fence))


def _facts_section(incident: Incident) -> SectionBlock:
    fields = [
        MarkdownTextObject(text=common.truncate(f"*{label}*\n{escape(value)}", FIELD_MAX))
        for label, value in common.facts(incident)[:FIELDS_MAX]
    ]
    return SectionBlock(fields=fields)


def _link_buttons(links: dict[str, str]) -> tuple[ActionsBlock | None, list[str]]:
    buttons: list[ButtonElement] = []
    left_out: list[str] = []
    for key, url in links.items():
        if len(url) > BUTTON_URL_MAX or len(buttons) == BUTTONS_MAX:
            left_out.append(key)
            continue
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text=common.truncate(common.link_label(key), BUTTON_TEXT_MAX, marker="…")),
                url=url,
                action_id=f"open_{key}"[:255],
            )
        )
    return (ActionsBlock(elements=buttons) if buttons else None), left_out


def _finish(blocks: list[Block], fallback: str) -> dict[str, Any]:
    if len(blocks) > BLOCKS_MAX:
        hidden = len(blocks) - (BLOCKS_MAX - 1)
        blocks = blocks[: BLOCKS_MAX - 1] + [
            ContextBlock(elements=[MarkdownTextObject(text=f"… {hidden} more block(s) not shown")])
        ]
    return {
        "text": common.truncate(fallback, FALLBACK_TEXT_MAX),
        "blocks": [block.to_dict() for block in blocks],
    }


def render_slack(incident: Incident) -> dict[str, Any]:
    """``{"text": fallback, "blocks": [...]}`` for chat.postMessage or an incoming webhook.

    Redacts first, so that no truncation can leave half a secret behind.
    """
    diagnosis = incident.diagnosis
    verdict, confidence = common.verdict(incident), common.confidence_pct(incident)
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=common.truncate(f"3DGS {common.outcome(incident).lower()}: {common.subject_name(incident)}",
                                     HEADER_MAX, marker="…"),
                emoji=False,
            )
        ),
        _section(
            f":rotating_light: *{escape(common.what_failed(incident))}* {common.outcome(incident).lower()}\n"
            f"*Verdict:* `{escape(verdict)}` (confidence *{confidence}*)\n"
            f"{escape(diagnosis.title)}"
        ),
        _facts_section(incident),
    ]

    reason = common.failure_reason(incident)
    if reason:
        blocks.append(_code_section("Failure reason", reason.splitlines()))
    if diagnosis.evidence:
        blocks.append(_code_section(
            "Evidence",
            [f"L{line.line}: {line.text}{common.evidence_location(line.source)}" for line in diagnosis.evidence],
        ))
    if diagnosis.remediation:
        steps = [f"{number}. {escape(step)}" for number, step in enumerate(diagnosis.remediation, start=1)]
        blocks.append(_section("*Remediation*\n" + "\n".join(steps)))
    if diagnosis.commands:
        blocks.append(_code_section("Investigate", list(diagnosis.commands)))
    if incident.evidence.missing:
        blocks.append(_section("*Missing evidence*\n" + "\n".join(
            f"• {escape(item.source)}: {escape(item.reason)}" for item in incident.evidence.missing
        )))

    blocks += _rollback_blocks(incident)
    actions, left_out = _link_buttons(incident.links)
    if actions is not None:
        blocks.append(actions)
    context = [f"incident `{escape(incident.key)}`", f"event `{escape(incident.event.event_id)}`",
               f"{incident.evidence.api_calls} AWS calls"]
    if left_out:
        context.append("links too long for a button: " + ", ".join(left_out))
    blocks += [DividerBlock(), ContextBlock(elements=[
        MarkdownTextObject(text=common.truncate(" · ".join(context), SECTION_TEXT_MAX))
    ])]

    fallback = (f"3DGS: {common.what_failed(incident)} {common.outcome(incident).lower()}: {verdict} ({confidence})"
                f" {diagnosis.title}")
    return _finish(blocks, escape(fallback))


# action_id of the decision buttons; their value is the short approval id (the token stays server-side).
APPROVE_ACTION, REJECT_ACTION, UNDO_ACTION = "rollback_approve", "rollback_reject", "rollback_undo"


def _rollback_blocks(incident: Incident) -> list[Block]:
    lines = common.rollback_lines(incident)
    if not lines:
        return []
    proposal = incident.rollback.proposal if incident.rollback else None
    text = "\n".join(escape(line) for line in lines if not line.startswith(("Approve (", "Reject (")))
    blocks: list[Block] = [_section("*Rollback*\n" + text)]
    if proposal is not None:
        buttons = [
            ButtonElement(text=PlainTextObject(text="Approve rollback"), action_id=APPROVE_ACTION,
                          value=proposal.approval_id, style="primary"),
            ButtonElement(text=PlainTextObject(text="Reject"), action_id=REJECT_ACTION,
                          value=proposal.approval_id, style="danger"),
        ]
        for label, url in (("Approve by link", proposal.approve_url), ("Reject by link", proposal.reject_url)):
            if url and len(url) <= BUTTON_URL_MAX:
                buttons.append(ButtonElement(text=PlainTextObject(text=label), url=url,
                                             action_id=f"open_{label.lower().replace(' ', '_')}"))
        blocks.append(ActionsBlock(block_id=f"rollback:{proposal.approval_id}", elements=buttons))
    return blocks


def render_follow_up_slack(incident: Incident, added: list[str]) -> dict[str, Any]:
    """One short message: what a later event added to an incident already reported."""
    lines = "\n".join(f"• {escape(item)}" for item in added)
    blocks: list[Block] = [_section(
        f":link: *{escape(common.follow_up_title(incident))}*\n"
        f"Still `{escape(common.verdict(incident))}` ({common.confidence_pct(incident)}). This event added:\n{lines}"
    )]
    links = {key: url for key, url in incident.links.items() if key in ("execution", "state_machine")}
    actions, _ = _link_buttons(links)
    if actions is not None:
        blocks.append(actions)
    return _finish(blocks, escape(f"3DGS update: {common.follow_up_title(incident)}: {'; '.join(added)}"))


def render_intake_error_slack(err: IntakeError) -> dict[str, Any]:
    title = common.intake_error_title(err)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=common.truncate(title, HEADER_MAX, marker="…"), emoji=False)),
        _section(":warning: The responder could not use this event and did not retry it. "
                 "Fix its producer (or the rule that routed it) and resend.\n"
                 + "\n".join(f"• {escape(problem)}" for problem in err.errors)),
    ]
    fields = [(label, value) for label, value in (
        ("Event id", err.event_id), ("Source", err.source), ("Detail type", err.detail_type),
        ("Received", err.received_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()),
    ) if value]
    blocks.append(SectionBlock(fields=[
        MarkdownTextObject(text=common.truncate(f"*{label}*\n{escape(value)}", FIELD_MAX)) for label, value in fields
    ]))
    if err.raw_excerpt:
        blocks.append(_code_section("Event excerpt", err.raw_excerpt.splitlines()))
    return _finish(blocks, escape(f"3DGS responder: {title}: {'; '.join(err.errors)}"))
