"""Renderings of an incident (or an unusable event) for Slack, SNS and the terminal.

slack_sdk is imported only when a Slack rendering is asked for (Lambda cold start).
"""

from __future__ import annotations

from typing import Any

from .sns import SnsMessage, render_follow_up_sns, render_intake_error_sns, render_sns
from .text import render_follow_up_text, render_intake_error_text, render_text

_SLACK_NAMES = ("render_slack", "render_intake_error_slack", "render_follow_up_slack")


def __getattr__(name: str) -> Any:
    if name in _SLACK_NAMES:
        from . import slack

        return getattr(slack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SnsMessage",
    "render_follow_up_slack",
    "render_follow_up_sns",
    "render_follow_up_text",
    "render_intake_error_slack",
    "render_intake_error_sns",
    "render_intake_error_text",
    "render_slack",
    "render_sns",
    "render_text",
]
