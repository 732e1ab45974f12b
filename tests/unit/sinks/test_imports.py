import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["incident_responder.sinks", "incident_responder.report"])
def test_importing_does_not_load_slack_sdk(module) -> None:
    probe = f"import sys, {module}; print('slack_sdk' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
