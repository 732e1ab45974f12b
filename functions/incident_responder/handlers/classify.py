"""ClassifyFunction: classify a log given in the event; for `sam local invoke -e events/classify-*.json`.

The log is redacted before it is classified, as the CLI's `classify` does: the answer quotes log
lines as evidence.
"""

from __future__ import annotations

from typing import Any

from ..classify import classify, load_catalog
from ..classify.fallback import load_model as load_fallback_model
from ..classify.schema import TEMPLATE_NAMES
from ..redact import redact

# Parse and compile the rules in Lambda's init phase, not in the first invocation.
load_catalog()
load_fallback_model()

_SHAPE = 'e.g. {"log": "Traceback ...", "names": {"job_name": "..."}}'


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    log = event.get("log") if isinstance(event, dict) else None
    if not isinstance(log, str):
        return {"error": f"the event needs a 'log' field holding the log text as one string, {_SHAPE}"}
    names = event.get("names") or {}
    if not isinstance(names, dict):
        return {"error": f"'names' must be an object of template values, {_SHAPE}"}
    unknown = sorted(str(key) for key in names if key not in TEMPLATE_NAMES)
    if unknown:
        return {"error": f"'names' has unknown keys {[redact(k)[:60] for k in unknown]}: use only "
                         f"{', '.join(sorted(TEMPLATE_NAMES))}"}
    reason = event.get("failure_reason")
    if reason is not None and not isinstance(reason, str):
        return {"error": f"'failure_reason' must be the job's FailureReason as one string, {_SHAPE}"}
    # The FailureReason first, as triage composes it: the only lines a structured line is trusted in.
    reason = redact(reason) if reason else ""
    text = f"{reason}\n{redact(log)}" if reason else redact(log)
    trusted = len(reason.splitlines())
    diagnosis = classify(text, names={str(k): redact(str(v)) for k, v in names.items()}, trusted_lines=trusted)
    return {**diagnosis.as_record(redact(str(event.get("source", "event")))[:200]), "commands": diagnosis.commands}
