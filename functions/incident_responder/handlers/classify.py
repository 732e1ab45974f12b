"""ClassifyFunction: classify a log given in the event; for `sam local invoke -e events/classify-*.json`."""

from __future__ import annotations

from typing import Any

from ..classify import classify, load_catalog

# Parse and compile the rules in Lambda's init phase, not in the first invocation.
load_catalog()


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    log = event.get("log") if isinstance(event, dict) else None
    if not isinstance(log, str):
        return {
            "error": "the event needs a 'log' field holding the log text as one string, "
            "e.g. {\"log\": \"Traceback ...\", \"names\": {\"job_name\": \"...\"}}",
        }
    names = event.get("names") or {}
    if not isinstance(names, dict):
        return {"error": "'names' must be an object of template values, e.g. {\"job_name\": \"...\"}"}
    diagnosis = classify(log, names={str(k): str(v) for k, v in names.items()})
    return {**diagnosis.as_record(str(event.get("source", "event"))), "commands": diagnosis.commands}
