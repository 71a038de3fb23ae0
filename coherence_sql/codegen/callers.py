"""Which generated accessors the package's own code refers to (rule CS401 of `coherence-sql lint`).

A named query nothing calls is dead weight: SQL, a generated accessor and a test that keeps it
alive. The package's modules (all but the generated `sql/` package) are parsed, never imported;
a query counts as called when some module names its accessor or its `<NAME>_SQL` constant through
an import of its generated module (`from coherence_sql.sql import projects as p` … `p.get_project`,
or `from coherence_sql.sql.projects import get_project`).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

GENERATED_PACKAGE: Final = "coherence_sql.sql"

QueryName = tuple[str, str]  # (module, query): ("projects", "get_project")


def package_dir() -> Path:
    """The `coherence_sql` package this module belongs to."""
    return Path(__file__).resolve().parent.parent


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module an `ImportFrom` in `package` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    parts = parts[: len(parts) - node.level + 1]
    return ".".join([*parts, node.module] if node.module else parts)


def _names_used(tree: ast.Module, package: str) -> set[QueryName]:
    """(generated module, attribute) pairs one parsed module refers to."""
    aliases: dict[str, str] = {}  # local name → generated module stem
    used: set[QueryName] = set()
    prefix = GENERATED_PACKAGE + "."
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, package)
            for alias in node.names:
                if source == GENERATED_PACKAGE:
                    aliases[alias.asname or alias.name] = alias.name
                elif source.startswith(prefix):
                    used.add((source[len(prefix) :], alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(prefix) and alias.asname:
                    aliases[alias.asname] = alias.name[len(prefix) :]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            value = node.value
            if isinstance(value, ast.Name) and value.id in aliases:
                used.add((aliases[value.id], node.attr))
            elif isinstance(value, ast.Attribute) and ast.unparse(value).startswith(prefix):
                used.add((ast.unparse(value)[len(prefix) :], node.attr))
    return used


def referenced_names(root: Path | None = None) -> set[QueryName]:
    """Every (generated module, name) the package's hand-written modules refer to."""
    base = root or package_dir()
    generated = base / "sql"
    used: set[QueryName] = set()
    for path in sorted(base.rglob("*.py")):
        if path.is_relative_to(generated):
            continue
        package = ".".join(path.relative_to(base.parent).parent.parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        used |= _names_used(tree, package)
    return used


def is_called(module: str, query: str, referenced: set[QueryName]) -> bool:
    """Whether the accessor of `module.query`, or its SQL constant, is referred to."""
    return (module, query) in referenced or (module, f"{query.upper()}_SQL") in referenced
