"""The layering docs/architecture.md promises, checked on the package's import statements."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "functions" / "incident_responder"


def _graph() -> dict[str, dict[str, bool]]:
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "bench" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.graph(PACKAGE)


def _reachable(graph: dict[str, dict[str, bool]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        for target in graph.get(name, {}):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("core", ["incident_responder.triage", "incident_responder.evidence",
                                  "incident_responder.classify"])
def test_the_core_imports_no_sink_renderer_store_or_delivery(core):
    reached = _reachable(_graph(), core)
    forbidden = {m for m in reached if m.split(".")[1] in ("sinks", "report", "store", "delivery", "respond")}
    assert not forbidden, f"{core} reaches {sorted(forbidden)}"


@pytest.mark.parametrize("module", ["incident_responder.sinks.slack", "incident_responder.sinks.sns",
                                    "incident_responder.sinks.stdout", "incident_responder.report.slack",
                                    "incident_responder.report.sns", "incident_responder.report.text",
                                    "incident_responder.store"])
def test_renderers_sinks_and_the_store_do_not_redact_again(module):
    # The Incident is redacted at triage's boundary; a second pass here would hide a missed field.
    assert "incident_responder.redact" not in _graph()[module]


def test_nothing_in_the_lambda_package_imports_the_demo_or_the_cli():
    graph = _graph()
    for name, edges in graph.items():
        if name.split(".")[1:2] in (["demo"], ["cli"]):
            continue
        assert not {t for t in edges if t.split(".")[1] in ("demo", "cli")}, name
