"""The cut-over collector reads CutoverStores at scrape time: its figures are store_status()'s,
family by family, with the shadow comparisons by operation and the journal's oldest entry age."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.errors import InvalidValueError
from coherence_sql.metrics import register_cutover
from coherence_sql.models import Contributor, ContributorType
from tests.metrics.scrape import labelled, scrape, value
from tests.pg import execute

FAMILIES = {
    "coherence_sql_cutover_writes",
    "coherence_sql_cutover_journal_pending",
    "coherence_sql_cutover_journal_oldest_age_seconds",
    "coherence_sql_cutover_dead_letters",
    "coherence_sql_cutover_reads",
    "coherence_sql_cutover_read_fallbacks",
    "coherence_sql_cutover_shadow_compares",
    "coherence_sql_cutover_shadow_mismatches",
    "coherence_sql_cutover_phase",
    "coherence_sql_cutover_read_share_ratio",
    "coherence_sql_cutover_diverged",
}


def ada(email: str = "ada@coherence.dev") -> Contributor:
    return Contributor(type=ContributorType.HUMAN, name="Ada", email=email)


@pytest.fixture
async def reading_postgres(clean_dsn: str, tmp_path: Path) -> AsyncIterator[CutoverStores]:
    """Dual-write, every keyed read from PostgreSQL and every read compared in the shadow."""
    settings = CutoverSettings(
        dual_write=True,
        read_from_postgres_percent=100,
        shadow_compare_percent=100,
        journal_path=tmp_path / "journal.jsonl",
        database_url=clean_dsn,
    )
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        yield stores


async def test_every_family_is_there_with_the_phase_and_read_share(reading_postgres: CutoverStores) -> None:
    registry = CollectorRegistry()
    collector = register_cutover(reading_postgres, registry)
    names, samples = scrape(registry)
    assert names == FAMILIES
    assert labelled(samples, "coherence_sql_cutover_phase") == {
        (("phase", "memory"),): 0,
        (("phase", "dual-write"),): 1,
        (("phase", "postgres-primary"),): 0,
    }
    assert value(samples, "coherence_sql_cutover_read_share_ratio") == 1.0
    assert value(samples, "coherence_sql_cutover_diverged") == 0
    assert value(samples, "coherence_sql_cutover_journal_oldest_age_seconds") == 0
    registry.unregister(collector)
    assert scrape(registry)[0] == set()


async def test_the_counters_are_store_status_figures(reading_postgres: CutoverStores, clean_dsn: str) -> None:
    stores = reading_postgres
    registry = CollectorRegistry()
    register_cutover(stores, registry)
    first = await stores.graph.create_contributor(ada())
    second = await stores.graph.create_contributor(ada("grace@coherence.dev"))
    assert await stores.graph.get_contributor(first.id) == first
    # A change behind the stores' back: PostgreSQL's answer differs from memory's, and the shadow says so.
    await execute(clean_dsn, "UPDATE contributors SET name = 'Not Ada' WHERE id = $1", second.id)
    await stores.graph.get_contributor(second.id)
    await stores.core.shadow.drain()
    # One write PostgreSQL refused on its data, one waiting in the journal, and a divergence.
    stores.core.dead_letter("graph", "create_contributor", {"contributor": ada("x@y.z")}, InvalidValueError("bad"))
    stores.core.journal_write("graph", "create_contributor", {"contributor": ada("late@coherence.dev")}, None)

    status = await stores.store_status()
    _, samples = scrape(registry)
    assert labelled(samples, "coherence_sql_cutover_writes_total") == {
        (("outcome", "both"),): status.writes.postgres_ok,
        (("outcome", "journaled"),): status.writes.journaled,
        (("outcome", "dead_lettered"),): status.writes.dead_lettered,
    }
    assert (status.writes.postgres_ok, status.writes.journaled, status.writes.dead_lettered) == (2, 1, 1)
    assert labelled(samples, "coherence_sql_cutover_reads_total") == {
        (("side", "memory"),): status.reads.memory,
        (("side", "postgres"),): status.reads.postgres,
    }
    assert status.reads.postgres == 2
    assert value(samples, "coherence_sql_cutover_read_fallbacks_total") == status.reads.fallbacks_to_memory
    assert labelled(samples, "coherence_sql_cutover_shadow_compares_total") == {(("operation", "get_contributor"),): 2}
    assert labelled(samples, "coherence_sql_cutover_shadow_mismatches_total") == {
        (("operation", "get_contributor"),): 1
    }
    assert (status.shadow.compared, status.shadow.mismatched) == (2, 1)
    assert value(samples, "coherence_sql_cutover_journal_pending") == status.journal.pending == 1
    assert value(samples, "coherence_sql_cutover_dead_letters") == status.dead_letters.count == 1
    age = value(samples, "coherence_sql_cutover_journal_oldest_age_seconds")
    assert age is not None
    assert 0 <= age < 60

    stores.core.mark_diverged("a test lost a write")
    assert value(scrape(registry)[1], "coherence_sql_cutover_diverged") == 1


async def test_the_oldest_age_is_the_first_pending_entry(reading_postgres: CutoverStores) -> None:
    journal = reading_postgres.core.journal
    assert journal is not None
    assert journal.oldest_pending_at() is None
    before = datetime.now(UTC)
    journal.append("graph", "create_contributor", {"contributor": ada("one@coherence.dev")})
    oldest = journal.oldest_pending_at()
    assert oldest is not None
    assert before - timedelta(seconds=1) <= oldest <= datetime.now(UTC)
    journal.append("graph", "create_contributor", {"contributor": ada("two@coherence.dev")})
    assert journal.oldest_pending_at() == oldest


async def test_a_cut_over_figure_that_cannot_be_read_leaves_the_rest_of_the_scrape_standing(
    reading_postgres: CutoverStores, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    register_cutover(reading_postgres, registry)
    Gauge("neighbour", "Another family of the same registry.", registry=registry).set(7)
    monkeypatch.setattr(reading_postgres.core.shadow, "stats", None)  # a figure that raises when read
    names, samples = scrape(registry)
    assert names == FAMILIES | {"neighbour"}
    assert samples == {("neighbour", ()): 7}  # the cut-over's families without samples, never made up
    assert "the cut-over's figures could not be read: AttributeError" in caplog.text
