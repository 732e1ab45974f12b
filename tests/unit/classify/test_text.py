"""Masking, noise detection, traceback parsing and prefilter literals."""

from __future__ import annotations

import pytest

from incident_responder.classify.text import is_noise, mask, parse_traceback, required_literals

ACCOUNT = "1234" + "5678" + "9012"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/ci", "arn:aws:iam::<account>:role/ci"),
        ("2024-02-23 06:40:08,652 ERROR boom", "<time> ERROR boom"),
        ("image@sha256:" + "ab" * 32, "image@sha256:<digest>"),
        ("request f81d4fae-7dec-11d0-a765-00a0c91e6bf6 failed", "request <uuid> failed"),
        ("layer deadbeef00112233aa pushed", "layer <hex> pushed"),
        ("read tcp 172.17.0.2:48072 timed out", "read tcp <ip> timed out"),
        ('File "/home/me/envs/gs/lib/python3.8/site-packages/torch/x.py"', 'File "<site-packages>/torch/x.py"'),
        ('File "C:\\Users\\me\\gs\\train.py", line 3', 'File "~/gs/train.py", line 3'),
        ("no ids here", "no ids here"),
        ('JSON "a\\nb" keeps its escapes', 'JSON "a\\nb" keeps its escapes'),
    ],
)
def test_mask(line: str, masked: str) -> None:
    assert mask(line) == masked


@pytest.mark.parametrize(
    ("line", "noise"),
    [
        ("/x/functional.py:507: UserWarning: torch.meshgrid: pass the indexing argument", True),
        ("WARNING: Retrying (Retry(total=4)) after connection broken", True),
        ("Training progress:  42%|████▏     | 12600/30000 [03:10<04:22, 66.21it/s]", True),
        ("ModuleNotFoundError: No module named 'gsplat'", False),
        ("PermissionError: [Errno 13] Permission denied: '/runtime'", False),
        ("2024-05-11 14:10:52 n176:26:29 [0] include/alloc.h:102 NCCL WARN Cuda failure 1 'invalid argument'", True),
        ("npm warn deprecated inflight@1.0.6: This module is not supported", True),
        # a sentence that warns people is not a log level (wave 8, mg011)
        ("I'm posting this to warn others: you will get The request signature we calculated does not match", False),
    ],
)
def test_noise(line: str, noise: bool) -> None:
    assert is_noise(line) is noise


def test_traceback_with_a_log_prefix() -> None:
    lines = [
        "algo-1_1  | Traceback (most recent call last):",
        'algo-1_1  |   File "/opt/ml/code/train.py", line 3, in <module>',
        "algo-1_1  |     main()",
        'algo-1_1  |   File "/opt/ml/code/train.py", line 9, in main',
        "algo-1_1  |     raise KeyError('SM_CHANNEL_TRAINING')",
        "algo-1_1  | KeyError: 'SM_CHANNEL_TRAINING'",
        "algo-1_1  | done",
    ]
    tb = parse_traceback(lines, start_line=10, marker_col=lines[0].index("Traceback"))
    assert tb.exception == "KeyError: 'SM_CHANNEL_TRAINING'" and tb.exception_line == 15
    assert [frame.line for frame in tb.frames] == [11, 13]
    assert (tb.last_frame.code_line, tb.last_frame.code) == (14, "raise KeyError('SM_CHANNEL_TRAINING')")


def test_truncated_traceback_decides_on_its_last_frame() -> None:
    lines = ["Traceback (most recent call last):", '  File "a.py", line 1, in f', "    g()"]
    tb = parse_traceback(lines, start_line=1, marker_col=0)
    assert tb.exception is None and tb.deciding_line == 2


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("Torch not compiled with CUDA enabled", ["torch not compiled with cuda enabled"]),
        ("(?:AccessDenied|not authorized to perform)", ["accessdenied", "not authorized to perform"]),
        (r"KeyError: '?SM_CHANNEL_\w+", ["sm_channel_"]),  # the longest certain literal
        (r"[Ee]xpired ?Token", ["expired"]),
        (r"\d+\s*\w+", None),
    ],
)
def test_required_literals(pattern: str, literals: list[str] | None) -> None:
    assert required_literals(pattern) == literals
