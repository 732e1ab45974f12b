"""corpus/*.jsonl: every case is well-formed, public, secret-free, and the split keeps each thread on one side."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest

from bench.corpus_tool import LABELS, reposts, thread_of
from incident_responder.models import GUIDE_CATEGORIES
from incident_responder.redact import redact

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
PARTS = ("train", "test", "test2")
HELD_OUT = ("test", "test2")
FIELDS = {"id": str, "source": str, "log": str, "label": str, "cause": str}
OPTIONAL = {"also": str, "tool": str, "note": str}
# https, a dotted public host name (no IP address, no user info, no port), a path, no whitespace
PUBLIC_URL = re.compile(r"^https://(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})(?P<path>/\S*)$")
PRIVATE_HOSTS = re.compile(r"(^|\.)(localhost|local|internal|intranet|corp|example\.com|example\.org)$")
CAUSE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
# sha256 of each held-out part's [id, source, log] triples as frozen (test: commit 3d10399; test2: commit
# fd23e4c): after the freeze only labels may change (label, also, cause, note), each fix in its own commit
# with its reason (issue 11)
FROZEN_LOGS = {
    "test": "e18ea17e4404a620f398311adbd3a80230ce543481a38fbce85ad4d47e93b8e1",
    "test2": "728843958db74c8ac4d19de87669c1caa734449088e42215aeeb312e8ae28780",
}


def _load(part: str) -> list[dict]:
    path = CORPUS / f"{part}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


CASES = {part: _load(part) for part in PARTS}
ALL = [(part, case) for part in PARTS for case in CASES[part]]


def test_the_labels_are_the_guides() -> None:
    assert set(LABELS) == {*GUIDE_CATEGORIES, "unknown"}


@pytest.mark.parametrize(("part", "case"), ALL, ids=[f"{p}-{c.get('id')}" for p, c in ALL])
def test_case(part: str, case: dict) -> None:
    for field, kind in FIELDS.items():
        assert isinstance(case.get(field), kind) and case[field].strip(), f"{field} missing or empty"
    for field, kind in OPTIONAL.items():
        assert field not in case or isinstance(case[field], kind), f"{field} is not a {kind.__name__}"
    assert set(case) <= {*FIELDS, *OPTIONAL}, f"unknown fields {set(case) - {*FIELDS, *OPTIONAL}}"
    assert case["label"] in LABELS
    assert "also" not in case or (case["also"] in LABELS and case["also"] != case["label"])
    assert CAUSE.match(case["cause"]), f"cause {case['cause']!r} is not snake_case"
    url = PUBLIC_URL.match(case["source"])
    assert url, f"source {case['source']!r} is not a public https URL"
    assert not PRIVATE_HOSTS.search(url["host"]), f"source host {url['host']} is not public"
    assert redact(case["log"]) == case["log"], "the redactor finds something to redact in the log"


@pytest.mark.parametrize("part", HELD_OUT)
def test_the_held_out_parts_keep_their_frozen_logs(part: str) -> None:
    triples = [[case["id"], case["source"], case["log"]] for case in CASES[part]]
    digest = hashlib.sha256(json.dumps(triples, ensure_ascii=False).encode("utf-8")).hexdigest()
    assert digest == FROZEN_LOGS[part], f"corpus/{part}.jsonl changed beyond its labels: it is frozen (corpus/README.md)"


def test_ids_are_unique() -> None:
    ids = Counter(case["id"] for _, case in ALL)
    assert not [i for i, n in ids.items() if n > 1]


@pytest.mark.parametrize(("first", "second"), list(combinations(PARTS, 2)))
def test_no_thread_in_two_parts(first: str, second: str) -> None:
    threads = {part: {thread_of(c["source"]) for c in CASES[part]} for part in (first, second)}
    assert not threads[first] & threads[second]


@pytest.mark.parametrize(("first", "second"), list(combinations(PARTS, 2)))
def test_no_log_reposted_in_another_part(first: str, second: str) -> None:
    # one report filed in two repositories is two threads to thread_of, and one leak to the split
    assert not reposts(CASES[first], CASES[second])


def test_no_log_twice() -> None:
    logs = Counter(case["log"].strip() for _, case in ALL)
    assert not [log[:80] for log, n in logs.items() if n > 1]


def test_sizes_meet_the_issue() -> None:
    everything = Counter(case["label"] for _, case in ALL)
    assert len(ALL) >= 400
    assert all(everything[label] >= 30 for label in GUIDE_CATEGORIES), everything
    assert everything["unknown"] >= 60, everything
    for part in HELD_OUT:
        held_out = Counter(case["label"] for case in CASES[part])
        assert len(CASES[part]) >= 150 and all(held_out[label] >= 12 for label in LABELS), (part, held_out)
