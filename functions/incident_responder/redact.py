"""Redaction of credentials before anything leaves the account.

Every sink, and the responder's own logger, passes text through here. Training logs
are untrusted: a crashing script may print its environment, a config file or a
presigned URL, so the patterns look for the secret formats themselves rather than
for well-behaved key names only.

Import cost matters (Lambda cold start): only ``re`` and ``json`` at module level.
``RedactingFormatter`` subclasses Powertools' formatter and is built on first access.
"""

from __future__ import annotations

import re
from typing import Any

_B64 = r"A-Za-z0-9/+="
# Key/value separators as they appear in env dumps, INI files, JSON, and JSON that was
# itself embedded in a JSON string (escaped quotes).
_SEP = r"""[\s\\"']*[:=][\s\\"']*"""


def _marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# (kind, compiled pattern, replacement). Order matters: whole blocks and URLs first, so
# that a later, narrower pattern never leaves half of a secret behind.
# A line of a PEM key block: base64 key material or an encrypted key's headers.
_KEY_BODY_LINE = r"(?:[A-Za-z0-9+/=]+|(?:Proc-Type|DEK-Info|Comment): [^\r\n\\]*)"
_KEY_BODY = re.compile(r"^[ \t]*" + _KEY_BODY_LINE + r"[ \t]*$")
# Within running text a key line must end where a line ends, or be long enough to be key
# material: "PermissionError:" or "Traceback (most..." after a cut-off key are not.
_KEY_IN_TEXT = (
    r"(?:[A-Za-z0-9+/=]{16,}(?![A-Za-z0-9+/=:])"
    r"|" + _KEY_BODY_LINE + r"(?=[ \t]*(?:\r?\n|\\|[\"'}\],]|$)))"
)

_RULES: list[tuple[str, re.Pattern[str], str]] = [
    (
        "private_key",
        # A log tail can cut a key block before its END line: redact to the end then.
        # Without an END line, only what looks like key material is taken: an error line
        # printed after a truncated key must survive (it may be the root cause).
        re.compile(
            r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
            r"(?:.*?-----END \1PRIVATE KEY\2-----"
            r"|(?:(?:[ \t]|\r?\n|\\+[nrt])+" + _KEY_IN_TEXT + r")*)",
            re.DOTALL,
        ),
        _marker("private_key"),
    ),
    (
        "slack_webhook_url",
        re.compile(
            r"(?:https?://)?hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+"
        ),
        _marker("slack_webhook_url"),
    ),
    (
        "slack_token",
        re.compile(
            r"(?<![A-Za-z0-9])(?:xox(?:e\.xox[bp]|[abposre])-[A-Za-z0-9-]{10,}|xapp-\d+-[A-Za-z0-9-]{10,})"
        ),
        _marker("slack_token"),
    ),
    (
        "github_token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})"),
        _marker("github_token"),
    ),
    (
        "aws_secret_access_key",
        re.compile(
            r"(?i)((?:aws[_-]?)?secret[_-]?access[_-]?key" + _SEP + r")"
            r"(?-i:[" + _B64 + r"]{8,})"
        ),
        r"\g<1>" + _marker("aws_secret_access_key"),
    ),
    (
        "aws_session_token",
        re.compile(
            r"(?i)((?:aws[_-]?)?(?:session|security)[_-]?token" + _SEP + r")"
            r"(?-i:(?:[" + _B64 + r"]|%[0-9A-Fa-f]{2}){16,})"
        ),
        r"\g<1>" + _marker("aws_session_token"),
    ),
    (
        "aws_session_token",
        # STS session tokens have a fixed binary prefix; catch them without a key name too.
        re.compile(r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE|FQoGZXIvYXdzE)[" + _B64 + r"]+"),
        _marker("aws_session_token"),
    ),
    (
        "aws_access_key_id",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"),
        _marker("aws_access_key_id"),
    ),
    (
        "bearer_token",
        re.compile(r"(?i)(\bauthorization" + _SEP + r"(?:bearer|basic|token)\s+)(?!\[REDACTED:)[^\s\"',;\\]+"),
        r"\g<1>" + _marker("bearer_token"),
    ),
    (
        "bearer_token",
        re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{16,}=*"),
        r"\g<1>" + _marker("bearer_token"),
    ),
    (
        "url_password",
        re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@\"'<>\\]*:)[^@\s/\"'<>\\]+(@)"),
        r"\g<1>" + _marker("url_password") + r"\g<2>",
    ),
]

# A bare 40-character secret key has no shape of its own; next to an access key id on
# the same line (credentials CSV, `aws configure list`, an echoed env) it is one.
_ACCESS_KEY_LINE = re.compile(r"^.*(?:AKIA|ASIA|" + re.escape(_marker("aws_access_key_id")) + r").*$", re.M)
_BARE_SECRET_KEY = re.compile(
    r"(?<![" + _B64 + r"])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[0-9])"
    r"[A-Za-z0-9/+]{40}(?![" + _B64 + r"])"
)

KINDS: tuple[str, ...] = tuple(dict.fromkeys(kind for kind, _, _ in _RULES))

_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")


# Literal fragments every match of a rule contains: most log lines hold none, and a cheap
# search for them spares the full patterns (redaction runs on every line of every report).
_TRIGGERS: dict[str, re.Pattern[str]] = {
    "private_key": re.compile(r"PRIVATE KEY"),
    "slack_webhook_url": re.compile(r"hooks\.slack"),
    "slack_token": re.compile(r"xox|xapp-"),
    "github_token": re.compile(r"gh[pousr]_|github_pat_"),
    "aws_secret_access_key": re.compile(r"(?i:secret)"),
    "aws_session_token": re.compile(r"(?i:token)|IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE|FQoGZXIvYXdzE"),
    "aws_access_key_id": re.compile(r"AKIA|ASIA|ABIA|ACCA"),
    "bearer_token": re.compile(r"(?i:authorization|bearer)"),
    "url_password": re.compile(r"://"),
}
_ANY_TRIGGER = re.compile("|".join(f"(?:{t.pattern})" for t in _TRIGGERS.values()))


def redact(text: str) -> str:
    """Replace every secret in ``text`` with ``[REDACTED:<kind>]``. Idempotent."""
    if not text or not _ANY_TRIGGER.search(text):
        return text
    for kind, pattern, replacement in _RULES:
        if _TRIGGERS[kind].search(text):
            text = pattern.sub(replacement, text)
    if _marker("aws_access_key_id") in text:
        text = _ACCESS_KEY_LINE.sub(
            lambda line: _BARE_SECRET_KEY.sub(_marker("aws_secret_access_key"), line.group(0)), text
        )
    return text


def _opens_key_block(line: str) -> bool:
    begins = [m.start() for m in _KEY_BEGIN.finditer(line)]
    ends = [m.start() for m in _KEY_END.finditer(line)]
    return bool(begins) and (not ends or begins[-1] > ends[-1])


def redact_lines(lines: list[str]) -> list[str]:
    """Redact a log tail line by line, keeping the line count (evidence cites line numbers).

    A private key printed to a log arrives as one line per log event, so a key block
    is tracked across lines: every line from BEGIN to END becomes a marker.
    """
    redacted: list[str] = []
    inside_key_block = False
    for line in lines:
        if inside_key_block:
            end = _KEY_END.search(line)
            if end is not None:
                line = _marker("private_key") + line[end.end():]
            elif _KEY_BODY.match(line) or not line.strip():
                redacted.append(_marker("private_key"))
                continue
            # A truncated block ends at the first line that is not key material.
            inside_key_block = False
        inside_key_block = _opens_key_block(line)
        redacted.append(redact(line))
    return redacted


def redact_data(obj: Any) -> Any:
    """Redact every string inside dicts, lists, tuples and sets (keys included).

    A list of strings is treated as consecutive log lines (see ``redact_lines``).
    Other values (numbers, datetimes, None) pass through unchanged.
    """
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_data(key): redact_data(value) for key, value in obj.items()}
    if isinstance(obj, list):
        if obj and all(isinstance(item, str) for item in obj):
            return redact_lines(obj)
        return [redact_data(item) for item in obj]
    if isinstance(obj, tuple):
        return tuple(redact_data(item) for item in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(redact_data(item) for item in obj)
    return obj


def redact_model(model: Any) -> Any:
    """A copy of a pydantic model with every string field redacted (validated again)."""
    return type(model).model_validate(redact_data(model.model_dump(mode="python")))


def _build_redacting_formatter() -> type:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    class RedactingFormatter(LambdaPowertoolsFormatter):
        """Powertools JSON formatter that redacts the whole record before output.

        Redacting the assembled dict (not only ``msg``) covers extra keys, appended
        keys, exception text and stack traces alike.
        """

        def serialize(self, log: dict[str, Any]) -> str:
            return redact(super().serialize(redact_data(log)))

    RedactingFormatter.__module__ = __name__
    return RedactingFormatter


def __getattr__(name: str) -> Any:
    if name == "RedactingFormatter":
        formatter_class = _build_redacting_formatter()
        globals()[name] = formatter_class
        return formatter_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KINDS", "RedactingFormatter", "redact", "redact_data", "redact_lines", "redact_model"]
