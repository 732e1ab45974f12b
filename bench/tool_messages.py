#!/usr/bin/env python3
"""How many of the pipeline tools' own failure messages the classifier answers with their category.

    python bench/tool_messages.py            # per inventory and label: answered / messages
    python bench/tool_messages.py --misses   # and each message not answered with its label
    python bench/tool_messages.py --update   # rewrite each entry's `answered` from the current catalog

The inventories in bench/tool_messages/ (issue 11, round 17; docs/classifier.md) list, per tool, the failure
messages its source code prints (`template`, copied from `repo` at `path` and `rev`), one realistic printed
`instance` each, the guide category the instance belongs to (`label`, with `why`), and whether the catalog
answered it with that label when the inventory was committed (`answered`).
tests/unit/classify/test_tool_messages.py holds the catalog to `answered`: an answered message must stay
answered, and one that becomes answered must be marked so (the inventory then records the gain).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVENTORIES = ROOT / "bench" / "tool_messages"
try:
    from incident_responder.classify import classify, load_catalog
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "functions"))
    from incident_responder.classify import classify, load_catalog


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def answer(message: dict, catalog) -> str:
    return classify(message["instance"], catalog=catalog).category.value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", action="store_true", help="print each message not answered with its label")
    parser.add_argument("--update", action="store_true", help="rewrite `answered` from the current catalog")
    args = parser.parse_args(argv)
    catalog = load_catalog()
    total = right = 0
    for path in sorted(INVENTORIES.glob("*.jsonl")):
        messages = read(path)
        per_label, per_label_right = Counter(), Counter()
        for message in messages:
            got = answer(message, catalog)
            ok = got == message["label"]
            per_label[message["label"]] += 1
            per_label_right[message["label"]] += ok
            if args.update:
                message["answered"] = ok
            if args.misses and not ok:
                print(f"  {path.stem}: {message['label']} -> {got}: {message['instance'][:160]!r}")
        if args.update:
            path.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages), encoding="utf-8")
        figures = ", ".join(f"{label} {per_label_right[label]}/{n}" for label, n in per_label.most_common())
        print(f"{path.stem}: {sum(per_label_right.values())}/{len(messages)} ({figures})")
        total += len(messages)
        right += sum(per_label_right.values())
    print(f"all: {right}/{total} answered with their label")
    return 0


if __name__ == "__main__":
    sys.exit(main())
