"""Helpers for the codegen tests: generate the fixture query file's module and import it."""

from __future__ import annotations

import importlib.util
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
