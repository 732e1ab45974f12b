"""Root-cause classification: rules are data (../rules/<category>.yaml), this is the engine.

Public interface (stable; triage, the CLI and the handlers depend on it):

    load_catalog(directory: Path | None = None) -> Catalog
    classify(text: str, *, names: Mapping[str, str] | None = None,
             catalog: Catalog | None = None) -> Diagnosis
"""
