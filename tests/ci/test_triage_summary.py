"""The triage-failed-run action's summary: real `classify --format json` output in, safe Markdown out."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.events import event_files

REPO = Path(__file__).resolve().parents[2]
SUMMARY_SCRIPT = REPO / ".github" / "actions" / "triage-failed-run" / "summary.py"

_spec = importlib.util.spec_from_file_location("triage_summary", SUMMARY_SCRIPT)
assert _spec and _spec.loader
summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summary)

CLASSIFY_EVENTS = event_files("classify-*.json")
RUN_URL = "https://github.com/example-org/3dgs-pipeline/actions/runs/11987654321"


def _classify(log_path: Path, failure_reason: str | None = None) -> list[dict[str, Any]]:
    """What the action runs: the installed CLI, JSON Lines on stdout."""
    cli = Path(sys.executable).parent / "incident-responder"
    reason = ["--failure-reason", failure_reason] if failure_reason else []
    result = subprocess.run([str(cli), "classify", "--format", "json", *reason, str(log_path)],
                            capture_output=True, text=True, timeout=120, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def _job(job_id: int, name: str = "build", conclusion: str = "failure", step: str = "Build image") -> dict[str, Any]:
    return {
        "id": job_id, "run_id": 11987654321, "name": name, "status": "completed", "conclusion": conclusion,
        "html_url": f"{RUN_URL}/job/{job_id}",
        "steps": [
            {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1},
            {"name": step, "status": "completed", "conclusion": conclusion, "number": 2},
        ],
    }


def _render(tmp_path: Path, jobs: list[dict[str, Any]], records: dict[int, list[dict[str, Any]]]) -> str:
    diagnoses = tmp_path / "diagnoses"
    diagnoses.mkdir(exist_ok=True)
    for job_id, lines in records.items():
        (diagnoses / f"{job_id}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return summary.render({"total_count": len(jobs), "jobs": jobs}, diagnoses, "Build training image", RUN_URL)


def _record(**overrides: Any) -> dict[str, Any]:
    record = {"source": "x.log", "category": "workflow_parsing", "cause": "heredoc_delimiter_not_found",
              "confidence": 0.736, "evidence": [{"line": 2, "text": "syntax error"}], "remediation": ["Fix it."]}
    return {**record, **overrides}


def _table_cells(row: str) -> list[str]:
    """A GFM table row's cells: split on `|` not escaped by a backslash."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def _code_spans(markdown: str) -> list[str]:
    """Contents of CommonMark code spans: a run of N backticks closed by the next run of exactly N."""
    spans, i = [], 0
    while (m := re.compile(r"`+").search(markdown, i)) is not None:
        fence = m.group(0)
        close = re.compile(rf"(?<!`){fence}(?!`)").search(markdown, m.end())
        if close is None:
            i = m.end()
            continue
        content = markdown[m.end():close.start()]
        if content.startswith(" ") and content.endswith(" ") and content.strip():
            content = content[1:-1]
        spans.append(content)
        i = close.end()
    return spans


@pytest.mark.parametrize("event", CLASSIFY_EVENTS, ids=lambda p: p.stem)
def test_real_classify_output_is_rendered_whole(event: Path, tmp_path: Path):
    sample = json.loads(event.read_text())
    log = tmp_path / "job.log"
    log.write_text(sample["log"])
    records = _classify(log, sample.get("failure_reason"))
    assert len(records) == 1
    record = records[0]
    assert record["category"] == sample["expect"]["category"], "the sample no longer classifies as it says"

    markdown = _render(tmp_path, [_job(501)], {501: records})

    row = next(line for line in markdown.splitlines() if line.startswith("| `"))
    category, cause, confidence = _table_cells(row)
    assert _code_spans(category) == [record["category"]]
    assert _code_spans(cause) == [record["cause"]]
    assert confidence == f"{record['confidence']:.2f}"
    spans = _code_spans(markdown)
    for evidence in record["evidence"]:
        assert summary.shorten(evidence["text"]) in spans
        assert f"- line {evidence['line']}: " in markdown
    numbered = re.findall(r"^(\d+)\. ", markdown, re.M)
    assert numbered == [str(i) for i in range(1, len(record["remediation"]) + 1)]
    assert "Failing step: `Build image`" in markdown
    assert f"([log]({RUN_URL}/job/501))" in markdown


def test_a_pipe_in_a_table_cell_does_not_add_a_column(tmp_path: Path):
    markdown = _render(tmp_path, [_job(7)], {7: [_record(category="a|b", cause="c || d")]})
    row = next(line for line in markdown.splitlines() if line.startswith("| `"))
    cells = _table_cells(row)
    assert len(cells) == 3, row
    assert cells[0] == r"`a\|b`" and cells[1] == r"`c \|\| d`"


def test_a_pipe_in_evidence_outside_a_table_stays_as_it_is(tmp_path: Path):
    markdown = _render(tmp_path, [_job(7)], {7: [_record(evidence=[{"line": 3, "text": "cat a | grep b"}])]})
    assert "- line 3: `cat a | grep b`" in markdown


@pytest.mark.parametrize(
    "text",
    ["wanted `EOF')", "``double`` and `single`", "`starts and ends`", "```", "a ```` b"],
)
def test_backticks_in_evidence_stay_inside_one_code_span(text: str, tmp_path: Path):
    markdown = _render(tmp_path, [_job(7)], {7: [_record(evidence=[{"line": 9, "text": text}])]})
    line = next(line for line in markdown.splitlines() if line.startswith("- line 9: "))
    assert _code_spans(line.removeprefix("- line 9: ")) == [text]


def test_a_one_mebibyte_line_is_cut_to_a_readable_length(tmp_path: Path):
    huge = "RuntimeError: " + "x" * (1024 * 1024)
    markdown = _render(tmp_path, [_job(7)], {7: [_record(evidence=[{"line": 1, "text": huge}], remediation=[huge])]})
    assert max(len(line) for line in markdown.splitlines()) < summary.MAX_TEXT * 2 + 50
    assert "RuntimeError: xxx" in markdown and "\u2026" in markdown


def test_newlines_in_evidence_cannot_start_new_markdown_blocks(tmp_path: Path):
    text = "first\n# Heading\n| a | b |\n- item"
    markdown = _render(tmp_path, [_job(7)], {7: [_record(evidence=[{"line": 1, "text": text}])]})
    assert not re.search(r"^# Heading", markdown, re.M)
    assert "`first # Heading | a | b | - item`" in markdown


def test_remediation_text_cannot_inject_links_or_html(tmp_path: Path):
    step = "Click [here](https://attacker.example) or <img src=x onerror=alert(1)> *now*"
    markdown = _render(tmp_path, [_job(7)], {7: [_record(remediation=[step])]})
    line = next(line for line in markdown.splitlines() if line.startswith("1. "))
    assert "](" not in line.replace("\\]\\(", "")
    assert re.search(r"(?<!\\)<", line) is None
    assert r"\[here\]\(https://attacker\.example\)" in line


def test_only_failed_jobs_are_listed_and_a_missing_log_is_said(tmp_path: Path):
    jobs = [_job(1, "lint", "success"), _job(2, "build"), _job(3, "deploy", "timed_out")]
    markdown = _render(tmp_path, jobs, {2: [_record()]})
    assert "### Job `lint`" not in markdown
    assert "### Job `build`" in markdown and "### Job `deploy`" in markdown
    deploy = markdown.split("### Job `deploy`")[1]
    assert "No diagnosis: its log could not be downloaded" in deploy


def test_a_run_without_failed_jobs_explains_startup_failures(tmp_path: Path):
    markdown = _render(tmp_path, [], {})
    assert "startup_failure" in markdown and "does not parse" in markdown


def test_the_run_link_cannot_be_broken_out_of(tmp_path: Path):
    markdown = summary.render({"jobs": []}, tmp_path, "x", "https://example.com/a b)(<c>")
    assert "(https://example.com/a%20b%29%28%3Cc%3E)" in markdown


def test_the_script_writes_markdown_and_names_an_unreadable_jobs_file(tmp_path: Path):
    diagnoses = tmp_path / "d"
    diagnoses.mkdir()
    (diagnoses / "5.jsonl").write_text(json.dumps(_record()) + "\n")
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"total_count": 1, "jobs": [_job(5)]}))
    ok = subprocess.run([sys.executable, str(SUMMARY_SCRIPT), "--jobs", str(jobs), "--diagnoses", str(diagnoses),
                         "--run-name", "Build", "--run-url", RUN_URL], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "`workflow_parsing`" in ok.stdout, ok.stderr
    missing = subprocess.run([sys.executable, str(SUMMARY_SCRIPT), "--jobs", str(tmp_path / "nope.json"),
                              "--diagnoses", str(diagnoses)], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "cannot read the jobs list" in missing.stderr
