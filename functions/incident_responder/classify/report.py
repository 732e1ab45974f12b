"""`incident-responder rules`: what the catalog holds and where its rules overlap."""

from __future__ import annotations

from incident_responder.classify.catalog import Catalog, CompiledRule, load_catalog


def overlaps(catalog: Catalog) -> list[tuple[CompiledRule, CompiledRule, str]]:
    """(rule, other, winner id) for each rule whose positive fixture another rule of a different cause also matches."""
    from incident_responder.classify.engine import classify, find_hits

    found: list[tuple[CompiledRule, CompiledRule, str]] = []
    for rule in catalog.rules:
        if rule.spec.from_groups:
            continue
        others: dict[str, tuple[CompiledRule, str]] = {}
        for fixture in rule.spec.fixtures.positive:
            hits, _, _ = find_hits(fixture, catalog)
            for hit in hits:
                other = hit.rule
                if other.id != rule.id and other.cause != rule.cause and other.id not in others:
                    others[other.id] = (other, classify(fixture, catalog=catalog).rule_id or "unknown")
        found.extend((rule, other, winner) for other, winner in others.values())
    return found


def catalog_report(catalog: Catalog | None = None) -> str:
    catalog = catalog or load_catalog()
    rows = [(r.id, r.category.value, r.cause, f"{r.spec.confidence:.2f}", str(r.spec.priority)) for r in catalog.rules]
    header = ("id", "category", "cause", "confidence", "priority")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()

    out = [f"{len(catalog.rules)} rules in {len(catalog.categories)} categories ({catalog.directory})", "",
           fmt(header), fmt(tuple("-" * w for w in widths))]
    out.extend(fmt(row) for row in rows)
    pairs = overlaps(catalog)
    out += ["", f"Overlapping rules ({len(pairs)}): a positive fixture of the first is also matched by the second "
            "(a different cause); the engine's choice is shown."]
    for rule, other, winner in pairs:
        out.append(f"  {rule.id}  <->  {other.id}   decided by: {winner}")
    if not pairs:
        out.append("  none")
    return "\n".join(out)
