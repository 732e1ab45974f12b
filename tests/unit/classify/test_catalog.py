"""The catalog refuses bad rule files with an error that names the file, the rule and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from incident_responder.classify import CatalogError, load_catalog
from incident_responder.classify.catalog import build_catalog
from incident_responder.models import Category

from .conftest import load_cases

BAD_RULES = load_cases("bad_rules.yaml")


def _rewrite(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _apply(case: dict):
    def change(data: dict) -> None:
        if "append_copy_of" in case:
            data["rules"].append(copy.deepcopy(data["rules"][case["append_copy_of"]]))
            return
        target = data["rules"][case["rule"]] if "rule" in case else data
        for key, value in case["set"].items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value

    return change


def test_the_shipped_catalog_loads(catalog) -> None:
    assert len(catalog.rules) >= 40
    assert set(catalog.categories) == set(Category)


def test_the_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_the_rewrite_helper_keeps_a_valid_catalog_valid(rules_copy: Path) -> None:
    for path in rules_copy.glob("*.yaml"):
        _rewrite(path, lambda data: None)
    assert len(build_catalog(rules_copy).rules) == len(load_catalog().rules)


@pytest.mark.parametrize("case", BAD_RULES, ids=[c["name"] for c in BAD_RULES])
def test_bad_rule_file_fails_with_a_clear_error(case: dict, rules_copy: Path) -> None:
    _rewrite(rules_copy / case["file"], _apply(case))
    with pytest.raises(CatalogError) as raised:
        build_catalog(rules_copy)
    message = str(raised.value)
    for fragment in case["error"]:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_file_name_must_match_its_category(rules_copy: Path) -> None:
    (rules_copy / "cuda_gpu.yaml").rename(rules_copy / "gpu.yaml")
    with pytest.raises(CatalogError, match="name the file cuda_gpu.yaml"):
        build_catalog(rules_copy)


def test_invalid_yaml_names_the_file(rules_copy: Path) -> None:
    (rules_copy / "entry_point.yaml").write_text("category: entry_point\nrules: [\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="entry_point.yaml: not valid YAML"):
        build_catalog(rules_copy)


def test_unknown_yaml_is_required(rules_copy: Path) -> None:
    (rules_copy / "unknown.yaml").unlink()
    with pytest.raises(CatalogError, match="unknown.yaml is missing"):
        build_catalog(rules_copy)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no rule files"):
        build_catalog(tmp_path)
