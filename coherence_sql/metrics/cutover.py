"""The cut-over's metrics, read from `CutoverStores` when scraped: nothing on the hot path.

The counters are the stores' own (`core.stats`, the shadow reader's stats), the journal's depth
and age and the dead letters are read from their files, the phase and read share from the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coherence_sql.cutover.settings import Phase
from coherence_sql.errors import CoherenceSQLError
from coherence_sql.metrics.registry import REGISTRY

if TYPE_CHECKING:
    from coherence_sql.cutover.service import CutoverStores

log = logging.getLogger(__name__)


Family = CounterMetricFamily | GaugeMetricFamily


def _families() -> dict[str, Family]:
    """Every family this collector emits, empty, by name (the same set whether or not samples follow)."""
    families: list[Family] = [
        CounterMetricFamily(
            "coherence_sql_cutover_writes",
            "Dual-write outcomes: both (PostgreSQL took it too), journaled (waits for a replay), "
            "dead_lettered (PostgreSQL refused it on its data).",
            labels=["outcome"],
        ),
        GaugeMetricFamily("coherence_sql_cutover_journal_pending", "Writes waiting in the journal for PostgreSQL."),
        GaugeMetricFamily(
            "coherence_sql_cutover_journal_oldest_age_seconds",
            "Age of the oldest write waiting in the journal (0 when none waits).",
        ),
        GaugeMetricFamily("coherence_sql_cutover_dead_letters", "Dead letters on file (writes PostgreSQL refused)."),
        CounterMetricFamily(
            "coherence_sql_cutover_reads", "Reads served, by the side that served them.", labels=["side"]
        ),
        CounterMetricFamily(
            "coherence_sql_cutover_read_fallbacks", "Reads meant for PostgreSQL that memory served instead."
        ),
        CounterMetricFamily(
            "coherence_sql_cutover_shadow_compares", "Shadow reads compared, by store operation.", labels=["operation"]
        ),
        CounterMetricFamily(
            "coherence_sql_cutover_shadow_mismatches",
            "Shadow reads whose answer differed, by store operation.",
            labels=["operation"],
        ),
        GaugeMetricFamily(
            "coherence_sql_cutover_phase", "1 for the phase in force, 0 for the others.", labels=["phase"]
        ),
        GaugeMetricFamily(
            "coherence_sql_cutover_read_share_ratio", "Share of keyed reads routed to PostgreSQL (0..1)."
        ),
        GaugeMetricFamily("coherence_sql_cutover_diverged", "1 when PostgreSQL is marked diverged, else 0."),
    ]
    return {family.name: family for family in families}


class CutoverCollector(Collector):
    """The metrics of one `CutoverStores`, read at scrape time."""

    def __init__(self, stores: CutoverStores) -> None:
        self.stores = stores

    def describe(self) -> Iterator[Metric]:
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        # A collector that raises fails the whole scrape (prometheus_client stops at it): every
        # other family of the registry would go blind with it. Here the families stay, without samples.
        try:
            families = self._read()
        except Exception as exc:
            log.warning("metrics: the cut-over's figures could not be read: %s: %s", type(exc).__name__, exc)
            families = _families()
        yield from families.values()

    def _read(self) -> dict[str, Family]:
        families = _families()
        core = self.stores.core
        stats = core.stats
        settings = core.settings

        def add(name: str, value: float, labels: list[str] | None = None) -> None:
            families[name].add_metric(labels or [], value)

        # "both": PostgreSQL took it and memory has it (phases 1-2), or PostgreSQL took it (phase 3).
        add("coherence_sql_cutover_writes", stats.postgres_ok, ["both"])
        add("coherence_sql_cutover_writes", stats.journaled, ["journaled"])
        add("coherence_sql_cutover_writes", stats.dead_lettered, ["dead_lettered"])
        add("coherence_sql_cutover_reads", stats.reads_memory, ["memory"])
        add("coherence_sql_cutover_reads", stats.reads_postgres, ["postgres"])
        add("coherence_sql_cutover_read_fallbacks", stats.read_fallbacks)
        shadow = core.shadow.stats
        # Copies (one C call each, atomic under the GIL): the loop's thread adds operations while
        # a scrape from another thread (`metrics serve`, a sync API's) reads them.
        compared, mismatched = shadow.compared_by_operation.copy(), shadow.mismatched_by_operation.copy()
        for operation in sorted(compared):
            add("coherence_sql_cutover_shadow_compares", compared[operation], [operation])
            add("coherence_sql_cutover_shadow_mismatches", mismatched[operation], [operation])
        for phase in Phase:
            add("coherence_sql_cutover_phase", 1 if settings.phase is phase else 0, [phase.value])
        add("coherence_sql_cutover_read_share_ratio", settings.read_from_postgres_percent / 100)
        add("coherence_sql_cutover_diverged", 0 if core.diverged is None else 1)
        self._journal(families)
        return families

    def _journal(self, families: dict[str, Family]) -> None:
        """Depth, age and dead letters from the files; a file that cannot be read leaves its sample
        out (an absent series, which the alert rules treat as such) rather than a made-up 0."""
        journal = self.stores.core.journal
        if journal is None:
            for name in (
                "coherence_sql_cutover_journal_pending",
                "coherence_sql_cutover_journal_oldest_age_seconds",
                "coherence_sql_cutover_dead_letters",
            ):
                families[name].add_metric([], 0)
            return
        try:
            pending = journal.pending()
            oldest = journal.oldest_pending_at()
        except (OSError, CoherenceSQLError) as exc:
            log.warning("metrics: the write journal cannot be read: %s", exc)
        else:
            age = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
            families["coherence_sql_cutover_journal_pending"].add_metric([], pending)
            families["coherence_sql_cutover_journal_oldest_age_seconds"].add_metric([], age)
        try:
            families["coherence_sql_cutover_dead_letters"].add_metric([], journal.dead_letters.count())
        except (OSError, CoherenceSQLError) as exc:
            log.warning("metrics: the dead letters cannot be read: %s", exc)


def register_cutover(stores: CutoverStores, registry: CollectorRegistry = REGISTRY) -> CutoverCollector:
    """Export `stores`' cut-over metrics from `registry`; `registry.unregister(collector)` stops it."""
    collector = CutoverCollector(stores)
    registry.register(collector)
    return collector
