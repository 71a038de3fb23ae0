"""The public API: the names `coherence_sql` exports are the package's own objects, typed."""

from __future__ import annotations

import subprocess
import sys

import pytest

import coherence_sql
from coherence_sql import errors, schema
from coherence_sql.cutover import service, settings, status
from coherence_sql.cutover import sync as cutover_sync
from coherence_sql.stores import postgres, sync


def test_every_exported_name_resolves_to_its_home() -> None:
    assert coherence_sql.connect is postgres.connect
    assert coherence_sql.PostgresStores is postgres.PostgresStores
    assert coherence_sql.SyncStores is sync.SyncStores
    assert coherence_sql.migrate is schema.migrate
    assert coherence_sql.require_current is schema.require_current
    assert coherence_sql.open_cutover_stores is service.open_cutover_stores
    assert coherence_sql.CutoverStores is service.CutoverStores
    assert coherence_sql.CutoverSettings is settings.CutoverSettings
    assert coherence_sql.Phase is settings.Phase
    assert coherence_sql.StoreStatus is status.StoreStatus
    assert coherence_sql.SyncCutoverStores is cutover_sync.SyncCutoverStores
    for name in coherence_sql.__all__:
        value = getattr(coherence_sql, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert value is getattr(errors, name)
            assert issubclass(value, errors.CoherenceSQLError)
    assert sorted(dir(coherence_sql)) == sorted(coherence_sql.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Connect'"):
        _ = coherence_sql.Connect  # type: ignore[attr-defined]


def test_importing_the_package_loads_no_store_or_driver() -> None:
    code = (
        "import sys, coherence_sql\n"
        "print(sorted(m for m in sys.modules if m.startswith(('asyncpg', 'coherence_sql.'))))"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert ran.stdout.strip() == "[]"


def test_the_package_is_typed() -> None:
    from pathlib import Path

    assert (Path(coherence_sql.__file__).parent / "py.typed").exists()
