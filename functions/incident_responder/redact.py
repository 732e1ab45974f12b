r"""Redaction of credentials before anything leaves the account.

Every sink, and the responder's own logger, passes text through here. Training logs
are untrusted: a crashing script may print its environment, a config file or a
presigned URL, so the patterns look for the secret formats themselves as well as for
the names secrets go by, and they look at the text as a person would read it:

1. Known token shapes (AWS keys, Slack, GitHub, OpenAI, Hugging Face, W&B, PEM keys, URL
   passwords, ...) and `NAME=value` pairs whose name says secret (`*SECRET*`, `*TOKEN*`,
   `*PASSWORD*`, `*API_KEY*`, `*AUTH*`, ...), in env, INI, YAML, JSON and JSON-in-JSON.
2. The same on decoded views of the text: JSON string escapes (`\u003d`, `\/`), percent
   encoding (also doubly encoded), string literals joined by `+`, and base64 blobs that
   decode to text. When a view shows a secret the text did not, the view, redacted, is
   what comes out (a person reads the decoded text anyway).
3. A YAML or env key whose value is on the next line(s) (`password:` then the value, a block
   scalar `key: |`): the value lines are redacted, the line count kept.
4. Last resort: a long high-entropy value right after a secret-sounding word.

Every pattern is RE2 (incident_responder.matching): linear in the text whatever the text
(Python's `re` took 24 s for the old URL-password pattern on a 256 KB line). Redaction reads
the whole text: no length cap (a secret may sit at the end of a 1 MiB line).
docs/redaction.md lists the formats, and which detect-secrets and gitleaks detectors we cover.

Import cost matters (Lambda cold start): the patterns are compiled on the first call.
``RedactingFormatter`` subclasses Powertools' formatter and is built on first access.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import Counter
from functools import lru_cache
from typing import Any, Callable

import incident_responder.matching as matching

_B64 = r"A-Za-z0-9/+="
# Key/value separators as they appear in env dumps, INI files, JSON, and JSON that was
# itself embedded in a JSON string (escaped quotes).
_SEP = r"""[ \t\\"']*[:=][ \t\\"']*"""


def _marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# A line of a PEM key block: base64 key material or an encrypted key's headers.
_KEY_BODY_LINE = r"(?:[A-Za-z0-9+/=]+|(?:Proc-Type|DEK-Info|Comment): [^\r\n\\]*)"

# Words a secret's name is made of; a name is secret-shaped when one of its parts (split at
# _ - . and camelCase) is one of these, or two adjacent parts form one of the pairs.
_SECRET_WORDS = frozenset({
    "secret", "secrets", "token", "password", "passwd", "pwd", "pass", "passphrase", "apikey", "auth",
    "credential", "credentials", "privatekey", "secretkey", "accesskey", "clientsecret", "authtoken",
})
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"),
                           ("client", "secret"), ("auth", "token"), ("account", "key"), ("signing", "key"),
                           ("encryption", "key"), ("master", "key")})
# Values that are not secrets: placeholders, references, booleans, our own markers.
_PLACEHOLDER_PREFIXES = ("${", "$(", "{{", "<", "[REDACTED", "%(", "***", "xxx", "XXX", "...")
# Values that are code, not literals: attribute reads and environment lookups in a traceback's source lines.
_CODE_PREFIXES = ("self.", "cls.", "os.environ", "os.getenv")
_PLACEHOLDERS = frozenset({"null", "none", "true", "false", "undefined", "nil", "empty", "unset", "redacted",
                           "bearer", "basic", "token", "required", "optional", "inherit",
                           # GitHub Actions permission levels (`id-token: write`): the evidence for an OIDC
                           # permission failure, never a secret (round 17's source sweep: the runner's message)
                           "read", "write"})

# The name of a key=value pair: a word that holds one of the secret words (checked in
# _secret_name). RE2's alternation is linear: no backtracking over the name.
_NAME = r"[A-Za-z0-9_.\-]*(?i:secret|token|passw(?:or)?d|pwd|pass|passphrase|api[_\-]?key|auth|credential|private[_\-]?key|access[_\-]?key|account[_\-]?key|signing[_\-]?key|encryption[_\-]?key|master[_\-]?key)[A-Za-z0-9_.\-]*"


_SEPARATORS = str.maketrans("_-.", "   ")


def _name_parts(name: str) -> list[str]:
    words = name.translate(_SEPARATORS).split()
    if name.islower() or name.isupper() or not any(c.isupper() for c in name[1:]):
        return [w.lower() for w in words]
    parts: list[str] = []
    for word in words:  # camelCase: apiKey, clientSecret, XAuthToken
        current = ""
        for index, char in enumerate(word):
            if char.isupper() and current and (current[-1].islower() or
                                               (index + 1 < len(word) and word[index + 1].islower())):
                parts.append(current)
                current = ""
            current += char
        if current:
            parts.append(current)
    return [p.lower() for p in parts]


# A name that ends in one of these names something about a secret, not the secret itself
# (NoCredentialsError, InvalidClientTokenId, token_type, password_file, auth_mode, TOKEN_URL).
_NOT_SECRET_HEADS = frozenset({
    "error", "errors", "exception", "id", "ids", "expired", "invalid", "missing", "required", "count", "type", "name",
    "names", "file", "path", "dir", "url", "uri", "arn", "length", "size", "ttl", "expiry", "expiration", "provider",
    "providers", "retrieval", "endpoint", "header", "scope", "scopes", "policy", "mode", "format", "version", "limit",
    "source", "kind", "enabled", "disabled", "prompt", "hint", "manager", "store",
})


# Tokens that are not credentials: AWS's pagination, idempotency and request tokens
# (NextToken, client-request-token, ClientRequestToken, ContinuationToken, ChangeToken).
_NOT_SECRET_TOKENS = frozenset({"next", "request", "continuation", "pagination", "page", "idempotency", "change"})


@lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    parts = _name_parts(name.strip("\\\"' "))
    if not parts or parts[-1] in _NOT_SECRET_HEADS:
        return False
    if len(parts) >= 2 and parts[-1] == "token" and parts[-2] in _NOT_SECRET_TOKENS:
        return False
    if any(p in _SECRET_WORDS for p in parts):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(parts, parts[1:]))


def _identifier(text: str) -> bool:
    """A shell or Python variable name: ASCII letters, digits and underscores, not starting with a digit."""
    return text.isascii() and text.replace("_", "a").isalnum() and not text[0].isdigit()


def _secret_value(value: str) -> bool:
    if value.strip("\\\"' ").startswith("[REDACTED:"):
        return False
    bare = value.strip("\\\"' []()")
    if _UUID_SHAPE(bare):  # a request id or a request token (CloudFormation's RequestToken)
        return False
    if not bare or bare.lower() in _PLACEHOLDERS or bare.startswith(_PLACEHOLDER_PREFIXES):
        return False
    if bare[0] in "|>" and len(bare) <= 3:  # a YAML block scalar: the value is on the next lines
        return False
    if bare.startswith(_CODE_PREFIXES):  # a traceback's source line: `self._frozen_token = self._refresh_using()`
        return False
    if bare[0] == "$" and _identifier(bare[1:]) and _secret_name(bare[1:]):
        # a reference to another secret's variable (`-e AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY`), not a value
        return False
    if bare.isdigit() and len(bare) < 12:  # a count or a duration (max_tokens=512, token_ttl=3600)
        return False
    return True


def _prose(match: Any, sep: str, value: str) -> bool:
    """`NoCredentialsError: Unable to locate...`: a colon followed by words is a message, not a pair."""
    if "=" in sep or '"' in sep or "'" in sep or not value.isalpha():
        return False
    after = match.string[match.end():match.end() + 2]
    return len(after) == 2 and after[0] == " " and after[1].isalpha()


def _assignment(match: Any) -> str:
    # groups by number: the wrapper's lookup by name costs more than the checks
    name, sep, value = match.group(1, 2, 3)
    if not _secret_value(value) or not _secret_name(name) or _prose(match, sep, value):
        return match.group(0)
    return f"{name}{sep}{_marker('secret_assignment')}"


def _url_password(match: Any) -> str:
    password = match.group(2)
    head = password.split("/", 1)[0]
    if head.isdigit() or not password:  # host:port/path@tag, not user:password@host
        return match.group(0)
    return match.group(1) + _marker("url_password") + "@"


def _UUID_SHAPE(value: str) -> bool:  # noqa: N802
    parts = value.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in "0123456789abcdefABCDEF" for p in parts for c in p)


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _random_value(match: Any) -> str:
    value = match.group("value")
    if _UUID_SHAPE(value):  # a request id, not a secret
        return match.group(0)
    before = match.string[max(0, match.start() - 24):match.start()].rstrip("-_. ").lower()
    if match.group("lead").lower().startswith("token") and before.endswith(tuple(_NOT_SECRET_TOKENS)):
        return match.group(0)  # NextToken, client-request-token: AWS's pagination/request tokens
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value)))
    if classes >= 2 and _entropy(value) >= 3.5:
        return match.group("lead") + _marker("high_entropy_secret")
    return match.group(0)


_Rule = tuple[str, str, Any, tuple[str, ...]]  # kind, pattern, replacement, trigger literals (lowercase)

# Order matters: whole blocks and URLs first, so that a later, narrower pattern never leaves
# half of a secret behind.
_RULE_SOURCES: list[_Rule] = [
    (
        "private_key",
        # A log tail can cut a key block before its END line: redact to the end then.
        # Without an END line, only lines that look like key material are taken (each must
        # end where a line ends): an error line printed after a truncated key must survive (it
        # may be the root cause). RE2 has no backreference or lookahead: the END line is any
        # PRIVATE KEY END line, and the line end after the last key line is given back.
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:(?s:.*?)(?P<end>-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)"
        r"|(?P<nl>\r?\n|\\+[nrt])(?:(?:[ \t]|\r?\n|\\+[nrt])*(?:[A-Za-z0-9+/=]{16,}(?P<soft>\r?\n|\\+[nrt]|[^A-Za-z0-9+/=:\\\r\n]|$)"
        r"|" + _KEY_BODY_LINE + r"[ \t]*(?P<term>\r?\n|\\+[nrt]|\\|[\"'}\],]|$)))*)",
        "key_block",
        ("private key",),
    ),
    (
        "slack_webhook_url",
        # also with JSON-escaped (\/) or percent-encoded (%2F) slashes
        r"(?:https?:(?:/|\\/|%2[Ff]){2})?hooks\.slack(?:-gov)?\.com(?:/|\\/|%2[Ff])(?:services|workflows|triggers)"
        r"(?:(?:/|\\/|%2[Ff])[A-Za-z0-9_\-]+)+",
        _marker("slack_webhook_url"),
        ("hooks.slack",),
    ),
    (
        "slack_token",
        r"(?:^|[^A-Za-z0-9])((?:xox(?:e\.xox[bp]|[abposre])-[A-Za-z0-9-]{10,}|xapp-\d+-[A-Za-z0-9-]{10,}))",
        "group1",
        ("xox", "xapp-"),
    ),
    (
        "github_token",
        r"(?:^|[^A-Za-z0-9_])((?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255}))",
        "group1",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    (
        "gitlab_token",
        r"\bglpat-[A-Za-z0-9_\-]{20,}",
        _marker("gitlab_token"),
        ("glpat-",),
    ),
    (
        "openai_api_key",
        # sk-..., sk-proj-..., sk-ant-... (Anthropic's keys share the shape)
        r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_\-]{20,}",
        _marker("openai_api_key"),
        ("sk-",),
    ),
    (
        "huggingface_token",
        r"\bhf_[A-Za-z0-9]{30,}",
        _marker("huggingface_token"),
        ("hf_",),
    ),
    (
        "wandb_api_key",
        # a W&B key is 40 hex digits (or local-<40+>): taken only with a W&B name in the 80
        # characters before it (_wandb_key), since a git commit has the same shape
        r"\b(?:local-)?[0-9a-f]{40,}\b",
        "wandb",
        ("wandb",),
    ),
    (
        "google_api_key",
        r"\bAIza[0-9A-Za-z_\-]{35}",
        _marker("google_api_key"),
        ("aiza",),
    ),
    (
        "stripe_key",
        r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,}",
        _marker("stripe_key"),
        ("_live_", "_test_"),
    ),
    (
        "npm_token",
        r"\bnpm_[A-Za-z0-9]{36}",
        _marker("npm_token"),
        ("npm_",),
    ),
    (
        "pypi_token",
        r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{20,}",
        _marker("pypi_token"),
        ("pypi-ageicHlwas5vcmc".lower(),),
    ),
    (
        "sendgrid_key",
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        _marker("sendgrid_key"),
        ("sg.",),
    ),
    (
        # also `aws configure`'s prompt, which names the key in words and shows the current one's tail in brackets:
        # "AWS Secret Access Key [****************abcd]: <key>"
        "aws_secret_access_key",
        r"((?i:(?:aws[_ -]?)?secret[_ -]?access[_ -]?key)(?:[ \t]*\[[^\]\r\n]{0,64}\])?" + _SEP + r")[" + _B64 + r"]{8,}",
        r"\1" + _marker("aws_secret_access_key"),
        ("secret",),
    ),
    (
        # `aws configure set aws_secret_access_key <key>` (and a profile's `default.aws_secret_access_key`)
        "aws_secret_access_key",
        r"((?i:configure[ \t]+set[ \t]+(?:[\w.-]+\.)?aws_secret_access_key)[ \t]+)[" + _B64 + r"]{8,}",
        r"\1" + _marker("aws_secret_access_key"),
        ("secret",),
    ),
    (
        "aws_session_token",
        r"((?i:(?:aws[_-]?)?(?:session|security)[_-]?token)" + _SEP + r")(?:[" + _B64 + r"]|%[0-9A-Fa-f]{2}){16,}",
        r"\1" + _marker("aws_session_token"),
        ("token",),
    ),
    (
        "aws_session_token",
        # STS session tokens have a fixed binary prefix; catch them without a key name too.
        r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE|FQoGZXIvYXdzE)[" + _B64 + r"]+",
        _marker("aws_session_token"),
        ("iqojb3jpz2lux2vj", "fwogzxivyxdze", "fqogzxivyxdze"),
    ),
    (
        "aws_access_key_id",
        r"(?:^|[^A-Z0-9])((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})(?:[^A-Z0-9]|$)",
        "group1",
        ("akia", "asia", "abia", "acca"),
    ),
    (
        "bearer_token",
        r"((?i:\bauthorization)" + _SEP + r"(?i:bearer|basic|token)\s+)([^\s\"',;\\]+)",
        "bearer",
        ("authorization",),
    ),
    (
        "bearer_token",
        r"((?i:\bbearer)\s+)([A-Za-z0-9\-._~+/]{16,}=*)",
        "bearer",
        ("bearer",),
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
        _marker("jwt"),
        ("eyj",),
    ),
    (
        "url_password",
        # The password runs to the last @ of the URL: it may itself hold / or @.
        r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@\"'<>\\]*:)([^\s\"'<>\\]*)@",
        _url_password,
        ("://",),
    ),
    (
        "secret_assignment",
        # NAME=value, NAME: value, "NAME": "value", \"NAME\": \"value\" (JSON in JSON)
        r"(?P<name>" + _NAME + r")(?P<sep>[ \t\\\"']*[:=][ \t\\\"']*)(?P<value>[^\s\"'\\,;&}\]`]+)",
        _assignment,
        ("secret", "token", "pass", "pwd", "key", "auth", "credential"),
    ),
    (
        "high_entropy_secret",
        r"(?P<lead>(?i:secret|token|password|passwd|api[ _\-]?key|credentials?|key)s?\b[\s:=\"']{1,4}(?i:is\s+|was\s+)?)"
        r"(?P<value>[A-Za-z0-9+/_\-]{20,}={0,2})",
        _random_value,
        ("secret", "token", "pass", "key", "credential"),
    ),
]

KINDS: tuple[str, ...] = tuple(dict.fromkeys([*(kind for kind, *_ in _RULE_SOURCES), "encoded_secret"]))
_MARKERS = tuple(_marker(kind) for kind in KINDS)


@lru_cache(maxsize=1)
def _compiled() -> list[tuple[str, Any, Callable[[Any], str] | str, tuple[str, ...]]]:
    rules = []
    for kind, pattern, replacement, triggers in _RULE_SOURCES:
        compiled = matching.compile(pattern)
        if replacement == "group1":
            replacement = _group_replacer(_marker(kind))
        elif replacement == "bearer":
            replacement = _bearer
        elif replacement == "wandb":
            replacement = _wandb_key
        elif replacement == "key_block":
            replacement = _key_block
        rules.append((kind, compiled, replacement, triggers))
    return rules


def _group_replacer(marker: str) -> Callable[[Any], str]:
    def replace(match: Any) -> str:
        whole, start, end = match.group(0), match.start(1) - match.start(), match.end(1) - match.start()
        return whole[:start] + marker + whole[end:]

    return replace


def _wandb_key(match: Any) -> str:
    before = match.string[max(0, match.start() - 80):match.start()].lower()
    return _marker("wandb_api_key") if "wandb" in before else match.group(0)


def _key_block(match: Any) -> str:
    if match.group("end") is not None:
        return _marker("private_key")
    whole = match.group(0)
    for name in ("term", "soft"):  # the line end (or character) after the last key line is given back
        end = match.group(name)
        if end is not None and whole.endswith(end):
            return _marker("private_key") + end
    if match.group("term") is None and match.group("soft") is None:
        return _marker("private_key") + match.group("nl")
    return _marker("private_key")


def _bearer(match: Any) -> str:
    if match.group(2).startswith("[REDACTED:"):
        return match.group(0)
    return match.group(1) + _marker("bearer_token")


@lru_cache(maxsize=1)
def _patterns() -> dict[str, Any]:
    return {
        "key_body": matching.compile(r"^[ \t]*" + _KEY_BODY_LINE + r"[ \t]*$"),
        "key_begin": matching.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        "key_end": matching.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        # A bare 40-character secret key has no shape of its own; next to an access key id on
        # the same line (credentials CSV, `aws configure list`, an echoed env) it is one.
        "bare_secret_key": matching.compile(r"(?:^|[^" + _B64 + r"])([A-Za-z0-9/+]{40})(?:[^" + _B64 + r"]|$)"),
        # a key whose value follows on the next line(s): `password:`, `TOKEN=`, `key: |`
        "dangling_key": matching.compile(r"^([ \t-]*)[\"']?(" + _NAME + r")[\"']?[ \t]*[:=][ \t]*([|>][-+0-9]*)?[ \t]*$"),
        "dangling_anywhere": matching.compile(r"(?m)" + _NAME + r"[\"']?[ \t]*[:=][ \t]*(?:[|>][-+0-9]*)?[ \t]*\r?$"),
        # encoded views
        "concat": matching.compile(r"([\"'])[ \t]*\+?[ \t]*([\"'])"),
        # one character class for both alphabets (standard and URL-safe): two counted runs in
        # one pattern make RE2's DFA track pairs of counts, six times slower on random text
        "base64_blob": matching.compile(r"(?:^|[^A-Za-z0-9+/_\-])([A-Za-z0-9+/_\-]{24,}={0,2})"),
        "base64_blob_bytes": matching.compile(rb"(?:^|[^A-Za-z0-9+/_\-])([A-Za-z0-9+/_\-]{24,}={0,2})"),
        "base64_run": matching.compile(r"[A-Za-z0-9+/_\-]{24}"),
    }


@lru_cache(maxsize=1)
def _all_triggers() -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for _, _, _, triggers in _compiled() for t in triggers))


@lru_cache(maxsize=1)
def _trigger_set() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False
    triggers = re2.Set.SearchSet(options)
    for trigger in _all_triggers():
        triggers.Add(re2.escape(trigger))
    triggers.Compile()
    return triggers


def _present(lower: str) -> frozenset[str]:
    """The trigger literals in the (lowercased) text, all found in one pass (an RE2 set)."""
    found = _trigger_set().Match(lower)
    if not found:
        return frozenset()
    names = _all_triggers()
    return frozenset(names[index] for index in found)


def _any_trigger(lower: str) -> bool:
    return bool(_trigger_set().Match(lower))


def _bare_secret_keys(text: str) -> str:
    def line_fix(line: str) -> str:
        if _marker("aws_access_key_id") not in line:
            return line

        def one(match: Any) -> str:
            value = match.group(1)
            if any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value):
                return _group_replacer(_marker("aws_secret_access_key"))(match)
            return match.group(0)

        return _patterns()["bare_secret_key"].sub(one, line)

    if _marker("aws_access_key_id") not in text:
        return text
    return "\n".join(line_fix(line) for line in text.split("\n"))


def _redact_plain(text: str) -> str:
    """The known shapes and secret-named pairs, on the text as it is."""
    present = _present(text.lower())
    if not present:
        return text
    for _, pattern, replacement, triggers in _compiled():
        if not present.isdisjoint(triggers):
            text = pattern.sub(replacement, text)
    return _bare_secret_keys(text)


_SAFE_DECODED = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


# two hex digits (any case) -> the safe printable character they encode
_HEX_PAIRS: dict[str, str] = {
    f"{hi}{lo}": chr(int(hi + lo, 16))
    for hi in "0123456789abcdefABCDEF" for lo in "0123456789abcdefABCDEF"
    if chr(int(hi + lo, 16)) in _SAFE_DECODED
}


def _decode_escapes(text: str, lead: str) -> str:
    """`lead` + two hex digits -> the character, where it is a safe printable one.
    str.split and one dict lookup per escape: an escape-dense 1 MiB line included."""
    pieces = text.split(lead)
    pairs = _HEX_PAIRS
    return pieces[0] + "".join(
        (pairs[piece[:2]] + piece[2:]) if piece[:2] in pairs else (lead + piece) for piece in pieces[1:]
    )


def _json_unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _decode_escapes(text.replace("\\/", "/"), "\\u00")


def _percent_decode(text: str) -> str:
    for _ in range(3):  # doubly encoded (%253D) too
        if "%" not in text:
            break
        decoded = _decode_escapes(text, "%")
        if decoded == text:
            break
        text = decoded
    return text


def _unconcat(text: str) -> str:
    """String literals joined by `+` (or adjacent, as Python joins them) read as one."""
    return _patterns()["concat"].sub(lambda m: m.group(0) if m.group(1) != m.group(2) else "", text)


def _printable_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return text if text and printable >= 0.95 * len(text) else None


def _base64_blobs(text: str) -> str:
    """A base64 blob that decodes to text holding a secret is replaced whole."""
    if text.isascii():  # bytes: the binding's per-match work is a third of that on str
        spans = [m.span(1) for m in _patterns()["base64_blob_bytes"].finditer(text.encode("ascii"))]
    else:
        spans = [m.span(1) for m in _patterns()["base64_blob"].finditer(text)]
    out: list[str] = []
    last = 0
    for start, end in spans:
        blob = text[start:end]
        if blob.islower() or blob.isupper() or blob.isdigit():  # base64 of text mixes cases
            continue
        urlsafe = "-" in blob or "_" in blob
        if urlsafe and ("+" in blob or "/" in blob):
            continue  # both alphabets: not one base64 blob
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), altchars=b"-_" if urlsafe else None, validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable_text(raw)
        if decoded is None or _redact_once(decoded, depth=1) == decoded:
            continue
        out.append(text[last:start])
        out.append(_marker("encoded_secret"))
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _hidden(text: str, redacted: str) -> int:
    """How many characters of `text` redaction hid (markers do not count as text)."""
    markers = sum(redacted.count(m) * len(m) for m in _MARKERS) if "[REDACTED:" in redacted else 0
    return len(text) - (len(redacted) - markers)


def _redact_once(text: str, depth: int = 0) -> str:
    base, out = text, _redact_plain(text)
    for view in (_json_unescape, _percent_decode, _unconcat):
        decoded = view(base)
        if decoded == base:
            continue
        redacted = _redact_plain(decoded)
        # The decoded text shows more of a secret than the text as it is: the reader gets
        # that view, redacted (a person reads it decoded anyway).
        if _hidden(decoded, redacted) > _hidden(base, out):
            base, out = decoded, redacted
    if depth == 0 and len(out) >= 24:
        out = _base64_blobs(out)
    return out


def redact(text: str) -> str:
    """Replace every secret in ``text`` with ``[REDACTED:<kind>]``. Idempotent."""
    if not text:
        return text
    lower = text.lower()
    if not _any_trigger(lower) and "%" not in text and "\\u" not in text and not _might_hold_base64(text):
        return text
    out = _redact_once(text)
    if "\n" in out:
        out = "\n".join(_next_line_values(out.split("\n")))
    return out


def _might_hold_base64(text: str) -> bool:
    # a cheap pre-check: a run of 24 base64 characters needs at least 24 characters without a space
    return len(text) >= 24 and _patterns()["base64_run"].search(text) is not None


def _next_line_values(lines: list[str]) -> list[str]:
    """A secret-named key with its value on the following line(s) (YAML, env blocks): the
    value lines become markers; the line count is kept."""
    if _patterns()["dangling_anywhere"].search("\n".join(lines)) is None:
        return lines  # no secret-named key ends a line: nothing to carry over (one pass, no loop)
    out: list[str] = []
    pending: tuple[int, bool] | None = None  # (the key line's indent, block scalar?)
    dangling = _patterns()["dangling_key"]
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" \t"))
        if pending is not None and stripped:
            key_indent, block = pending
            continues = indent > key_indent or (not block and ":" not in stripped and "=" not in stripped)
            if continues and not stripped.startswith("[REDACTED:") and _secret_value(stripped):
                out.append(line[:indent] + _marker("secret_assignment"))
                if not block:
                    pending = None
                continue
            pending = None
        out.append(line)
        match = dangling.search(line.rstrip("\r")) if stripped.endswith((":", "=", "|", ">", "-", "+")) or stripped[-1:].isdigit() else None
        if match is not None and _secret_name(match.group(2)):
            pending = (len(match.group(1).replace("-", " ")), match.group(3) is not None)
    return out


def _opens_key_block(line: str) -> bool:
    begins = [m.start() for m in _patterns()["key_begin"].finditer(line)]
    ends = [m.start() for m in _patterns()["key_end"].finditer(line)]
    return bool(begins) and (not ends or begins[-1] > ends[-1])


def redact_lines(lines: list[str]) -> list[str]:
    """Redact a log tail line by line, keeping the line count (evidence cites line numbers).

    A private key printed to a log arrives as one line per log event, so a key block
    is tracked across lines: every line from BEGIN to END becomes a marker. A secret-named
    key whose value is on the next line(s) (YAML, env blocks) is tracked the same way.
    """
    redacted: list[str] = []
    inside_key_block = False
    for line in lines:
        if inside_key_block:
            end = _patterns()["key_end"].search(line)
            if end is not None:
                line = _marker("private_key") + line[end.end():]
            elif _patterns()["key_body"].match(line) or not line.strip():
                redacted.append(_marker("private_key"))
                continue
            # A truncated block ends at the first line that is not key material.
            inside_key_block = False
        inside_key_block = "PRIVATE KEY" in line and _opens_key_block(line)
        redacted.append(redact(line))
    return _next_line_values(redacted)


def redact_data(obj: Any) -> Any:
    """Redact every string inside dicts, lists, tuples and sets (keys included).

    A list of strings is treated as consecutive log lines (see ``redact_lines``).
    Other values (numbers, datetimes, None) pass through unchanged.
    """
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        # a secret-named key (a hyperparameter map, an env dict): its string value is a secret
        # whatever it looks like (a W&B key alone is 40 hex digits, like a commit)
        return {
            redact_data(key): (_marker("secret_assignment")
                               if isinstance(key, str) and isinstance(value, str) and _secret_name(key)
                               and _secret_value(value) else redact_data(value))
            for key, value in obj.items()
        }
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
