"""`incident-responder demo --rollback`: the whole loop, one line per step, in its own process (its
emulator's moto backends and MOTO_PORT are process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.template.template_model import REPO


@pytest.mark.slow
def test_demo_rollback_runs_the_whole_loop_and_undo_restores_everything():
    result = subprocess.run([sys.executable, "-m", "incident_responder.cli", "demo", "--rollback"], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO / "functions")})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(".", 1)[0].strip() for line in lines] == [str(n) for n in range(1, len(lines) + 1)]
    text = result.stdout
    for expected in ("ledger records sha256:", "proposes: sha256:", "clicked Approve: signed Slack request -> "
                     "DecisionFunction answered 200", "approved by demo-operator via slack", "status done",
                     "3DGS rollback", "(the known-good digest)", "undo done", "exactly as before the rollback: yes"):
        assert expected in text, expected
