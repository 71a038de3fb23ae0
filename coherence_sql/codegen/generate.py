"""`coherence-sql generate`: every `queries/<stem>.sql` → `coherence_sql/sql/<stem>.py`.

`build()` describes the queries on a live database and returns the files as text; `write()` and
`check()` compare that with the output directory (write it, or only report what differs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg

from coherence_sql.codegen.introspect import Introspector
from coherence_sql.codegen.loader import load_file
from coherence_sql.codegen.render import GENERATED_MARK, render_module, render_package_init
from coherence_sql.codegen.rows import plan_rows

PACKAGE_INIT: Final = "__init__.py"


def default_output_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "sql"


def query_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sql"), key=lambda p: p.name)


async def build(conn: asyncpg.Connection[asyncpg.Record], queries_dir: Path) -> dict[str, str]:
    """File name → text of every module the query files produce (plus the package `__init__.py`).

    `conn` is a connection to a database at the current schema; it is used for nothing else.
    """
    introspector = Introspector(conn)
    source_dir = queries_dir.name
    described = {
        path: [await introspector.describe(spec) for spec in load_file(path)] for path in query_files(queries_dir)
    }
    rows = plan_rows([accessor for accessors in described.values() for accessor in accessors])
    files: dict[str, str] = {}
    for path, accessors in described.items():
        files[f"{path.stem}.py"] = render_module(path.stem, f"{source_dir}/{path.name}", accessors, rows)
    files[PACKAGE_INIT] = render_package_init([name[:-3] for name in files], source_dir)
    return files


def _generated_on_disk(output_dir: Path) -> set[str]:
    """Modules in the output directory the generator owns (hand-written `_*.py` are not)."""
    return {p.name for p in output_dir.glob("*.py") if not p.name.startswith("_") or p.name == PACKAGE_INIT}


@dataclass(slots=True)
class Drift:
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.stale or self.missing or self.extra)

    def lines(self, output_dir: Path) -> list[str]:
        return [
            *(f"stale: {output_dir / name}" for name in self.stale),
            *(f"missing: {output_dir / name}" for name in self.missing),
            *(f"extra: {output_dir / name}" for name in self.extra),
        ]


def check(files: dict[str, str], output_dir: Path) -> Drift:
    """What differs between `files` and the output directory; writes nothing."""
    drift = Drift()
    for name in sorted(files):
        path = output_dir / name
        if not path.exists():
            drift.missing.append(name)
        elif path.read_bytes() != files[name].encode("utf-8"):
            drift.stale.append(name)
    drift.extra = sorted(_generated_on_disk(output_dir) - set(files)) if output_dir.is_dir() else []
    return drift


def write(files: dict[str, str], output_dir: Path) -> Drift:
    """Bring the output directory up to date; returns what was changed.

    An extra module is removed only when its header says it was generated.
    """
    drift = check(files, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in drift.stale + drift.missing:
        (output_dir / name).write_bytes(files[name].encode("utf-8"))
    for name in list(drift.extra):
        path = output_dir / name
        if GENERATED_MARK in path.read_text(encoding="utf-8", errors="replace")[:1000]:
            path.unlink()
        else:
            drift.extra.remove(name)
    return drift
