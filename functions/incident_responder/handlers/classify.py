"""ClassifyFunction: classify a log given in the event; for `sam local invoke -e events/classify-*.json`.

The log is redacted before it is classified, as the CLI's `classify` does: the answer quotes log
lines as evidence.
"""

from __future__ import annotations

from typing import Any

from ..classify import classify, load_catalog
from ..classify.schema import TEMPLATE_NAMES
from ..redact import redact

# Parse and compile the rules in Lambda's init phase, not in the first invocation.
load_catalog()

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
    diagnosis = classify(redact(log), names={str(k): redact(str(v)) for k, v in names.items()})
    return {**diagnosis.as_record(redact(str(event.get("source", "event")))[:200]), "commands": diagnosis.commands}
