"""Reading every row the stores hold in PostgreSQL, in keyset pages, in one REPEATABLE READ
transaction (one moment): what verify compares and the phase-3 export writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import asyncpg

from coherence_sql.db import Connection, Pool, connect, resolve_dsn
from coherence_sql.errors import DRIVER_FAILURES, CoherenceSQLError, translate
from coherence_sql.sql import assets as assets_sql
from coherence_sql.sql import contributions as contributions_sql
from coherence_sql.sql import contributors as contributors_sql
from coherence_sql.sql import github as github_sql
from coherence_sql.sql import projects as projects_sql
from coherence_sql.sql import verify as verify_sql
from coherence_sql.transfer.progress import Progress

__all__ = [
    "INVARIANT_STEP",
    "PAGE_SIZE",
    "SCANS",
    "SECTION_SCANS",
    "PostgresContents",
    "PostgresPages",
    "PostgresRecords",
    "read_postgres",
    "read_postgres_on",
    "read_transaction",
    "scan_pages",
]

PAGE_SIZE: Final = 20_000
TABLES: Final = 11  # the scans below and the invariant check: the steps a progress callback counts
INVARIANT_STEP: Final = "pending edges' invariant"


def _by_id(row: Any) -> int:
    return int(row.id)


def _by_seq(row: Any) -> int:
    return int(row.seq)


# Every keyset scan by its progress label: the accessor and the row's keyset position.
SCANS: Final[dict[str, tuple[Callable[..., Awaitable[list[Any]]], Callable[[Any], int]]]] = {
    "projects": (projects_sql.scan_projects, _by_id),
    "edges": (verify_sql.scan_resolved_edges, _by_id),
    "pending edges": (verify_sql.scan_pending_edges, _by_id),
    "contributors": (contributors_sql.scan_contributors, _by_seq),
    "assets": (assets_sql.scan_assets, _by_seq),
    "contributions": (contributions_sql.scan_contributions, _by_seq),
    "github contributors": (github_sql.scan_github_contributors, _by_seq),
    "github organizations": (github_sql.scan_github_organizations, _by_seq),
    "github contributes-to": (verify_sql.scan_contributes_to, _by_seq),
    "agent tasks": (verify_sql.scan_agent_tasks, _by_seq),
}

_R = TypeVar("_R")


@dataclass(slots=True)
class PostgresContents:
    """Every row of the stores' tables, in insertion order, read in one snapshot; with the pending
    edges the database could already resolve (an invariant no snapshot can show)."""

    projects: list[projects_sql.ScanProjectsRow]
    resolved_edges: list[verify_sql.ScanResolvedEdgesRow]
    pending_edges: list[verify_sql.ScanPendingEdgesRow]
    contributors: list[contributors_sql.ScanContributorsRow]
    assets: list[assets_sql.ScanAssetsRow]
    contributions: list[contributions_sql.ScanContributionsRow]
    github_contributors: list[github_sql.ScanGithubContributorsRow]
    github_organizations: list[github_sql.ScanGithubOrganizationsRow]
    github_contributes_to: list[verify_sql.ScanContributesToRow]
    agent_tasks: list[verify_sql.ScanAgentTasksRow]
    resolvable_pending_edges: list[verify_sql.ResolvablePendingEdgesRow]


@dataclass(frozen=True, slots=True)
class PostgresRecords:
    """The rows as a snapshot's sections (each scan names its columns as the models' fields): what
    verify projects, with no model built (the export builds them, with the store's mappers)."""

    projects: Sequence[Any]
    edges: Sequence[Any]  # resolved and pending: both are edges the API lists
    contributors: Sequence[Any]
    assets: Sequence[Any]
    contributions: Sequence[Any]
    github_contributors: Sequence[Any]
    github_organizations: Sequence[Any]
    github_contributes_to: Sequence[Any]
    agent_tasks: Sequence[Any]

    @classmethod
    def of(cls, pg: PostgresContents) -> PostgresRecords:
        return cls(
            projects=pg.projects,
            edges=[*pg.resolved_edges, *pg.pending_edges],
            contributors=pg.contributors,
            assets=pg.assets,
            contributions=pg.contributions,
            github_contributors=pg.github_contributors,
            github_organizations=pg.github_organizations,
            github_contributes_to=pg.github_contributes_to,
            agent_tasks=pg.agent_tasks,
        )


async def _pages(
    fetch: Callable[..., Awaitable[list[_R]]], conn: Connection, position: Callable[[_R], int], page_size: int
) -> list[_R]:
    """All rows of a keyset scan."""
    rows: list[_R] = []
    async for page in scan_pages(fetch, conn, position, page_size):
        rows.extend(page)
    return rows


async def scan_pages(
    fetch: Callable[..., Awaitable[list[_R]]], conn: Connection, position: Callable[[_R], int], page_size: int
) -> AsyncIterator[list[_R]]:
    """A keyset scan's pages of `page_size` rows, each after the last row's position: the caller
    holds one page at a time."""
    after = 0
    while True:
        page = await fetch(conn, after=after, lim=page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
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
        except CoherenceSQLError:
            raise
        except DRIVER_FAILURES as exc:
            raise translate(exc, "verify") from None
        return
    conn = await connect(resolve_dsn(target))
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn
    except CoherenceSQLError:
        raise
    except DRIVER_FAILURES as exc:
        raise translate(exc, "verify") from None
    finally:
        await conn.close()


async def read_postgres_on(
    conn: Connection, *, page_size: int = PAGE_SIZE, progress: Progress | None = None
) -> PostgresContents:
    """`read_postgres` on a connection already in the transaction the caller wants."""
    read = 0

    async def step(name: str) -> list[Any]:
        nonlocal read
        if progress is not None:
            progress(f"read {name}", read, TABLES)
        fetch, position = SCANS[name]
        result = await _pages(fetch, conn, position, page_size)
        read += 1
        if progress is not None:
            progress(f"read {name}", read, TABLES)
        return result

    contents = PostgresContents(
        projects=await step("projects"),
        resolved_edges=await step("edges"),
        pending_edges=await step("pending edges"),
        contributors=await step("contributors"),
        assets=await step("assets"),
        contributions=await step("contributions"),
        github_contributors=await step("github contributors"),
        github_organizations=await step("github organizations"),
        github_contributes_to=await step("github contributes-to"),
        agent_tasks=await step("agent tasks"),
        resolvable_pending_edges=[],
    )
    if progress is not None:
        progress(f"read {INVARIANT_STEP}", read, TABLES)
    contents.resolvable_pending_edges = await verify_sql.resolvable_pending_edges(conn)
    if progress is not None:
        progress(f"read {INVARIANT_STEP}", read + 1, TABLES)
    return contents


async def read_postgres(
    target: Pool | str | None, *, page_size: int = PAGE_SIZE, progress: Progress | None = None
) -> PostgresContents:
    """Every table the stores use, read in keyset pages in one read-only REPEATABLE READ transaction."""
    async with read_transaction(target) as conn:
        return await read_postgres_on(conn, page_size=page_size, progress=progress)


# The stores' tables as a snapshot's sections: the scans (progress labels) each section reads.
SECTION_SCANS: Final[dict[str, tuple[str, ...]]] = {
    "projects": ("projects",),
    "edges": ("edges", "pending edges"),  # resolved and pending: both are edges the API lists
    "contributors": ("contributors",),
    "assets": ("assets",),
    "contributions": ("contributions",),
    "github_contributors": ("github contributors",),
    "github_organizations": ("github organizations",),
    "github_contributes_to": ("github contributes-to",),
    "agent_tasks": ("agent tasks",),
}


class PostgresPages:
    """The stores' tables, section by section, as keyset pages of rows on `conn` (in the caller's
    transaction): for a reader that keeps one page at a time (verify). Progress counts the scans
    as `read_postgres` does, in the order they are asked for."""

    def __init__(self, conn: Connection, *, page_size: int = PAGE_SIZE, progress: Progress | None = None) -> None:
        self._conn = conn
        self._page_size = page_size
        self._progress = progress
        self._read = 0

    async def section(self, name: str) -> AsyncIterator[Sequence[Any]]:
        for scan in SECTION_SCANS[name]:
            self._step(scan, 0)
            fetch, position = SCANS[scan]
            async for page in scan_pages(fetch, self._conn, position, self._page_size):
                yield page
            self._step(scan, 1)

    async def resolvable_pending_edges(self) -> Sequence[Any]:
        """Pending edges whose two projects exist (an invariant no snapshot can show)."""
        self._step(INVARIANT_STEP, 0)
        rows = await verify_sql.resolvable_pending_edges(self._conn)
        self._step(INVARIANT_STEP, 1)
        return rows

    def _step(self, name: str, done: int) -> None:
        self._read += done
        if self._progress is not None:
            self._progress(f"read {name}", self._read, TABLES)
