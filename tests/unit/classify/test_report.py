"""`incident-responder rules`: the listing and the overlap report."""

from __future__ import annotations

from pathlib import Path

import yaml

from incident_responder.classify import catalog_report
from incident_responder.classify.catalog import build_catalog


def test_report_lists_every_rule(catalog) -> None:
    report = catalog_report(catalog)
    for rule in catalog.rules:
        assert rule.id in report and rule.cause in report
    assert "Overlapping rules" in report


def test_report_names_rules_that_overlap_and_who_wins(rules_copy: Path) -> None:
    path = rules_copy / "python_dependencies.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["rules"].append({
        "id": "python_dependencies.any_import_error",
        "cause": "any_import_error",
        "title": "Any import error",
        "patterns": ["No module named"],
        "priority": 10,
        "confidence": 0.5,
        "fixtures": {"positive": ["ImportError: No module named foo"], "negative": ["all good"]},
    })
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    report = catalog_report(build_catalog(rules_copy))
    assert ("python_dependencies.module_not_found  <->  python_dependencies.any_import_error   "
            "decided by: python_dependencies.module_not_found") in report
