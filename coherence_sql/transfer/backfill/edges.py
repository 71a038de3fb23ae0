"""The edges' staging: the plan keeps an edge as (ord, source number, target number), each number a
project key checked once; a batch is staged by project id (merge_edges_by_id: no key joins) when
PostgreSQL has both projects, else by key (merge_edges: record_dependency parks what is missing)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.sql._runtime import Executor

__all__ = ["EdgeKeys"]

Key = tuple[str, str]


class EdgeKeys:
    """The project keys the edges name, numbered in order of first appearance, and (once the
    projects section has committed) each number's projects.id, read from PostgreSQL once per run."""

    def __init__(self) -> None:
        self.keys: list[Key] = []  # number → key
        self.numbers: dict[Key, int] = {}  # key → number
        self._ids: list[int | None] | None = None  # number → projects.id; None: PostgreSQL lacks it
        self._reading = asyncio.Lock()

    def number(self, key: Key) -> int:
        number = self.numbers.get(key)
        if number is None:
            number = self.numbers[key] = len(self.keys)
            self.keys.append(key)
        return number

    async def read_ids(self, conn: Executor) -> None:
        """Each key's projects.id, once (the first unit to need them reads them; the others wait)."""
        async with self._reading:
            if self._ids is not None:
                return
            ids: list[int | None] = [None] * len(self.keys)
            if self.keys:
                ecosystems, names = zip(*self.keys, strict=True)
                for row in await backfill_sql.project_ids(conn, ecosystems=ecosystems, names=names):
                    ids[row.number] = row.id
            self._ids = ids

    def by_id(self, rows: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]] | None:
        """The rows as (ord, from id, to id); None when PostgreSQL lacks one of their projects (a
        project gone since the projects section: the batch goes by key, as before)."""
        ids = self._ids
        assert ids is not None, "read_ids first"
        staged = [(ord_, ids[source], ids[target]) for ord_, source, target in rows]
        if any(from_id is None or to_id is None for _, from_id, to_id in staged):
            return None
        return staged  # type: ignore[return-value]  # no None left

    def by_key(self, rows: Sequence[tuple[int, int, int]]) -> list[tuple[int, str, str, str, str]]:
        """The rows as (ord, from ecosystem, from name, to ecosystem, to name) for merge_edges."""
        keys = self.keys
        return [(ord_, *keys[source], *keys[target]) for ord_, source, target in rows]
