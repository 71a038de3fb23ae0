"""Helpers for the codegen tests: generate the fixture query file's module and import it."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import asyncpg

from coherence_sql.codegen.generate import build

FIXTURE_DIR = Path(__file__).resolve().parent
FIXTURE_MODULE = "fixture_accessors"


async def generate_files(dsn: str, queries_dir: Path = FIXTURE_DIR) -> dict[str, str]:
    """The generator's output for `queries_dir`, described on the (migrated) database `dsn`."""
    conn = await asyncpg.connect(dsn)
    try:
        return await build(conn, queries_dir)
    finally:
        await conn.close()


def write_and_import(files: dict[str, str], directory: Path) -> ModuleType:
    """Write the generated files into `directory` and import the fixture module from there."""
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    path = directory / f"{FIXTURE_MODULE}.py"
    spec = importlib.util.spec_from_file_location(FIXTURE_MODULE, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[FIXTURE_MODULE] = module
    spec.loader.exec_module(module)
    return module


def row_fields(module: ModuleType, row: str) -> dict[str, str]:
    """A row or parameter class's fields, in order, with their annotations as written in the source.

    A NamedTuple declares `name: T`; a Record row declares, under `if TYPE_CHECKING:`, a read-only
    `@property def name(self) -> T` (its run-time branch has no annotations to introspect).
    """
    tree = ast.parse(inspect.getsource(getattr(module, row)))
    [klass] = tree.body
    assert isinstance(klass, ast.ClassDef)
    fields: dict[str, str] = {}
    for node in ast.walk(klass):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            fields[node.target.id] = ast.unparse(node.annotation)
        elif isinstance(node, ast.FunctionDef) and node.returns is not None:
            assert [ast.unparse(d) for d in node.decorator_list] == ["property"], node.name
            fields[node.name] = ast.unparse(node.returns)
    return fields
