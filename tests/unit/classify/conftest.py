"""Shared data for the classifier tests: the real catalog and a writable copy of its files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from incident_responder.classify import load_catalog
from incident_responder.classify.catalog import RULES_DIR

CASES_DIR = Path(__file__).parent / "cases"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A copy of the real rule files that a test may break."""
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target)
    return target


def load_cases(name: str) -> list[dict]:
    return yaml.safe_load((CASES_DIR / name).read_text(encoding="utf-8"))
