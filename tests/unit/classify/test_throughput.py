"""A megabyte of log is classified end to end (no timing asserted: see bench/classifier_eval.py)."""

from __future__ import annotations

from incident_responder.classify import classify


def _big_log(lines: int) -> str:
    body = [f"2026-11-29 01:00:00,{i % 1000:03d} INFO step={i} loss=0.0{i % 97:02d} psnr=27.{i % 10}"
            for i in range(lines)]
    body.append("PermissionError: [Errno 13] Permission denied: '/opt/ml/model/point_cloud.ply'")
    return "\n".join(body)


def test_one_megabyte_log_finds_the_last_line_with_its_number(catalog) -> None:
    text = _big_log(18_000)
    assert len(text) > 1_000_000
    diagnosis = classify(text, catalog=catalog)
    assert (diagnosis.category.value, diagnosis.cause) == ("file_permissions_paths", "permission_denied")
    assert diagnosis.evidence[0].line == 18_001


def test_non_ascii_text_keeps_line_numbers(catalog) -> None:
    text = "İstanbul ✨ Synthesis ✓\n❌ Deployment failed\nModuleNotFoundError: No module named 'gsplat'"
    diagnosis = classify(text, catalog=catalog)
    assert diagnosis.evidence[0].line == 3


def test_a_log_repeating_one_error_keeps_the_earliest_lines_as_evidence(catalog) -> None:
    lines = ["PermissionError: [Errno 13] Permission denied: '/runtime'"] * 50_000
    lines.insert(20_000, "step 20000 loss=0.02")
    diagnosis = classify("\n".join(lines), catalog=catalog)
    assert diagnosis.cause == "permission_denied"
    assert [e.line for e in diagnosis.evidence] == [1, 2, 3, 4, 5]
