"""Verify: compare the in-memory stores (or a snapshot file) with PostgreSQL, field by field.

Every entity is matched by key: records missing on either side and fields that differ are listed
with the key and both values; the aggregates (total_cost = sum of contributions, dependency_count
= out-degree) are checked on both sides, and so are the problems a side can hold on its own (an edge
listed twice in the source, a GitHub contributes-to edge whose contributor is unknown). PostgreSQL
is read in keyset pages inside one REPEATABLE READ transaction, so its side is one moment. Given the
write journal, the writes still on their way to PostgreSQL and the dead letters are reported too.

    report = await verify(stores, pool, journal=path)   # MemoryStores, a Snapshot or a snapshot file
    if not report.passed: print(report.format_table())
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Hashable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Final, TypeVar, cast
from uuid import UUID

import asyncpg

from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.db import Connection, Pool, connect, redact, resolve_dsn
from coherence_sql.errors import ConfigurationError, JournalError, translate
from coherence_sql.sql import assets as assets_sql
from coherence_sql.sql import contributions as contributions_sql
from coherence_sql.sql import contributors as contributors_sql
from coherence_sql.sql import github as github_sql
from coherence_sql.sql import verify as verify_sql
from coherence_sql.stores import rules
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore, MemoryStores
from coherence_sql.transfer.snapshot import Snapshot, load_snapshot

__all__ = [
    "ENTITIES",
    "FIELDS",
    "Difference",
    "EntityCounts",
    "JournalBacklog",
    "PostgresContents",
    "VerifyReport",
    "compare",
    "read_journal",
    "read_postgres",
    "verify",
    "verify_memory",
]

# Every entity the stores hold, in the snapshot's order, and the fields compared for each.
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "projects": ("ecosystem", "name", "version", "description", "homepage_url", "repository_url", "dependency_count"),
    "edges": (),
    "contributors": (
        "type",
        "name",
        "email",
        "wallet_address",
        "hourly_rate",
        "created_at",
        "github_username",
        "metadata",
    ),
    "assets": ("type", "name", "description", "total_cost", "created_at", "metadata"),
    "contributions": ("contributor_id", "asset_id", "cost_amount", "coherence_score", "metadata", "timestamp"),
    "github_contributors": (
        "source",
        "login",
        "name",
        "avatar_url",
        "contributions_count",
        "created_at",
        "updated_at",
    ),
    "github_organizations": ("login", "type", "name", "avatar_url", "created_at", "updated_at"),
    "github_contributes_to": (),
    "agent_tasks": (
        "direction",
        "task_type",
        "status",
        "model",
        "command",
        "tier",
        "context",
        "output",
        "progress_pct",
        "current_step",
        "decision_prompt",
        "decision",
        "started_at",
        "created_at",
        "updated_at",
        "claimed_by",
        "claimed_at",
    ),
}
ENTITIES: Final = tuple(FIELDS)
DEFAULT_THRESHOLD_PERCENT: Final = 0.0  # a gate: any difference fails (a threshold is for sampled runs)
PAGE_SIZE: Final = 20_000

MISSING_IN_POSTGRES: Final = "missing_in_postgres"
MISSING_IN_SOURCE: Final = "missing_in_source"
FIELD: Final = "field"
AGGREGATE: Final = "aggregate"  # a stored total or count that its records do not add up to
INVARIANT: Final = "invariant"  # a pending edge whose two projects both exist
DUPLICATE: Final = "duplicate"  # a key-only record listed more than once in the source
UNKNOWN_REFERENCE: Final = "unknown_reference"  # a contributes-to edge whose contributor is unknown
PROBLEMS: Final = (DUPLICATE, UNKNOWN_REFERENCE)  # one side's own defects, whatever the other holds
ONE_SIDED: Final = (AGGREGATE, INVARIANT, *PROBLEMS)
DEAD_LETTERS_HELP: Final = 'docs/runbook.md, "Dead letters"'

Key = Hashable
Values = tuple[Any, ...]
Side = dict[str, dict[Key, Values]]
_R = TypeVar("_R")


# -- the report ----------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A value as JSON shows it: Decimal and UUID as strings, times in ISO format, enums by value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def render_key(entity: str, key: Key) -> str:
    """A key as the report prints it: `npm/react`, `npm/app -> npm/react`, an id."""
    if entity == "projects":
        eco, name = cast(tuple[str, str], key)
        return f"{eco}/{name}"
    if entity == "edges":
        fe, fn, te, tn = cast(tuple[str, str, str, str], key)
        return f"{fe}/{fn} -> {te}/{tn}"
    if entity == "github_contributes_to":
        cid, eco, name = cast(tuple[str, str, str], key)
        return f"{cid} -> {eco}/{name}"
    return str(key)


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference. `kind` says which values are set:

    - missing_in_postgres / missing_in_source: `source` / `postgres` hold the whole record;
    - field: `field`, and the field's value on each side in `source` and `postgres`;
    - aggregate / invariant: `side` ("source" or "postgres") breaks it; `field`, the value stored
      (`stated`) and what its records add up to (`computed`);
    - duplicate: `side` "source", `stated` how many times the key is listed, `computed` 1 (kept once);
    - unknown_reference: `side` holds it, `field` the reference, `stated` its value; `reason` says why.
    """

    entity: str
    key: str
    kind: str
    field: str | None = None
    source: Any = None
    postgres: Any = None
    side: str | None = None
    stated: Any = None
    computed: Any = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entity": self.entity, "key": self.key, "kind": self.kind}
        if self.kind in ONE_SIDED:
            out |= {"side": self.side, "field": self.field, "stated": self.stated, "computed": self.computed}
            if self.reason is not None:
                out["reason"] = self.reason
        elif self.kind == FIELD:
            out |= {"field": self.field, "source": self.source, "postgres": self.postgres}
        elif self.kind == MISSING_IN_POSTGRES:
            out["source"] = self.source
        else:
            out["postgres"] = self.postgres
        return out

    def line(self) -> str:
        where = f"{self.entity} {self.key}"
        if self.kind == FIELD:
            return f"{where}: {self.field} differs: source {self.source!r}, postgres {self.postgres!r}"
        if self.kind in (AGGREGATE, INVARIANT):
            return f"{where}: {self.field} on {self.side}: stored {self.stated!r}, its records give {self.computed!r}"
        if self.kind in PROBLEMS:
            return f"{where}: on {self.side}: {self.reason}"
        if self.kind == MISSING_IN_POSTGRES:
            return f"{where}: missing in PostgreSQL (source has {self.source!r})"
        return f"{where}: missing in the source (PostgreSQL has {self.postgres!r})"


@dataclass(slots=True)
class EntityCounts:
    compared: int = 0  # distinct keys on either side (within the sample)
    missing_in_postgres: int = 0
    missing_in_source: int = 0
    differing: int = 0  # keys present on both sides with at least one field different
    aggregates: int = 0  # keys whose stored aggregate or invariant is broken (either side)
    problems: int = 0  # keys listed twice, or referring to what their side does not have
    mismatched: int = 0  # keys with any difference at all

    def as_json(self) -> dict[str, int]:
        return {
            "compared": self.compared,
            "missing_in_postgres": self.missing_in_postgres,
            "missing_in_source": self.missing_in_source,
            "differing": self.differing,
            "aggregates": self.aggregates,
            "problems": self.problems,
            "mismatched": self.mismatched,
        }


@dataclass(frozen=True, slots=True)
class JournalBacklog:
    """The dual-write journal as verify found it: writes PostgreSQL has not received yet (`pending`)
    and writes it refused (`dead_letters`). Either means PostgreSQL is behind or missing writes."""

    path: str
    exists: bool
    pending: int = 0
    dead_letters: int = 0

    @property
    def clean(self) -> bool:
        return self.pending == 0 and self.dead_letters == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.exists,
            "pending": self.pending,
            "dead_letters": self.dead_letters,
            "clean": self.clean,
        }

    def line(self) -> str:
        if not self.exists:
            return f"journal {self.path}: none there (nothing pending, no dead letters)"
        state = f"journal {self.path}: {self.pending:,} pending, {self.dead_letters:,} dead letters"
        if self.clean:
            return state
        return (
            f"{state} - FAILED: PostgreSQL is behind or missing writes. Run `coherence-sql reconcile "
            f"--journal {self.path}` (replays what is pending, lists the dead letters); for each dead "
            f"letter see {DEAD_LETTERS_HELP}; then verify again"
        )


def read_journal(path: Path) -> JournalBacklog:
    """How many writes `path`'s journal still holds for PostgreSQL, and its dead letters.

    A journal whose directory does not exist is reported as absent without creating anything
    (the journal's lock file would otherwise be created by a read-only check)."""
    if not path.parent.is_dir():
        return JournalBacklog(str(path), exists=False)
    journal = WriteJournal(path)
    try:
        pending = journal.pending()
        dead = journal.dead_letters.count()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    exists = pending > 0 or dead > 0 or path.exists() or journal.dead_letters.path.exists()
    return JournalBacklog(str(path), exists=exists, pending=pending, dead_letters=dead)


@dataclass(slots=True)
class VerifyReport:
    """The outcome. `passed` when the mismatch rate is at most the threshold (default 0: any
    difference fails) and the journal, when checked, holds nothing; every difference is listed in
    `differences` whatever the rate (docs/decisions.md)."""

    source: str
    target: str
    sample_percent: float
    threshold_percent: float
    entities: dict[str, EntityCounts] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)  # entities the source has no section for
    journal: JournalBacklog | None = None  # None: not checked
    seconds: float = 0.0

    @property
    def compared_count(self) -> int:
        return sum(c.compared for c in self.entities.values())

    @property
    def mismatch_count(self) -> int:
        """Records (keys) with at least one difference, over every entity."""
        return sum(c.mismatched for c in self.entities.values())

    @property
    def mismatch_percent(self) -> float:
        return 100.0 * self.mismatch_count / self.compared_count if self.compared_count else 0.0

    @property
    def within_threshold(self) -> bool:
        return self.mismatch_percent <= self.threshold_percent

    @property
    def journal_clean(self) -> bool:
        """Nothing pending and no dead letter (True when the journal was not checked)."""
        return self.journal is None or self.journal.clean

    @property
    def passed(self) -> bool:
        """The gate: within the threshold, and PostgreSQL not known to be behind (whatever the threshold)."""
        return self.within_threshold and self.journal_clean

    @property
    def problem_count(self) -> int:
        """Records with a duplicate or an unknown reference on either side (each also mismatched)."""
        return sum(c.problems for c in self.entities.values())

    @property
    def ok(self) -> bool:
        """No difference at all and a clean journal (stricter than `passed`)."""
        return self.mismatch_count == 0 and not self.differences and self.journal_clean

    def _verdict(self) -> str:
        return "OK" if self.within_threshold else "ABOVE THE THRESHOLD"

    def summary(self) -> str:
        verdict = "ok" if self.within_threshold else "above the threshold"
        journal = ""
        if self.journal is not None:
            journal = f"; journal: {self.journal.pending:,} pending, {self.journal.dead_letters:,} dead letters" + (
                "" if self.journal.clean else " (fails)"
            )
        return (
            f"{self.mismatch_count:,} of {self.compared_count:,} records mismatched ({self.mismatch_percent:.4f}%, "
            f"threshold {self.threshold_percent:g}%: {verdict}){journal} in {self.seconds:.2f} s"
        )

    @property
    def exit_code(self) -> int:
        """0 when passed (differences within a threshold are still listed), 1 otherwise."""
        return 0 if self.passed else 1

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "sample_percent": self.sample_percent,
            "threshold_percent": self.threshold_percent,
            "compared": self.compared_count,
            "mismatched": self.mismatch_count,
            "mismatch_percent": round(self.mismatch_percent, 6),
            "problems": self.problem_count,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "entities": {name: counts.as_json() for name, counts in self.entities.items()},
            "not_compared": self.not_compared,
            "journal": None if self.journal is None else self.journal.as_json(),
            "differences": [d.as_json() for d in self.differences],
        }

    def format_table(self, limit: int | None = 200) -> str:
        sample = "" if self.sample_percent >= 100 else f", sample {self.sample_percent:g}%"
        lines = [
            f"verify {self.source} against {self.target}{sample}",
            f"{'entity':<22}{'compared':>10}{'missing in pg':>15}{'missing in src':>16}"
            f"{'differing':>11}{'aggregates':>12}{'problems':>10}",
        ]
        for name, c in self.entities.items():
            lines.append(
                f"{name:<22}{c.compared:>10,}{c.missing_in_postgres:>15,}{c.missing_in_source:>16,}"
                f"{c.differing:>11,}{c.aggregates:>12,}{c.problems:>10,}"
            )
        for name in self.not_compared:
            lines.append(f"{name:<22}{'(not in the source)':>30}")
        totals = EntityCounts()
        for c in self.entities.values():
            totals.compared += c.compared
            totals.missing_in_postgres += c.missing_in_postgres
            totals.missing_in_source += c.missing_in_source
            totals.differing += c.differing
            totals.aggregates += c.aggregates
            totals.problems += c.problems
        lines.append(
            f"{'total':<22}{totals.compared:>10,}{totals.missing_in_postgres:>15,}"
            f"{totals.missing_in_source:>16,}{totals.differing:>11,}{totals.aggregates:>12,}{totals.problems:>10,}"
        )
        lines.append(
            f"mismatch rate {self.mismatch_percent:.4f}% ({self.mismatch_count:,} of {self.compared_count:,} records)"
            f" - {self._verdict()} (threshold {self.threshold_percent:g}%) in {self.seconds:.2f} s"
        )
        if self.journal is not None:
            lines.append(self.journal.line())
        if self.differences:
            shown = self.differences if limit is None or limit <= 0 else self.differences[:limit]
            lines.append(f"differences ({len(self.differences):,}):")
            lines.extend(f"  {d.line()}" for d in shown)
            if len(shown) < len(self.differences):
                lines.append(f"  … {len(self.differences) - len(shown):,} more (--limit 0 or --json lists all)")
        lines.append(self.verdict_line())
        return "\n".join(lines)

    def verdict_line(self) -> str:
        """The last line: PASSED, or FAILED and every reason."""
        if self.passed:
            return "verify: PASSED"
        reasons = []
        if not self.within_threshold:
            reasons.append(
                f"{self.mismatch_count:,} mismatched records ({self.mismatch_percent:.4f}%) above the "
                f"{self.threshold_percent:g}% threshold"
            )
        if self.journal is not None and not self.journal.clean:
            reasons.append(
                f"the journal holds {self.journal.pending:,} pending writes and {self.journal.dead_letters:,} "
                "dead letters"
            )
        return "verify: FAILED: " + "; ".join(reasons)


# -- reading PostgreSQL --------------------------------------------------------------------------


@dataclass(slots=True)
class PostgresContents:
    """Every row of the stores' tables, in insertion order, read in one snapshot; with the
    database's own aggregate checks."""

    projects: list[verify_sql.ScanProjectsRow]
    resolved_edges: list[verify_sql.ScanResolvedEdgesRow]
    pending_edges: list[verify_sql.ScanPendingEdgesRow]
    contributors: list[contributors_sql.ScanContributorsRow]
    assets: list[assets_sql.ScanAssetsRow]
    contributions: list[contributions_sql.ScanContributionsRow]
    github_contributors: list[github_sql.ScanGithubContributorsRow]
    github_organizations: list[github_sql.ScanGithubOrganizationsRow]
    github_contributes_to: list[verify_sql.ScanContributesToRow]
    agent_tasks: list[verify_sql.ScanAgentTasksRow]
    total_cost_violations: list[verify_sql.TotalCostViolationsRow]
    dependency_count_violations: list[verify_sql.DependencyCountViolationsRow]
    resolvable_pending_edges: list[verify_sql.ResolvablePendingEdgesRow]


async def _pages(
    fetch: Callable[..., Awaitable[list[_R]]], conn: Connection, position: Callable[[_R], int], page_size: int
) -> list[_R]:
    """All rows of a keyset scan: pages of `page_size` after the last row's position."""
    rows: list[_R] = []
    after = 0
    while True:
        page = await fetch(conn, after=after, lim=page_size)
        rows.extend(page)
        if len(page) < page_size:
            return rows
        after = position(page[-1])


@asynccontextmanager
async def read_transaction(target: Pool | str | None) -> AsyncIterator[Connection]:
    """One connection in a read-only REPEATABLE READ transaction: every read sees one moment."""
    if isinstance(target, asyncpg.Pool):
        try:
            async with target.acquire() as proxy:
                conn = cast(Connection, proxy)
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    yield conn
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise translate(exc, "verify") from None
        return
    conn = await connect(resolve_dsn(target))
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise translate(exc, "verify") from None
    finally:
        await conn.close()


async def read_postgres_on(conn: Connection, *, page_size: int = PAGE_SIZE) -> PostgresContents:
    """`read_postgres` on a connection already in the transaction the caller wants."""
    by_id: Callable[[Any], int] = lambda row: int(row.id)  # noqa: E731
    by_seq: Callable[[Any], int] = lambda row: int(row.seq)  # noqa: E731
    return PostgresContents(
        projects=await _pages(verify_sql.scan_projects, conn, by_id, page_size),
        resolved_edges=await _pages(verify_sql.scan_resolved_edges, conn, by_id, page_size),
        pending_edges=await _pages(verify_sql.scan_pending_edges, conn, by_id, page_size),
        contributors=await _pages(contributors_sql.scan_contributors, conn, by_seq, page_size),
        assets=await _pages(assets_sql.scan_assets, conn, by_seq, page_size),
        contributions=await _pages(contributions_sql.scan_contributions, conn, by_seq, page_size),
        github_contributors=await _pages(github_sql.scan_github_contributors, conn, by_seq, page_size),
        github_organizations=await _pages(github_sql.scan_github_organizations, conn, by_seq, page_size),
        github_contributes_to=await _pages(verify_sql.scan_contributes_to, conn, by_seq, page_size),
        agent_tasks=await _pages(verify_sql.scan_agent_tasks, conn, by_seq, page_size),
        total_cost_violations=await verify_sql.total_cost_violations(conn),
        dependency_count_violations=await verify_sql.dependency_count_violations(conn),
        resolvable_pending_edges=await verify_sql.resolvable_pending_edges(conn),
    )


async def read_postgres(target: Pool | str | None, *, page_size: int = PAGE_SIZE) -> PostgresContents:
    """Every table the stores use, read in keyset pages in one read-only REPEATABLE READ transaction."""
    async with read_transaction(target) as conn:
        return await read_postgres_on(conn, page_size=page_size)


# -- both sides as comparable values -------------------------------------------------------------


def _score(value: float) -> Decimal:
    """coherence_score as DECIMAL(3,2) holds it (rounded half-even, as both stores write it)."""
    return Decimal(str(rules.coherence_score(value)))


@dataclass(slots=True)
class _Sides:
    source: Side
    postgres: Side
    findings: list[tuple[str, Key, Difference]]  # aggregate and invariant differences, by key


def _source_side(snapshot: Snapshot) -> tuple[Side, list[tuple[str, Key, Difference]]]:
    """What the in-memory stores hold (or would hold after loading the snapshot): derived values
    recomputed from the records, and every stated aggregate that disagrees, every edge listed twice
    and every contributes-to edge to an unknown contributor reported."""
    side: Side = {name: {} for name in ENTITIES}
    findings: list[tuple[str, Key, Difference]] = []
    edges = side["edges"]
    edge_keys = Counter(
        (e.from_ecosystem.lower(), e.from_name.lower(), e.to_ecosystem.lower(), e.to_name.lower())
        for e in snapshot.edges
    )
    for edge in edge_keys:
        edges[edge] = ()
    findings.extend(_duplicates("edges", edge_keys.items()))
    out_degree = Counter(key[:2] for key in cast(Iterable[tuple[str, str, str, str]], edges))
    stated_counts: dict[tuple[str, str], int] = {}  # the last record of a key wins, as upsert_project
    projects = side["projects"]
    for p in snapshot.projects:
        key = (p.ecosystem.lower(), p.name.lower())
        count = out_degree.get(key, 0)
        projects[key] = (p.ecosystem, p.name, p.version, p.description, p.homepage_url, p.repository_url, count)
        stated_counts[key] = p.dependency_count
    for key, stated in stated_counts.items():
        computed = out_degree.get(key, 0)
        if stated != computed:
            findings.append(
                ("projects", key, _aggregate("projects", key, "dependency_count", "source", stated, computed))
            )
    contributors = side["contributors"]
    for c in snapshot.contributors:
        contributors[c.id] = (
            c.type.value,
            c.name,
            c.email,
            c.wallet_address,
            c.hourly_rate,
            rules.optional_aware(c.created_at),
            c.github_username,
            c.metadata,
        )
    sums: dict[UUID, Decimal] = {}
    contributions = side["contributions"]
    for k in snapshot.contributions:
        contributions[k.id] = (
            k.contributor_id,
            k.asset_id,
            k.cost_amount,
            _score(k.coherence_score),
            k.metadata,
            rules.optional_aware(k.timestamp),
        )
        sums[k.asset_id] = sums.get(k.asset_id, Decimal("0.00")) + k.cost_amount
    assets = side["assets"]
    for a in snapshot.assets:
        total = sums.get(a.id, Decimal("0.00"))
        assets[a.id] = (a.type.value, a.name, a.description, total, rules.optional_aware(a.created_at), a.metadata)
        if a.total_cost != total:
            findings.append(("assets", a.id, _aggregate("assets", a.id, "total_cost", "source", a.total_cost, total)))
    github = side["github_contributors"]
    for g in snapshot.github_contributors:
        github[g.id] = (
            g.source,
            g.login,
            g.name,
            g.avatar_url,
            g.contributions_count,
            rules.optional_aware(g.created_at),
            rules.optional_aware(g.updated_at),
        )
    organizations = side["github_organizations"]
    for o in snapshot.github_organizations:
        organizations[o.id] = (
            o.login,
            o.type,
            o.name,
            o.avatar_url,
            rules.optional_aware(o.created_at),
            rules.optional_aware(o.updated_at),
        )
    works = side["github_contributes_to"]
    work_keys = Counter((w.contributor_id, w.ecosystem.lower(), w.name.lower()) for w in snapshot.github_contributes_to)
    for work in work_keys:
        works[work] = ()
    findings.extend(_duplicates("github_contributes_to", work_keys.items()))
    findings.extend(_unknown_contributors(work_keys, github.keys(), "source"))
    tasks = side["agent_tasks"]
    for t in snapshot.agent_tasks or []:
        tasks[t.id] = (
            t.direction,
            t.task_type,
            t.status,
            t.model,
            t.command,
            t.tier,
            t.context,
            t.output,
            t.progress_pct,
            t.current_step,
            t.decision_prompt,
            t.decision,
            rules.optional_aware(t.started_at),
            rules.optional_aware(t.created_at),
            rules.optional_aware(t.updated_at),
            t.claimed_by,
            rules.optional_aware(t.claimed_at),
        )
    return side, findings


def _postgres_side(pg: PostgresContents) -> tuple[Side, list[tuple[str, Key, Difference]]]:
    side: Side = {
        "projects": {
            (r.ecosystem_key, r.name_key): (
                r.display_ecosystem,
                r.display_name,
                r.version,
                r.description,
                r.homepage_url,
                r.repository_url,
                r.dependency_count,
            )
            for r in pg.projects
        },
        "edges": {
            **{(r.from_ecosystem, r.from_name, r.to_ecosystem, r.to_name): () for r in pg.resolved_edges},
            **{(r.from_ecosystem, r.from_name, r.to_ecosystem, r.to_name): () for r in pg.pending_edges},
        },
        "contributors": {
            r.id: (
                r.type,
                r.name,
                r.email,
                r.wallet_address,
                r.hourly_rate,
                r.created_at,
                r.github_username,
                r.metadata,
            )
            for r in pg.contributors
        },
        "assets": {r.id: (r.type, r.name, r.description, r.total_cost, r.created_at, r.metadata) for r in pg.assets},
        "contributions": {
            r.id: (r.contributor_id, r.asset_id, r.cost_amount, r.coherence_score, r.metadata, r.timestamp)
            for r in pg.contributions
        },
        "github_contributors": {
            r.id: (r.source, r.login, r.name, r.avatar_url, r.contributions_count, r.created_at, r.updated_at)
            for r in pg.github_contributors
        },
        "github_organizations": {
            r.id: (r.login, r.type, r.name, r.avatar_url, r.created_at, r.updated_at) for r in pg.github_organizations
        },
        "github_contributes_to": {(r.contributor_id, r.ecosystem, r.name): () for r in pg.github_contributes_to},
        "agent_tasks": {
            r.id: (
                r.direction,
                r.task_type,
                r.status,
                r.model,
                r.command,
                r.tier,
                r.context,
                r.output,
                r.progress_pct,
                r.current_step,
                r.decision_prompt,
                r.decision,
                r.started_at,
                r.created_at,
                r.updated_at,
                r.claimed_by,
                r.claimed_at,
            )
            for r in pg.agent_tasks
        },
    }
    findings = _unknown_contributors(side["github_contributes_to"], side["github_contributors"].keys(), "postgres")
    for v in pg.total_cost_violations:
        findings.append(
            ("assets", v.id, _aggregate("assets", v.id, "total_cost", "postgres", v.total_cost, v.contributions_sum))
        )
    for d in pg.dependency_count_violations:
        key = (d.ecosystem, d.name)
        findings.append(
            (
                "projects",
                key,
                _aggregate("projects", key, "dependency_count", "postgres", d.dependency_count, d.out_degree),
            )
        )
    for q in pg.resolvable_pending_edges:
        edge = (q.from_ecosystem, q.from_name, q.to_ecosystem, q.to_name)
        findings.append(
            (
                "edges",
                edge,
                Difference(
                    "edges",
                    render_key("edges", edge),
                    INVARIANT,
                    field="pending",
                    side="postgres",
                    stated="pending",
                    computed="both projects exist: should be in project_dependencies",
                ),
            )
        )
    return side, findings


def _duplicates(entity: str, counted: Iterable[tuple[Key, int]]) -> list[tuple[str, Key, Difference]]:
    """A key-only record (an edge) listed more than once: the stores and the backfill keep it once,
    so a reader of the source that keeps every row (the API's own loader) would disagree."""
    return [
        (
            entity,
            key,
            Difference(
                entity,
                render_key(entity, key),
                DUPLICATE,
                side="source",
                stated=times,
                computed=1,
                reason=f"listed {times} times (keys compared case-insensitively); kept once",
            ),
        )
        for key, times in counted
        if times > 1
    ]


def _unknown_contributors(works: Iterable[Key], known: Collection[Key], side: str) -> list[tuple[str, Key, Difference]]:
    """Contributes-to edges whose GitHub contributor the same side does not have: the project's
    contributor list silently leaves them out."""
    entity = "github_contributes_to"
    out: list[tuple[str, Key, Difference]] = []
    for key in works:
        contributor = cast(tuple[str, str, str], key)[0]
        if contributor not in known:
            out.append(
                (
                    entity,
                    key,
                    Difference(
                        entity,
                        render_key(entity, key),
                        UNKNOWN_REFERENCE,
                        field="contributor_id",
                        side=side,
                        stated=contributor,
                        reason=f"contributor {contributor!r} is not a known GitHub contributor",
                    ),
                )
            )
    return out


def _aggregate(entity: str, key: Key, name: str, side: str, stated: Any, computed: Any) -> Difference:
    return Difference(
        entity,
        render_key(entity, key),
        AGGREGATE,
        field=name,
        side=side,
        stated=jsonable(stated),
        computed=jsonable(computed),
    )


# -- comparing -----------------------------------------------------------------------------------


def _in_sample(entity: str, key: Key, percent: float) -> bool:
    """A stable choice by key (CRC-32 of entity and key, in steps of 0.01%): the same keys every run."""
    if percent >= 100:
        return True
    digest = zlib.crc32(f"{entity}:{render_key(entity, key)}".encode())
    return digest % 10_000 < percent * 100


def _record(entity: str, values: Values) -> Any:
    names = FIELDS[entity]
    return {name: jsonable(value) for name, value in zip(names, values, strict=True)} if names else {}


def compare(
    source: Snapshot,
    postgres: PostgresContents,
    *,
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    source_name: str = "source",
    target_name: str = "postgresql",
) -> VerifyReport:
    """The comparison itself, on data already read (`verify` reads both sides and calls this)."""
    report = VerifyReport(source_name, target_name, sample_percent, threshold_percent)
    src, src_findings = _source_side(source)
    pg, pg_findings = _postgres_side(postgres)
    findings: dict[str, dict[Key, list[Difference]]] = {}
    for entity, key, difference in src_findings + pg_findings:
        findings.setdefault(entity, {}).setdefault(key, []).append(difference)
    for entity in ENTITIES:
        if entity == "agent_tasks" and source.agent_tasks is None:
            report.not_compared.append(entity)  # an API graph file has no task section
            continue
        counts = EntityCounts()
        report.entities[entity] = counts
        left, right = src[entity], pg[entity]
        names = FIELDS[entity]
        mismatched: set[Key] = set()
        for key in left.keys() | right.keys():
            if not _in_sample(entity, key, sample_percent):
                continue
            counts.compared += 1
            mine, theirs = left.get(key), right.get(key)
            if theirs is None:
                assert mine is not None
                counts.missing_in_postgres += 1
                mismatched.add(key)
                report.differences.append(
                    Difference(entity, render_key(entity, key), MISSING_IN_POSTGRES, source=_record(entity, mine))
                )
            elif mine is None:
                counts.missing_in_source += 1
                mismatched.add(key)
                report.differences.append(
                    Difference(entity, render_key(entity, key), MISSING_IN_SOURCE, postgres=_record(entity, theirs))
                )
            elif mine != theirs:
                fields = [
                    Difference(entity, render_key(entity, key), FIELD, name, jsonable(a), jsonable(b))
                    for name, a, b in zip(names, mine, theirs, strict=True)
                    if a != b
                ]
                if fields:
                    counts.differing += 1
                    mismatched.add(key)
                    report.differences.extend(fields)
        for key, found in findings.get(entity, {}).items():
            if _in_sample(entity, key, sample_percent):
                kinds = {d.kind for d in found}
                counts.aggregates += 1 if kinds & {AGGREGATE, INVARIANT} else 0
                counts.problems += 1 if kinds & set(PROBLEMS) else 0
                mismatched.add(key)
                report.differences.extend(found)
        counts.mismatched = len(mismatched)
    return report


def _describe_source(source: object) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, Snapshot):
        return "snapshot"
    return "memory stores"


async def verify(
    source: Snapshot | MemoryStores | MemoryGraphStore | str | Path,
    target: Pool | str | None = None,
    *,
    tasks: MemoryAgentTaskStore | None = None,
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    page_size: int = PAGE_SIZE,
    journal: Path | None = None,
) -> VerifyReport:
    """Compare `source` with PostgreSQL (`target`: a pool, a DSN, or None for $DATABASE_URL / the
    embedded server).

    `source` is the live in-memory stores (`MemoryStores`, or a `MemoryGraphStore` with `tasks=`),
    a `Snapshot`, or a snapshot file. Agent tasks are compared when the source has them. With
    `sample_percent` < 100 only the keys a stable hash picks are compared (the aggregate checks
    still run over every row in the database, their findings filtered by the same sample).
    With `journal` (the dual-write journal's path) its pending writes and dead letters are
    reported, and either fails the report whatever the threshold.
    """
    if not 0 < sample_percent <= 100:
        raise ConfigurationError(f"sample_percent must be in (0, 100], got {sample_percent}")
    if threshold_percent < 0:
        raise ConfigurationError(f"threshold_percent must not be negative, got {threshold_percent}")
    started = time.perf_counter()
    if isinstance(source, str | Path):
        snapshot = load_snapshot(source)
    elif isinstance(source, Snapshot):
        snapshot = source
    elif isinstance(source, MemoryStores):
        snapshot = Snapshot.of(source.graph, source.tasks)
    else:
        snapshot = Snapshot.of(source, tasks)
    resolved: Pool | str = target if isinstance(target, asyncpg.Pool) else resolve_dsn(target)
    target_name = "a pool" if isinstance(resolved, asyncpg.Pool) else redact(resolved)
    contents = await read_postgres(resolved, page_size=page_size)
    report = compare(
        snapshot,
        contents,
        sample_percent=sample_percent,
        threshold_percent=threshold_percent,
        source_name=_describe_source(source),
        target_name=target_name,
    )
    if journal is not None:
        # Read after PostgreSQL: a write its read missed is still pending here, or the comparison shows it.
        report.journal = read_journal(journal)
    report.seconds = time.perf_counter() - started
    return report


async def verify_memory(
    target: Pool | str | None,
    graph: MemoryGraphStore,
    tasks: MemoryAgentTaskStore | None = None,
    *,
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
) -> VerifyReport:
    """`verify` for the live in-memory stores (tasks compared when given)."""
    return await verify(graph, target, tasks=tasks, sample_percent=sample_percent, threshold_percent=threshold_percent)


def counts_by_kind(differences: Iterable[Difference]) -> Mapping[str, int]:
    """How many differences of each kind (for summaries and tests)."""
    return Counter(d.kind for d in differences)
