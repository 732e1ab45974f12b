"""Root-cause classification: rules are data (../rules/<category>.yaml), this is the engine.

Public interface (stable; triage, the CLI and the handlers depend on it):

    load_catalog(directory: Path | None = None) -> Catalog
    classify(text: str, *, names: Mapping[str, str] | None = None,
             catalog: Catalog | None = None, trusted_lines: int = 0) -> Diagnosis

`trusted_lines`: how many lines at the start of `text` are the job's FailureReason; only there
does a structured line `[category/cause] message` decide (docs/classifier.md, step 6).
    catalog_report(catalog: Catalog | None = None) -> str

Importing this package is cheap: the YAML files are read on the first classify() or
load_catalog() call and cached for the life of the process (one Lambda container).
"""

from incident_responder.classify.catalog import Catalog, CatalogError, load_catalog
from incident_responder.classify.engine import classify
from incident_responder.classify.report import catalog_report

__all__ = ["Catalog", "CatalogError", "catalog_report", "classify", "load_catalog"]
