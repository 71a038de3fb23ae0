"""What the code exports, scraped as Prometheus would: the package's registry with every collector
registered against a real database (cut-over stores after real calls, the server collector),
plus the verify and backup jobs' textfiles. The alert and dashboard tests check their metric names against it,
never against a hard-coded list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from coherence_sql.backup.dump import backup_database
from coherence_sql.backup.textfile import write_backup_textfile
from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.errors import DuplicateError
from coherence_sql.metrics import REGISTRY, exposition, register_cutover, register_server
from coherence_sql.metrics.verify import write_verify_textfile
from coherence_sql.models import Contributor, ContributorType, Project
from tests.pg import execute

# A metric name in PromQL (the `coherence_sql_` prefix is the package's namespace).
METRIC_NAME = re.compile(r"\bcoherence_sql_[a-z0-9_]+\b")


@dataclass
class Exported:
    """Family names (as in `# TYPE`, counters without `_total`) and every sample by sample name."""

    families: set[str] = field(default_factory=set)
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            self.families.add(family.name)
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))

    def knows(self, name: str) -> bool:
        """A name PromQL can select: a sample name (`_bucket`, `_count`, `_sum`, `_total` included),
        or a family that exists with no samples yet (a replication lag with no replica)."""
        return name in self.samples or name in self.families


async def _real_calls(stores: CutoverStores, dsn: str) -> None:
    """Writes and reads through the cut-over stores (every read from PostgreSQL, compared in the
    shadow), one row changed behind memory's back (a shadow mismatch), and one write PostgreSQL
    refuses (a failure under its error class)."""
    await stores.graph.upsert_project(Project(ecosystem="npm", name="react", version="18.0.0", description="UI"))
    await stores.graph.get_project("npm", "react")
    await execute(dsn, "UPDATE projects SET description = 'changed' WHERE name = 'react'")
    await stores.graph.get_project("npm", "react")
    ada = await stores.graph.create_contributor(
        Contributor(type=ContributorType.HUMAN, name="Ada", email="ada@coherence.dev")
    )
    await stores.graph.get_contributor(ada.id)
    await stores.core.shadow.drain()
    assert stores.postgres is not None
    try:  # behind memory's back: the same e-mail under another id, refused by PostgreSQL alone
        await stores.postgres.graph.create_contributor(
            Contributor(type=ContributorType.HUMAN, name="Ada", email="ada@coherence.dev")
        )
    except DuplicateError:
        pass
    else:
        raise AssertionError("PostgreSQL took a second contributor with the same e-mail")


async def scrape_everything(dsn: str, tmp_path: Path) -> Exported:
    """The exposition after real calls through cut-over stores on `dsn` (a clean migrated
    database), with the cut-over and server collectors registered (and unregistered again), plus
    a verify textfile."""
    settings = CutoverSettings(
        dual_write=True,
        read_from_postgres_percent=100,
        shadow_compare_percent=100,
        journal_path=tmp_path / "journal.jsonl",
        database_url=dsn,
    )
    exported = Exported()
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        await _real_calls(stores, dsn)
        cutover = register_cutover(stores)
        # The test server runs on this host (embedded, or TEST_DATABASE_URL's local service).
        server = register_server(dsn, data_directory_local=True)
        try:
            exported.add(exposition(REGISTRY).decode("utf-8"))
        finally:
            REGISTRY.unregister(cutover)
            REGISTRY.unregister(server)
    textfile = tmp_path / "coherence_sql_verify.prom"
    write_verify_textfile(textfile, passed=False, differences=3)
    exported.add(textfile.read_text())
    # The backup job's textfile, after a real backup of the same database.
    await backup_database(dsn, tmp_path / "backups")
    backups = tmp_path / "coherence_sql_backup.prom"
    write_backup_textfile(backups, success=True, directory=tmp_path / "backups")
    exported.add(backups.read_text())
    return exported


def names_in(promql: str) -> set[str]:
    return set(METRIC_NAME.findall(promql))
