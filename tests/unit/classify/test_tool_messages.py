"""The pipeline tools' own failure messages (bench/tool_messages/, from their source code) keep their answers."""

from __future__ import annotations

import pytest

from bench.tool_messages import INVENTORIES, read
from incident_responder.classify import classify

MESSAGES = [
    pytest.param(message, id=f"{path.stem}:{n}")
    for path in sorted(INVENTORIES.glob("*.jsonl"))
    for n, message in enumerate(read(path), start=1)
]
FIELDS = {"repo", "path", "rev", "template", "instance", "label", "why", "answered"}


def test_inventories_are_there():
    assert len(MESSAGES) > 1000


@pytest.mark.parametrize("message", MESSAGES)
def test_message_keeps_its_recorded_answer(message, catalog):
    assert set(message) == FIELDS, f"fields: {sorted(set(message) ^ FIELDS)}"
    answered = classify(message["instance"], catalog=catalog).category.value == message["label"]
    if message["answered"]:
        assert answered, f"{message['instance']!r} is no longer answered {message['label']} ({message['repo']} {message['path']})"
    else:
        assert not answered, (f"{message['instance']!r} is now answered {message['label']}: "
                              "run `python bench/tool_messages.py --update` to record it")
