"""Render `incident-responder classify --format json` output for a failed run as Markdown.

Used by the triage-failed-run action to write the job summary ($GITHUB_STEP_SUMMARY):

    python summary.py --jobs jobs.json --diagnoses DIR --run-name NAME --run-url URL

jobs.json is GitHub's "list jobs for a workflow run" response; DIR holds one `<job id>.jsonl`
file per failed job (the classify output for its log). A failed job without one is reported as
such rather than dropped. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

# Longest evidence line shown; a 1 MiB log line must not become a 1 MiB summary.
MAX_TEXT = 300
# GitHub refuses step summaries over 1 MiB; stay well under it whatever the number of jobs.
MAX_SUMMARY = 512 * 1024
FAILED_CONCLUSIONS = {"failure", "timed_out", "startup_failure"}


def shorten(text: str, limit: int = MAX_TEXT) -> str:
    """One line, at most `limit` characters (an ellipsis marks the cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def code(text: str, limit: int = MAX_TEXT, *, in_table: bool = False) -> str:
    """An inline code span that holds any text: backticks inside get a longer fence. In a table
    cell `|` is escaped, since GitHub's tables split on `|` even inside code spans."""
    flat = shorten(text, limit)
    flat = flat.replace("|", "\\|") if in_table else flat
    if not flat:
        return "(empty)"
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or longest else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def plain(text: str, limit: int = MAX_TEXT) -> str:
    """Free text (a remediation step, a job name) as literal Markdown: no links, no HTML, no tables."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", shorten(text, limit))


def failed_jobs(jobs_response: dict[str, Any]) -> list[dict[str, Any]]:
    return [job for job in jobs_response.get("jobs") or [] if job.get("conclusion") in FAILED_CONCLUSIONS]


def failing_step(job: dict[str, Any]) -> str | None:
    for step in job.get("steps") or []:
        if step.get("conclusion") in FAILED_CONCLUSIONS:
            return str(step.get("name", ""))
    return None


def read_diagnoses(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


def render_diagnosis(record: dict[str, Any]) -> list[str]:
    lines = [
        "| Category | Cause | Confidence |",
        "|---|---|---|",
        f"| {code(record.get('category', 'unknown'), in_table=True)} | {code(record.get('cause', ''), in_table=True)} "
        f"| {float(record.get('confidence', 0.0)):.2f} |",
        "",
    ]
    evidence = record.get("evidence") or []
    if evidence:
        lines.append("**Evidence**")
        lines.append("")
        lines += [f"- line {int(e.get('line', 0))}: {code(e.get('text', ''))}" for e in evidence]
        lines.append("")
    remediation = record.get("remediation") or []
    if remediation:
        lines.append("**What to do**")
        lines.append("")
        lines += [f"{i}. {plain(step)}" for i, step in enumerate(remediation, 1)]
        lines.append("")
    return lines


def render(jobs_response: dict[str, Any], diagnoses: Path, run_name: str, run_url: str) -> str:
    title = plain(run_name or "workflow run", 200)
    lines = [f"## Triage of the failed run: [{title}]({_url(run_url)})", ""]
    jobs = failed_jobs(jobs_response)
    if not jobs:
        lines += ["No failed job was found in this run (a `startup_failure` has none: GitHub could not "
                  "start the workflow, usually because its file does not parse; open the run to see why).", ""]
    for job in jobs:
        heading = f"### Job {code(job.get('name', job.get('id', '?')), 200)}"
        if job.get("html_url"):
            heading += f" ([log]({_url(job['html_url'])}))"
        lines += [heading, ""]
        step = failing_step(job)
        if step:
            lines += [f"Failing step: {code(step, 200)}", ""]
        path = diagnoses / f"{int(job['id'])}.jsonl"
        if not path.is_file():
            lines += ["No diagnosis: its log could not be downloaded (expired, or not available yet).", ""]
            continue
        for record in read_diagnoses(path):
            lines += render_diagnosis(record)
    text = "\n".join(lines)
    if len(text.encode()) > MAX_SUMMARY:
        cut = text.encode()[:MAX_SUMMARY].decode(errors="ignore")
        text = cut[: cut.rfind("\n")] + "\n\n(summary cut at 512 KiB; see each job's log)"
    return text + "\n"


def _url(url: str) -> str:
    """A link target GitHub's Markdown cannot be broken out of (no spaces, parentheses or angle brackets)."""
    return re.sub(r"[\s()<>]", lambda m: f"%{ord(m.group(0)):02X}", str(url))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=Path, required=True, help="GitHub's list-jobs response (JSON)")
    parser.add_argument("--diagnoses", type=Path, required=True, help="folder of <job id>.jsonl classify outputs")
    parser.add_argument("--run-name", default="")
    parser.add_argument("--run-url", default="")
    args = parser.parse_args(argv)
    try:
        jobs_response = json.loads(args.jobs.read_text())
    except (OSError, ValueError) as exc:
        print(f"summary.py: cannot read the jobs list {args.jobs}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(jobs_response, args.diagnoses, args.run_name, args.run_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
