"""The typed store status: `store_status()` returns a `StoreStatus` whose `model_dump()` is the JSON
object the API served as a plain dict before it was typed, key for key, in every state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import uuid4

from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings, Phase
from coherence_sql.cutover.status import StoreStatus
from coherence_sql.models import Contributor, ContributorType, Project
from coherence_sql.sql import health as health_sql
from tests.pg import PgServer, with_database

DIVERGED_ACTION = (
    "PostgreSQL misses writes nothing can replay: backfill a new snapshot, verify, "
    "then clear with `coherence-sql reconcile --clear-diverged` (docs/runbook.md)"
)


async def dict_payload(stores: CutoverStores) -> dict[str, Any]:
    """The payload as `store_status()` built it by hand before it was typed (the contract's oracle)."""
    core, settings, stats, shadow = stores.core, stores.core.settings, stores.core.stats, stores.core.shadow
    if not settings.uses_postgres:
        postgres: dict[str, Any] = {"configured": False}
    elif stores.postgres is None:
        postgres = {"configured": True, "reachable": False, "error": stores.last_connect_error}
    else:
        pool = stores.postgres.pool
        postgres = {
            "configured": True,
            "pool": {"size": pool.get_size(), "idle": pool.get_idle_size(), "max": pool.get_max_size()},
            "reachable": True,
            "server_version": await health_sql.server_version(pool),
        }
    journal = core.journal
    last = stores.last_replay
    return {
        "phase": settings.phase.value,
        "settings": {
            "dual_write_mode": settings.dual_write,
            "read_from_postgres_percent": settings.read_from_postgres_percent,
            "shadow_compare_percent": settings.shadow_compare_percent,
            "postgres_primary": settings.postgres_primary,
            "memory_writes": settings.memory_writes,
            "postgres_budget_ms": round(settings.postgres_budget_s * 1000),
        },
        "source_of_truth": "postgres" if settings.phase is Phase.POSTGRES_PRIMARY else "memory",
        "degraded": stores.degraded,
        "diverged": {"since": core.diverged, "action": None if core.diverged is None else DIVERGED_ACTION},
        "postgres": postgres,
        "writes": {
            "memory_ok": stats.memory_ok,
            "postgres_ok": stats.postgres_ok,
            "postgres_failed": stats.postgres_failed,
            "journaled": stats.journaled,
            "dead_lettered": stats.dead_lettered,
            "over_budget": stats.over_budget,
            "journal_write_failures": stats.journal_write_failures,
            "memory_failed_after_postgres": stats.memory_failed_after_postgres,
            "errors_by_type": dict(stats.by_error),
            "in_flight_after_budget": core.detached,
        },
        "reads": {
            "memory": stats.reads_memory,
            "postgres": stats.reads_postgres,
            "fallbacks_to_memory": stats.read_fallbacks,
        },
        "journal": {"path": None, "pending": 0, "set_aside": 0, "last_replay": None}
        if journal is None
        else {
            "path": str(journal.path),
            "pending": journal.pending(),
            "set_aside": journal.set_aside_count(),
            "last_replay": None
            if last is None
            else {
                "applied": last.applied,
                "already_applied": last.already_applied,
                "remaining": last.remaining,
                "set_aside": last.set_aside,
                "error": last.error,
            },
        },
        "dead_letters": {
            "path": None if journal is None else str(journal.dead_letters.path),
            "count": 0 if journal is None else journal.dead_letters.count(),
            "recent": list(stats.recent_dead_letters)[-10:],
        },
        "shadow": {**shadow.stats.as_dict(), "recent_mismatches": [m.as_json() for m in list(shadow.recent)[-10:]]},
    }


def ada() -> Contributor:
    return Contributor(type=ContributorType.HUMAN, name="Ada", email="ada@coherence.dev")


async def test_memory_mode_status_is_the_same_object_as_before_it_was_typed() -> None:
    async with open_cutover_stores(CutoverSettings(), reconcile_interval_s=None) as stores:
        await stores.graph.create_contributor(ada())
        status = await stores.store_status()
        assert isinstance(status, StoreStatus)
        dumped = status.model_dump()
        assert dumped == await dict_payload(stores)
    assert list(dumped) == [
        "phase", "settings", "source_of_truth", "degraded", "diverged", "postgres",
        "writes", "reads", "journal", "dead_letters", "shadow",
    ]  # fmt: skip
    assert dumped["postgres"] == {"configured": False}
    assert dumped["writes"]["journaled"] == 0  # memory mode counts nothing: it routes nothing
    assert dumped["journal"] == {"path": None, "pending": 0, "set_aside": 0, "last_replay": None}


async def test_dual_write_status_with_a_replay_and_a_shadow_mismatch_is_the_same_object(
    clean_dsn: str, tmp_path: Path
) -> None:
    settings = CutoverSettings(
        dual_write=True,
        read_from_postgres_percent=100,
        shadow_compare_percent=100,
        journal_path=tmp_path / "journal.jsonl",
        database_url=clean_dsn,
    )
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        react = Project(ecosystem="npm", name="react", version="19.0.0", description="UI")
        await stores.graph.upsert_project(react)
        await stores.postgres.graph.upsert_project(react.model_copy(update={"version": "19.1.0"}))
        await stores.graph.get_project("npm", "react")
        await stores.core.shadow.drain()
        await stores.reconcile()
        status = await stores.store_status()
        dumped = status.model_dump()
        assert dumped == await dict_payload(stores)
    assert list(dumped["postgres"]) == ["configured", "pool", "reachable", "server_version"]
    assert status.postgres.reachable is True
    assert status.shadow.mismatched == 1
    assert dumped["shadow"]["recent_mismatches"][0]["control_side"] == "postgres"
    assert status.journal.last_replay is not None
    assert dumped["journal"]["last_replay"]["error"] is None
    json.dumps(status.model_dump(mode="json"))  # what an API serves


async def test_a_degraded_start_status_names_only_what_applies(pg_server: PgServer, tmp_path: Path) -> None:
    dsn = with_database(pg_server.admin_dsn, f"cs_test_absent_{uuid4().hex[:10]}")  # no such database
    settings = CutoverSettings(dual_write=True, journal_path=tmp_path / "journal.jsonl", database_url=dsn)
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        await stores.graph.create_contributor(ada())
        status = await stores.store_status()
        dumped = status.model_dump()
        assert dumped == await dict_payload(stores)
    assert list(dumped["postgres"]) == ["configured", "reachable", "error"]
    assert status.degraded is True
    assert status.postgres.error is not None
    assert "DatabaseUnavailableError" in status.postgres.error
    assert status.journal.pending == 1


def test_the_payload_schema_documents_every_section() -> None:
    schema = StoreStatus.model_json_schema()
    assert set(schema["required"]) == {
        "phase", "settings", "source_of_truth", "degraded", "diverged", "postgres",
        "writes", "reads", "journal", "dead_letters", "shadow",
    }  # fmt: skip
    assert set(schema["properties"]["phase"]["enum"]) == {phase.value for phase in Phase}
