"""The backfill's plan: every record checked and converted into staging rows, and what loads in
which unit and order (sections, partitions, batches), before anything is written."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from functools import partial
from operator import itemgetter
from typing import Any, Final, TypeAlias
from uuid import UUID

from coherence_sql.errors import InvalidValueError
from coherence_sql.models import ContributorType
from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.sql._runtime import Executor
from coherence_sql.stores import rules
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.backfill.checks import (
    RECORD_ERRORS,
    ZERO,
    BadRecordError,
    as_json,
    error_text,
    json_text,
    money,
    stored_score,
    uuid_or_none,
)
from coherence_sql.transfer.backfill.edges import EdgeKeys
from coherence_sql.transfer.backfill.report import Normalisation
from coherence_sql.transfer.snapshot import (
    AGENT_TASK_FIELDS,
    CollectedSnapshot,
    Problem,
    Snapshot,
    edge_of,
    malformed_reason,
    record_key,
)

__all__ = ["DEFAULT_BATCH_SIZE", "KEYS_PER_TRANSACTION", "PARTITIONS", "SECTIONS", "Plan", "Row", "Section", "Unit"]

# The order sections load in: parents before the rows that refer to them.
SECTIONS: Final = (
    "contributors",
    "assets",
    "contributions",
    "projects",
    "edges",
    "github_contributors",
    "github_organizations",
    "github_contributes_to",
    "agent_tasks",
)
DEFAULT_BATCH_SIZE: Final = 10_000
# Keys locked per transaction (projects, pending edges): the advisory lock table is shared by all
# sessions, so a batch stays within what PostgresGraphStore's bulk writes take (docs/decisions.md).
KEYS_PER_TRANSACTION: Final = 500
# Contributions load as partitions by asset and edges by source project, so two partitions never
# update the same asset or project row; fixed, so that checkpoints mean the same whatever --jobs a
# resumed run uses.
PARTITIONS: Final = 4
Row: TypeAlias = tuple[Any, ...]


@dataclass(slots=True)
class Section:
    """A section ready to load: its rows in snapshot order, `ord` (1-based position) first."""

    name: str
    table: str
    columns: tuple[str, ...]
    merge: Callable[[Executor], Awaitable[None]]
    rows: list[Row] = field(default_factory=list)
    per_batch: int = DEFAULT_BATCH_SIZE
    after: tuple[str, ...] = ()  # sections that must have committed first (foreign keys, keys)
    analyze: Callable[[Executor], Awaitable[None]] | None = None  # statistics for the sections after it
    vacuum: str = ""  # the table group VACUUMed or ANALYZEd once all its sections are loaded
    partition_of: Callable[[Row], int] | None = None  # loads as PARTITIONS units when set
    # Instead of partition_of: the PARTITIONS shares of the rows that lock no key, each grouped by a
    # key (groups in order of first appearance, each in file order) rather than in the file's order:
    # the edges by source project, so a batch raises few projects' counts (docs/decisions.md).
    clustered: list[list[Row]] | None = None
    locking: set[int] = field(default_factory=set)  # ords of rows that lock two project keys (edges)
    # The edges' rows are (ord, source number, target number): these are the numbers' keys and ids.
    edge_keys: EdgeKeys | None = None

    def units(self) -> list[Unit]:
        """The section as units, each in snapshot order: the whole section, or PARTITIONS
        independent partitions of the rows that lock no key, then (when there are any) one unit of
        the rows that lock keys, loaded once the partitions have committed.

        Apart, the partitions' batches stay large (each source project's dependency_count is
        raised once per batch: one batch per partition raises it once), while the rows that lock
        two keys each go at most KEYS_PER_TRANSACTION / 2 to a batch.
        """
        if self.clustered is not None:
            # A key of its own: a checkpoint of the file-order units must not resume these.
            units = [
                Unit(self, f"{self.name}/clustered/{i}", share, self.per_batch, resume_by_count=True)
                for i, share in enumerate(self.clustered)
            ]
        else:
            free = [row for row in self.rows if row[0] not in self.locking] if self.locking else self.rows
            if self.partition_of is None:
                units = [Unit(self, self.name, free, self.per_batch)]
            else:
                shares: list[list[Row]] = [[] for _ in range(PARTITIONS)]
                for row in free:
                    shares[self.partition_of(row)].append(row)
                units = [Unit(self, f"{self.name}/{i}", share, self.per_batch) for i, share in enumerate(shares)]
        if self.locking:
            locking = [row for row in self.rows if row[0] in self.locking]
            per_batch = max(1, min(self.per_batch, KEYS_PER_TRANSACTION // 2))
            units.append(Unit(self, f"{self.name}/locking", locking, per_batch, last=True))
        return units


def _raw_edges(collected: CollectedSnapshot | None) -> Iterable[Any] | None:
    """A file's edges as decoded, when they were left so (None: `snapshot.edges`, parsed)."""
    if collected is None or not collected.edges_raw:
        return None
    return collected.sections["edges"] if collected.edges_source is None else collected.edges_source


def _merged_text(index: int, first: int, edge: Any) -> str:
    return f"edges[{index}] repeats edges[{first}] ({record_key('edges', edge)})"


def _parked_text(index: int, edge: Any, missing: str) -> str:
    return f"edges[{index}] ({record_key('edges', edge)}): {missing} is not in the snapshot"


@dataclass(slots=True)
class Unit:
    """What one connection loads at a time: a section, or one partition of it, checkpointed as `key`."""

    section: Section
    key: str
    rows: list[Row]
    per_batch: int  # rows per batch
    last: bool = False  # loads once the section's other units have committed
    start: int = 0  # rows before it were merged by an earlier run
    # Rows not in file order: an earlier run's progress is its count of staged rows (batches are
    # contiguous from the start and the order is the same in every run), not the highest ord.
    resume_by_count: bool = False

    def batches(self) -> Iterable[tuple[int, int]]:
        """(first, end) row-index ranges covering rows[start:], in order."""
        for first in range(self.start, len(self.rows), self.per_batch):
            yield first, min(first + self.per_batch, len(self.rows))


class Plan:
    """The whole snapshot checked and converted into staging rows, before anything is written.

    Every record a store would refuse becomes a `Problem` and is left out, and so is every record
    that depends on one (a contribution whose contributor or asset was refused); a row's `ord` is
    its position in the file (1-based), so checkpoints and seq values mean the same in every run.
    """

    def __init__(self, snapshot: Snapshot, batch_size: int, collected: CollectedSnapshot | None = None) -> None:
        self.sections: list[Section] = []
        self.batch_size = batch_size
        self.problems: list[Problem] = list(collected.problems) if collected is not None else []
        self.normalised: dict[str, Normalisation] = {}
        self._positions = collected.positions if collected is not None else {}
        # Referenced, in neither the snapshot nor its refused records → the ords naming them.
        self.external_contributors: dict[UUID, list[int]] = {}
        self.external_assets: dict[UUID, list[int]] = {}
        self.contribution_slots = (
            len(collected.sections["contributions"]) if collected is not None else len(snapshot.contributions)
        )
        self._models: dict[tuple[str, int], Any] = {}  # (section, position) → a refused record's model
        self._refused_edges: dict[int, Any] = {}  # position → a refused edge as the file has it (raw edges)
        self._contributors(snapshot, collected)
        self._assets(snapshot, collected)
        self._contributions(snapshot)
        project_keys = self._projects(snapshot)
        self._edges(snapshot, project_keys, _raw_edges(collected))
        self._github(snapshot)
        self._tasks(snapshot)
        self.raw = self._raw_records(collected, snapshot)

    # -- collecting problems ---------------------------------------------------------------------

    def _checked(self, section: str, records: Sequence[Any], convert: Callable[[int, Any], Row | None]) -> list[Row]:
        """Convert every record (`convert(position, record)`); a bad one becomes a Problem."""
        rows: list[Row] = []
        positions = self._positions.get(section)  # None: no record of the section failed to parse
        for position, record in enumerate(records) if positions is None else zip(positions, records, strict=True):
            try:
                row = convert(position, record)
            except RECORD_ERRORS as exc:
                self.refuse(section, position, record, exc)
                continue
            if row is not None:
                rows.append(row)
        return rows

    def refuse(self, section: str, position: int, record: Any, reason: BaseException | str, kind: str = "") -> None:
        """Leave the record out, with why."""
        if isinstance(reason, BaseException):
            kind = kind or getattr(reason, "kind", "invalid")
            text = str(reason) if isinstance(reason, BadRecordError | InvalidValueError) else error_text(reason)
        else:
            text = reason
        self.problems.append(Problem(section, position, record_key(section, record), kind or "invalid", text))
        self._models[section, position] = record

    def _upserted(self, section: str, records: Sequence[Any], convert: Callable[[Any], tuple[Any, Row]]) -> list[Row]:
        """Upsert semantics, as the stores apply repeated upserts: the latest valid record of a key
        wins, at the key's first position. `convert` checks a record and returns its key and row."""
        latest: dict[Any, tuple[int, Row]] = {}
        repeated = self.note(f"{section}: a key repeated (the last record wins, as repeated upserts)")

        def keep(position: int, record: Any) -> None:
            key, row = convert(record)
            if key in latest:
                first = latest[key][0]
                repeated.add(f"{section}[{position}] replaces {section}[{first}] ({record_key(section, record)})")
            latest[key] = (latest[key][0] if key in latest else position, row)

        self._checked(section, records, keep)
        return [(first + 1, *row) for first, row in sorted(latest.values(), key=lambda item: item[0])]

    def malformed(self, index: int, record: Any, exc: ValueError) -> None:
        """A file's edge of the wrong shape: the problem parsing would have listed."""
        self.problems.append(
            Problem("edges", index, record_key("edges", record), "malformed", malformed_reason(record, exc))
        )
        self._refused_edges[index] = record

    def note(self, what: str) -> Normalisation:
        """The normalisation called `what` (reported when it happened at least once)."""
        return self.normalised.setdefault(what, Normalisation(what))

    def drop_rows(self, section_name: str, ords: set[int]) -> None:
        """Take rows (by ord) out of a section already converted."""
        section = next(s for s in self.sections if s.name == section_name)
        section.rows = [row for row in section.rows if row[0] not in ords]

    def _raw_records(self, collected: CollectedSnapshot | None, snapshot: Snapshot) -> dict[tuple[str, int], Any]:
        """What the quarantine file holds for each refused record, and for each contribution that
        may still be refused (its parent is neither in the snapshot nor refused: PostgreSQL decides):
        the file's own record when there is a file, else the model's JSON."""
        wanted = {(p.section, p.index) for p in self.problems}
        for refs in (*self.external_contributors.values(), *self.external_assets.values()):
            wanted.update(("contributions", ord_ - 1) for ord_ in refs)
        if collected is not None:
            return {
                (name, index): self._refused_edges[index]
                if name == "edges" and collected.edges_raw
                else collected.sections[name][index]
                for name, index in wanted
            }
        records = {key: self._models[key] for key in wanted if key in self._models}
        records.update({key: snapshot.contributions[key[1]] for key in wanted if key not in records})
        return {key: as_json(record) for key, record in records.items()}

    def _refused_ids(
        self, section: str, collected: CollectedSnapshot | None, loaded: dict[UUID, int]
    ) -> dict[int, str]:
        """UUID.int → where, of every refused record of `section` whose id no loaded record has."""
        refused: dict[int, str] = {}
        for problem in self.problems:
            if problem.section != section:
                continue
            if (section, problem.index) in self._models:
                ident = getattr(self._models[section, problem.index], "id", None)
            elif collected is not None:
                raw = collected.sections[section][problem.index]
                ident = uuid_or_none(raw.get("id") if isinstance(raw, dict) else None)
            else:
                ident = None
            if isinstance(ident, UUID) and ident not in loaded:
                refused.setdefault(ident.int, f"{section}[{problem.index}]")
        return refused

    def _add(
        self,
        name: str,
        table: str,
        columns: tuple[str, ...],
        merge: Callable[[Executor], Awaitable[None]],
        *,
        after: tuple[str, ...] = (),
        analyze: Callable[[Executor], Awaitable[None]] | None = None,
        vacuum: str,
        partition_of: Callable[[Row], int] | None = None,
    ) -> Section:
        section = Section(
            name,
            table,
            ("ord", *columns),
            merge,
            per_batch=self.batch_size,
            after=after,
            analyze=analyze,
            vacuum=vacuum,
            partition_of=partition_of,
        )
        self.sections.append(section)
        return section

    def _contributors(self, snapshot: Snapshot, collected: CollectedSnapshot | None) -> None:
        section = self._add(
            "contributors",
            "backfill_stage_contributors",
            (
                "id",
                "type",
                "name",
                "email",
                "email_key",
                "wallet_address",
                "hourly_rate",
                "created_at",
                "github_username",
                "metadata",
            ),
            backfill_sql.merge_contributors,
            analyze=backfill_sql.analyze_contributors,
            vacuum="contributions",
        )
        ids: dict[UUID, int] = {}
        emails: dict[str, int] = {}

        def convert(index: int, c: Any) -> Row:
            rules.contributor_text(c)
            rate = None if c.hourly_rate is None else money("hourly_rate", c.hourly_rate)
            if c.id in ids:
                raise BadRecordError(f"duplicate id: contributors[{ids[c.id]}] has it too", "duplicate id")
            email_key = rules.email_key(c.email)
            if email_key in emails:
                raise BadRecordError(
                    f"duplicate email {c.email!r}: contributors[{emails[email_key]}] has it too", "duplicate email"
                )
            ids[c.id] = emails[email_key] = index
            return (
                index + 1,
                c.id,
                ContributorType(c.type).value,
                c.name,
                c.email,
                email_key,
                c.wallet_address,
                rate,
                rules.aware_utc(c.created_at),
                c.github_username,
                json_text("metadata", c.metadata),
            )

        section.rows = self._checked("contributors", snapshot.contributors, convert)
        self._contributor_ids = ids
        self._refused_contributors = self._refused_ids("contributors", collected, ids)

    def _assets(self, snapshot: Snapshot, collected: CollectedSnapshot | None) -> None:
        section = self._add(
            "assets",
            "backfill_stage_assets",
            ("id", "asset_type", "name", "description", "created_at", "metadata"),
            backfill_sql.merge_assets,
            analyze=backfill_sql.analyze_assets,
            vacuum="contributions",
        )
        ids: dict[UUID, int] = {}
        loaded: list[tuple[int, Any]] = []  # (position, asset): their stated totals are compared later

        def convert(index: int, a: Any) -> Row:
            rules.text("description", a.description)
            name = a.name if a.name is not None else a.description[: rules.NAME_MAX]
            rules.text("name", name, rules.NAME_MAX)
            if a.id in ids:
                raise BadRecordError(f"duplicate id: assets[{ids[a.id]}] has it too", "duplicate id")
            ids[a.id] = index
            loaded.append((index, a))
            # The snapshot's total_cost is not loaded: the contributions make it (docs/decisions.md).
            return (
                index + 1,
                a.id,
                a.type.value,
                name,
                a.description,
                rules.aware_utc(a.created_at),
                json_text("metadata", a.metadata),
            )

        section.rows = self._checked("assets", snapshot.assets, convert)
        self._asset_ids = ids
        self._refused_assets = self._refused_ids("assets", collected, ids)
        self._loaded_assets = loaded

    def _contributions(self, snapshot: Snapshot) -> None:
        section = self._add(
            "contributions",
            "backfill_stage_contributions",
            ("id", "contributor_id", "asset_id", "cost_amount", "coherence_score", "metadata", "timestamp"),
            backfill_sql.merge_contributions,
            after=("contributors", "assets"),
            vacuum="contributions",
            partition_of=lambda row: int(row[3].int % PARTITIONS),  # by asset_id
        )
        # Keyed by UUID.int: the hot loop of the largest section (uuid.UUID hashes in Python).
        ids: dict[int, int] = {}
        sums: dict[int, Decimal] = {}
        contributors = {key.int for key in self._contributor_ids}
        assets = {key.int for key in self._asset_ids}
        refused_contributors, refused_assets = self._refused_contributors, self._refused_assets

        def convert(index: int, c: Any) -> Row:
            # The order create_contribution checks in: values, references, then the id.
            cost = money("cost_amount", c.cost_amount)
            score = stored_score(c.coherence_score)
            metadata = json_text("metadata", c.metadata)
            contributor_id, asset_id, key = c.contributor_id, c.asset_id, c.id.int
            external_contributor = contributor_id.int not in contributors
            external_asset = asset_id.int not in assets
            if external_contributor and contributor_id.int in refused_contributors:
                where = refused_contributors[contributor_id.int]
                raise BadRecordError(f"its contributor {contributor_id} was refused ({where})", "parent refused")
            if external_asset and asset_id.int in refused_assets:
                where = refused_assets[asset_id.int]
                raise BadRecordError(f"its asset {asset_id} was refused ({where})", "parent refused")
            if key in ids:
                raise BadRecordError(f"duplicate id: contributions[{ids[key]}] has it too", "duplicate id")
            timestamp = c.timestamp
            stored_at = timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)
            ids[key] = index
            if external_contributor:
                self.external_contributors.setdefault(contributor_id, []).append(index + 1)
            if external_asset:
                self.external_assets.setdefault(asset_id, []).append(index + 1)
            sums[asset_id.int] = sums.get(asset_id.int, ZERO) + cost
            return (
                index + 1,
                c.id,
                contributor_id,
                asset_id,
                str(cost),  # staged as text: asyncpg's binary NUMERIC encoder is slower than str()
                str(score),
                metadata,
                stored_at,
            )

        section.rows = self._checked("contributions", snapshot.contributions, convert)
        too_large = {key for key, total in sums.items() if total > rules.MONEY_MAX}
        if too_large:  # DECIMAL(15,2) overflow of the asset's total_cost: none of its contributions load
            positions = self._positions.get("contributions")
            by_ord = {(i if positions is None else positions[i]) + 1: c for i, c in enumerate(snapshot.contributions)}
            for row in section.rows:
                if row[3].int in too_large:
                    self.refuse(
                        "contributions",
                        row[0] - 1,
                        by_ord[row[0]],
                        f"the asset {row[3]}'s contributions sum to {sums[row[3].int]}, over {rules.MONEY_MAX}",
                        "total too large",
                    )
            section.rows = [row for row in section.rows if row[3].int not in too_large]
            for key in too_large:
                del sums[key]
        recomputed = self.note("assets: total_cost recomputed from the contributions")
        for position, asset in self._loaded_assets:
            total = sums.get(asset.id.int, ZERO)
            if asset.total_cost != total:
                recomputed.add(f"assets[{position}] (id {asset.id}): {asset.total_cost} stated, {total} summed")

    def _projects(self, snapshot: Snapshot) -> set[tuple[str, str]]:
        section = self._add(
            "projects",
            "backfill_stage_projects",
            (
                "ecosystem",
                "name",
                "display_ecosystem",
                "display_name",
                "version",
                "description",
                "homepage_url",
                "repository_url",
            ),
            backfill_sql.merge_projects,
            analyze=backfill_sql.analyze_projects,
            vacuum="projects",
        )

        def convert(p: Any) -> tuple[tuple[str, str], Row]:
            key = rules.project_key(p.ecosystem, p.name)
            rules.text("version", p.version)
            rules.text("description", p.description)
            rules.text("homepage_url", p.homepage_url, rules.URL_MAX)
            rules.text("repository_url", p.repository_url, rules.URL_MAX)
            return key, (*key, p.ecosystem, p.name, p.version, p.description, p.homepage_url, p.repository_url)

        section.rows = self._upserted("projects", snapshot.projects, convert)
        section.per_batch = min(self.batch_size, KEYS_PER_TRANSACTION)  # one advisory lock per key
        self._stated_counts = {(p.ecosystem, p.name): p.dependency_count for p in snapshot.projects}
        return {(row[1], row[2]) for row in section.rows}

    def _edges(self, snapshot: Snapshot, project_keys: set[tuple[str, str]], raw: Iterable[Any] | None) -> None:
        """The edges checked in one loop: `snapshot.edges`, or `raw`, the file's edges as decoded
        (their shape checked here, as parsing would: no DependencyEdge per edge, ~1 µs each)."""
        section = self._add(
            "edges",
            "backfill_stage_edges",
            ("from_ecosystem", "from_name", "to_ecosystem", "to_name"),
            backfill_sql.merge_edges,
            after=("projects",),
            vacuum="projects",
        )
        # A million edges name ~100,000 projects: each spelling is checked once and cached with its
        # key's number and whether the snapshot has it, so an edge is two dict lookups and its
        # identity one int (source and target numbers), not a 4-tuple hashed into a dict of a
        # million tuples (the check pass's largest item: ~16 s of ~31 at load 5; docs/decisions.md).
        # A row is (ord, source number, target number): staged by project id (EdgeKeys) or by key.
        edge_keys = section.edge_keys = EdgeKeys()
        # spelling → (key, number, in snapshot, the rows of the key's edges that lock no key)
        known: dict[tuple[str, str], tuple[tuple[str, str], int, bool, list[Row]]] = {}
        seen: dict[int, Row] = {}  # edge (source number << 32 | target number) → its first row
        # The partitions' rows grouped by source project as the loop goes (a grouping pass over a
        # million rows afterwards was ~10% of the client's time): groups[number], sources in order
        # of their first free edge.
        groups: list[list[Row]] = []
        sources: list[int] = []

        def checked(spelling: tuple[str, str]) -> tuple[tuple[str, str], int, bool, list[Row]]:
            key = rules.project_key(*spelling)  # raises for a spelling no store takes (never cached)
            number = edge_keys.number(key)
            if number == len(groups):
                groups.append([])
            entry = known[spelling] = (key, number, key in project_keys, groups[number])
            return entry

        merged = self.note("edges: duplicates merged (an edge counts once)")
        parked = self.note("edges: parked as pending until their project arrives (unless PostgreSQL has it)")
        rows: list[Row] = []
        locking = section.locking
        records: Iterable[Any] = snapshot.edges if raw is None else raw
        positions = None if raw is not None else self._positions.get("edges")  # None: no edge failed to parse
        for index, e in enumerate(records) if positions is None else zip(positions, records, strict=True):
            if raw is None:
                from_ecosystem, from_name, to_ecosystem, to_name = e
            elif (  # the decoded [[ecosystem, name], [ecosystem, name]] of nearly every edge, inline
                type(e) is list
                and len(e) == 2
                and type(e[0]) is list
                and type(e[1]) is list
                and len(e[0]) == 2
                and len(e[1]) == 2
            ):
                (from_ecosystem, from_name), (to_ecosystem, to_name) = e
                if not (
                    type(from_ecosystem) is str
                    and type(from_name) is str
                    and type(to_ecosystem) is str
                    and type(to_name) is str
                ):
                    try:
                        from_ecosystem, from_name, to_ecosystem, to_name = edge_of(e)
                    except ValueError as exc:
                        self.malformed(index, e, exc)
                        continue
            else:
                try:
                    from_ecosystem, from_name, to_ecosystem, to_name = edge_of(e)
                except ValueError as exc:
                    self.malformed(index, e, exc)
                    continue
            try:
                source, source_number, source_known, group = known.get((from_ecosystem, from_name)) or checked(
                    (from_ecosystem, from_name)
                )
                target, target_number, target_known, _ = known.get((to_ecosystem, to_name)) or checked(
                    (to_ecosystem, to_name)
                )
                if source_number == target_number:
                    raise BadRecordError(
                        f"a project cannot depend on itself: {from_ecosystem}/{from_name}", "self-edge"
                    )
            except RECORD_ERRORS as exc:
                if raw is None:
                    self.refuse("edges", index, e, exc)
                else:
                    self.refuse("edges", index, DependencyEdge(from_ecosystem, from_name, to_ecosystem, to_name), exc)
                    self._refused_edges[index] = e
                continue
            edge = source_number << 32 | target_number
            first = seen.get(edge)
            if first is not None:
                edge_record = e if raw is None else DependencyEdge(from_ecosystem, from_name, to_ecosystem, to_name)
                merged.add(partial(_merged_text, index, first[0] - 1, edge_record))
                continue
            row = (index + 1, source_number, target_number)
            seen[edge] = row  # the row, not its position: no int object more per edge
            rows.append(row)
            if not (source_known and target_known):
                missing = "/".join(source if not source_known else target)
                edge_record = e if raw is None else DependencyEdge(from_ecosystem, from_name, to_ecosystem, to_name)
                parked.add(partial(_parked_text, index, edge_record, missing))
                # It will stay pending: record_dependency() locks its two keys until commit.
                locking.add(index + 1)
                continue
            if not group:
                sources.append(source_number)
            group.append(row)
        section.rows = rows
        # Partitioned by the source's key, as when rows held keys: the partitions' checkpoints keep their meaning.
        keys = edge_keys.keys
        shares: list[list[Row]] = [[] for _ in range(PARTITIONS)]
        for number in sources:
            ecosystem, name = keys[number]
            shares[zlib.crc32(f"{ecosystem}/{name}".encode()) % PARTITIONS].extend(groups[number])
        section.clustered = shares
        self._recount(section.rows, edge_keys)

    def _recount(self, edges: list[Row], edge_keys: EdgeKeys) -> None:
        """Report the projects whose stated dependency_count is not their out-degree in the snapshot."""
        degree = Counter(map(itemgetter(1), edges))  # by source number
        numbers = edge_keys.numbers
        stated = self._stated_counts

        def counted(row: Row) -> int:
            number = numbers.get((row[1], row[2]))
            return 0 if number is None else degree.get(number, 0)

        recomputed = self.note("projects: dependency_count recomputed from the edges")
        projects = next(s for s in self.sections if s.name == "projects").rows
        for row in [r for r in projects if stated.get((r[3], r[4]), 0) != counted(r)]:
            was = stated.get((row[3], row[4]), 0)
            recomputed.add(f"projects[{row[0] - 1}] ({row[3]}/{row[4]}): {was} stated, {counted(row)} counted")

    def _github(self, snapshot: Snapshot) -> None:
        contributors = self._add(
            "github_contributors",
            "backfill_stage_github_contributors",
            ("id", "source", "login", "name", "avatar_url", "contributions_count", "created_at", "updated_at"),
            backfill_sql.merge_github_contributors,
            vacuum="github",
        )

        def convert_gc(g: Any) -> tuple[str, Row]:
            rules.github_contributor_fields(g)
            return g.id, (
                g.id,
                g.source,
                g.login,
                g.name,
                g.avatar_url,
                g.contributions_count,
                rules.aware_utc(g.created_at),
                rules.optional_aware(g.updated_at),
            )

        contributors.rows = self._upserted("github_contributors", snapshot.github_contributors, convert_gc)

        organizations = self._add(
            "github_organizations",
            "backfill_stage_github_organizations",
            ("id", "login", "type", "name", "avatar_url", "created_at", "updated_at"),
            backfill_sql.merge_github_organizations,
            vacuum="github",
        )

        def convert_org(o: Any) -> tuple[str, Row]:
            rules.github_organization_fields(o)
            return o.id, (
                o.id,
                o.login,
                o.type,
                o.name,
                o.avatar_url,
                rules.aware_utc(o.created_at),
                rules.optional_aware(o.updated_at),
            )

        organizations.rows = self._upserted("github_organizations", snapshot.github_organizations, convert_org)

        works = self._add(
            "github_contributes_to",
            "backfill_stage_contributes_to",
            ("contributor_id", "ecosystem", "name"),
            backfill_sql.merge_contributes_to,
            vacuum="github",
        )
        seen: dict[tuple[str, str, str], int] = {}
        merged = self.note("github_contributes_to: duplicates merged")

        def convert_works(index: int, w: Any) -> Row | None:
            rules.text("contributor_id", w.contributor_id, rules.NAME_MAX)
            key = (w.contributor_id, *rules.project_key(w.ecosystem, w.name))
            if key in seen:
                merged.add(f"github_contributes_to[{index}] repeats github_contributes_to[{seen[key]}]")
                return None
            seen[key] = index
            return (index + 1, *key)

        works.rows = self._checked("github_contributes_to", snapshot.github_contributes_to, convert_works)

    def _tasks(self, snapshot: Snapshot) -> None:
        if snapshot.agent_tasks is None:
            return  # an API graph file: no task section, nothing to load
        section = self._add(
            "agent_tasks",
            "backfill_stage_agent_tasks",
            AGENT_TASK_FIELDS,  # convert() below builds each row in this order
            backfill_sql.merge_agent_tasks,
            vacuum="agent_tasks",
        )
        ids: dict[str, int] = {}

        def convert(index: int, t: Any) -> Row:
            rules.task_fields(t)
            context = None if t.context is None else json_text("context", t.context)
            if t.id in ids:
                raise BadRecordError(f"duplicate id: agent_tasks[{ids[t.id]}] has it too", "duplicate id")
            ids[t.id] = index
            return (
                index + 1,
                t.id,
                t.direction,
                t.task_type.value,
                t.status.value,
                t.model,
                t.command,
                t.tier,
                context,
                t.output,
                t.progress_pct,
                t.current_step,
                t.decision_prompt,
                t.decision,
                rules.optional_aware(t.started_at),
                rules.aware_utc(t.created_at),
                rules.optional_aware(t.updated_at),
                t.claimed_by,
                rules.optional_aware(t.claimed_at),
            )

        section.rows = self._checked("agent_tasks", snapshot.agent_tasks, convert)
