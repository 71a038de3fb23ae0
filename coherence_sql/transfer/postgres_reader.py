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
    "PAGE_SIZE",
    "PostgresContents",
    "PostgresRecords",
    "read_postgres",
    "read_postgres_on",
    "read_transaction",
]

PAGE_SIZE: Final = 20_000
TABLES: Final = 11  # the scans below and the invariant check: the steps a progress callback counts

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
    by_id: Callable[[Any], int] = lambda row: int(row.id)  # noqa: E731
    by_seq: Callable[[Any], int] = lambda row: int(row.seq)  # noqa: E731
    read = 0

    async def step(name: str, rows: Awaitable[list[_R]]) -> list[_R]:
        nonlocal read
        if progress is not None:
            progress(f"read {name}", read, TABLES)
        result = await rows
        read += 1
        if progress is not None:
            progress(f"read {name}", read, TABLES)
        return result

    return PostgresContents(
        projects=await step("projects", _pages(projects_sql.scan_projects, conn, by_id, page_size)),
        resolved_edges=await step("edges", _pages(verify_sql.scan_resolved_edges, conn, by_id, page_size)),
        pending_edges=await step("pending edges", _pages(verify_sql.scan_pending_edges, conn, by_id, page_size)),
        contributors=await step("contributors", _pages(contributors_sql.scan_contributors, conn, by_seq, page_size)),
        assets=await step("assets", _pages(assets_sql.scan_assets, conn, by_seq, page_size)),
        contributions=await step(
            "contributions", _pages(contributions_sql.scan_contributions, conn, by_seq, page_size)
        ),
        github_contributors=await step(
            "github contributors", _pages(github_sql.scan_github_contributors, conn, by_seq, page_size)
        ),
        github_organizations=await step(
            "github organizations", _pages(github_sql.scan_github_organizations, conn, by_seq, page_size)
        ),
        github_contributes_to=await step(
            "github contributes-to", _pages(verify_sql.scan_contributes_to, conn, by_seq, page_size)
        ),
        agent_tasks=await step("agent tasks", _pages(verify_sql.scan_agent_tasks, conn, by_seq, page_size)),
        resolvable_pending_edges=await step("pending edges' invariant", verify_sql.resolvable_pending_edges(conn)),
    )


async def read_postgres(
    target: Pool | str | None, *, page_size: int = PAGE_SIZE, progress: Progress | None = None
) -> PostgresContents:
    """Every table the stores use, read in keyset pages in one read-only REPEATABLE READ transaction."""
    async with read_transaction(target) as conn:
        return await read_postgres_on(conn, page_size=page_size, progress=progress)
