"""The CLI's contracts: classify's JSON Lines, exit codes, and clear errors."""

from __future__ import annotations

import io
import json
import sys

import pytest

from incident_responder.cli import main

LOG = 'exec: "train": executable file not found in $PATH'


def _run(argv, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(argv, stdout=out), out.getvalue()
    finally:
        sys.stdin = old


def test_classify_stdin_as_json_prints_one_object_per_input():
    code, out = _run(["classify", "--format", "json", "-"], stdin=LOG + "\n")
    (line,) = out.splitlines()
    record = json.loads(line)
    assert code == 0
    assert set(record) == {"source", "category", "cause", "confidence", "evidence", "remediation"}
    assert record["source"] == "<stdin>" and record["category"] == "entry_point"
    assert record["evidence"] == [{"line": 1, "text": LOG}]
    assert isinstance(record["remediation"], list) and record["remediation"]


def test_classify_several_files_gives_json_lines_in_order(tmp_path):
    files = []
    for name, text in [("a.log", LOG), ("b.log", "all good, nothing failed")]:
        (tmp_path / name).write_text(text)
        files.append(str(tmp_path / name))
    code, out = _run(["classify", "--format", "json", *files])
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["source"] for r in records] == files
    assert [r["category"] for r in records] == ["entry_point", "unknown"]


def test_classify_fills_commands_from_names(tmp_path):
    code, out = _run(["classify", "--name", "job_name=3dgs-x", "-"], stdin=LOG)
    assert code == 0 and "3dgs-x" in out


def test_classify_unreadable_file_is_a_clear_error(tmp_path, capsys):
    code, _ = _run(["classify", str(tmp_path / "missing.log")])
    assert code == 2 and "cannot read" in capsys.readouterr().err


def test_bad_name_option_is_a_clear_error(capsys):
    code, _ = _run(["classify", "--name", "oops", "-"], stdin=LOG)
    assert code == 2 and "KEY=VALUE" in capsys.readouterr().err


def test_triage_of_a_malformed_event_exits_2_and_names_the_field(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"hello": "world"}))
    code, out = _run(["triage", str(event), "--region", "us-west-2"])
    assert code == 2 and "detail-type" in out


def test_triage_of_unreadable_json_exits_2(tmp_path, capsys):
    event = tmp_path / "event.json"
    event.write_text("{not json")
    code, _ = _run(["triage", str(event)])
    assert code == 2 and "cannot read the event" in capsys.readouterr().err


def test_demo_lists_scenarios_and_rejects_unknown_ones(capsys):
    code, out = _run(["demo", "--list"])
    assert code == 0 and "train-argument-replaces-cmd (default)" in out
    code, _ = _run(["demo", "--scenario", "no-such"])
    assert code == 2 and "choose one of" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "triage", "classify", "rules"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: incident-responder" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["classify", "--name", "bogus=1", "-"], "--name bogus: unknown name; use one of"),
    (["triage", "--sns-topic-arn", "alerts", "EVENT"], "--sns-topic-arn: Value error, topic_arn must be an SNS topic ARN"),
    (["triage", "--log-wait", "100000", "EVENT"], "--log-wait: Input should be less than or equal to 600"),
])
def test_bad_options_get_one_clear_line_not_a_traceback(argv, message, tmp_path, capsys):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"region": "us-west-2"}))
    code, _ = _run([str(event) if a == "EVENT" else a for a in argv], stdin=LOG)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_a_deeply_nested_event_file_is_refused_clearly(tmp_path, capsys):
    event = tmp_path / "event.json"
    event.write_text("[" * 100_000 + "]" * 100_000)
    code, _ = _run(["triage", str(event)])
    assert code == 2 and "nested too deeply" in capsys.readouterr().err


def test_text_output_strips_terminal_escape_sequences():
    code, out = _run(["classify", "-"], stdin="\x1b]0;pwned\x07\x1b[2J" + LOG + "\x1b[31m\n")
    assert code == 0 and "\x1b" not in out and "\x07" not in out and LOG in out


def test_a_structured_line_decides_only_as_the_failure_reason():
    line = "[cuda_gpu/no_kernel_image] this GPU (sm_75) is not in the image's compiled architectures: rebuild"
    _, as_log = _run(["classify", "--format", "json", "-"], stdin=line + "\n")
    _, as_reason = _run(["classify", "--format", "json", "--failure-reason", "AlgorithmError: " + line, "-"],
                        stdin="loading scene\n")
    assert json.loads(as_reason)["cause"] == "no_kernel_image" and json.loads(as_reason)["confidence"] == 1.0
    assert (json.loads(as_log)["cause"], json.loads(as_log)["confidence"]) != ("no_kernel_image", 1.0)
