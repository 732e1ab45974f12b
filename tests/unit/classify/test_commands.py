"""Investigation commands are filled with the incident's names, and usable without them."""

from __future__ import annotations

import pytest

from incident_responder.classify import classify

OOM = "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB."


def test_names_fill_the_command_templates(catalog) -> None:
    names = {"job_name": "3dgs-prod-0042", "region": "us-west-2", "log_group": "/aws/sagemaker/TrainingJobs",
             "log_stream": "3dgs-prod-0042/algo-1-1764378390"}
    commands = classify(OOM, names=names, catalog=catalog).commands
    assert any("--training-job-name 3dgs-prod-0042 --region us-west-2" in c for c in commands), commands
    assert not any("<job_name>" in c or "<region>" in c for c in commands)


def test_missing_names_render_as_placeholders(catalog) -> None:
    commands = classify(OOM, catalog=catalog).commands
    assert any("--training-job-name <job_name>" in c for c in commands), commands


def test_values_are_shell_quoted(catalog) -> None:
    commands = classify(OOM, names={"job_name": "x; rm -rf /"}, catalog=catalog).commands
    assert any("--training-job-name 'x; rm -rf /'" in c for c in commands), commands


@pytest.mark.parametrize(
    ("names", "error", "message"),
    [
        ({"jobname": "x"}, ValueError, "unknown name"),
        ({"job_name": 42}, TypeError, "must be a string"),
        (["job_name"], TypeError, "must be a mapping"),
    ],
)
def test_bad_names_are_rejected_clearly(catalog, names, error, message) -> None:
    with pytest.raises(error, match=message):
        classify(OOM, names=names, catalog=catalog)


def test_remediation_combines_rule_and_guide_steps(catalog) -> None:
    diagnosis = classify('exec: "train": executable file not found in $PATH', catalog=catalog)
    assert any("ENTRYPOINT" in step for step in diagnosis.remediation)
    assert any("chmod +x" in step for step in diagnosis.remediation)  # the guide's category step
