"""Backfill: load a JSON snapshot of the in-memory stores into PostgreSQL at bulk speed, resumably.

Every record is checked first, as the stores would check it, and every problem is collected in one
pass: without a quarantine file a dirty snapshot raises `DirtySnapshotError` listing them all before
anything is written; with one, the valid records load and the refused ones (and the records that
depend on them) go to a snapshot-shaped file with their reasons, to be fixed and backfilled later.
Then each section goes batch by batch: COPY into a temporary staging table, one set-based merge
with ON CONFLICT DO NOTHING (queries/backfill.sql) and the batch's checkpoint, in one transaction.
A re-run, or a run after a kill, ends in the same state.

    report = await backfill("postgresql://…", "snapshot.json", quarantine="refused.json")
    print(report.inserted, report.seconds, report.problems)
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import math
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC
from decimal import ROUND_HALF_EVEN, Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, TextIO, TypeAlias, cast
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from coherence_sql.db import DEFAULT_SERVER_SETTINGS, Connection, Pool, connect, resolve_dsn
from coherence_sql.errors import (
    CoherenceSQLError,
    ConcurrencyError,
    DatabaseError,
    DuplicateError,
    InvalidValueError,
    SnapshotError,
    UnknownReferenceError,
    translate,
)
from coherence_sql.models import ContributorType
from coherence_sql.schema import require_current
from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.sql._runtime import Executor
from coherence_sql.stores import rules
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.snapshot import (
    GRAPH_SECTIONS,
    PROBLEMS_KEY,
    TASK_SECTION,
    CollectedSnapshot,
    ContributesTo,
    Problem,
    Snapshot,
    collect_snapshot,
    collector_paused,
    decode_snapshot,
    parse_snapshot,
    read_snapshot_bytes,
    record_key,
    write_json,
)

__all__ = [
    "SECTIONS",
    "BackfillReport",
    "DirtySnapshotError",
    "Normalisation",
    "ProgressBar",
    "SectionReport",
    "backfill",
    "format_problems",
    "snapshot_digest",
]

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
BATCH_ATTEMPTS: Final = 3  # a deadlock or serialization failure with a live writer is retried
DEFAULT_JOBS: Final = 2  # connections loading at once (independent sections, partitions)
# Contributions load as partitions by asset and edges by source project, so two partitions never
# update the same asset or project row; fixed, so that checkpoints mean the same whatever --jobs a
# resumed run uses.
PARTITIONS: Final = 4
STATEMENT_TIMEOUT: Final = "15min"  # VACUUM of a large table outlives the pool's 60 s

_ZERO: Final = Decimal("0.00")
_JSON_NUL: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # a \u0000 escape, as rules.json_object sees it
_JSON: Final = json.JSONEncoder(allow_nan=False, ensure_ascii=False)  # one encoder: json.dumps makes one per call

Progress: TypeAlias = Callable[[str, int, int], None]
"""Called as `progress(section, records_done, records_total)` after each batch."""

Row: TypeAlias = tuple[Any, ...]


# -- the report ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SectionReport:
    """One section of one run."""

    section: str
    records: int  # distinct records in the snapshot
    resumed: int = 0  # records an earlier run of this snapshot had already merged
    staged: int = 0  # records this run copied and merged
    inserted: int = 0  # rows this run added to PostgreSQL
    seconds: float = 0.0

    @property
    def already_present(self) -> int:
        """Merged records PostgreSQL already had (left as they were: DO NOTHING)."""
        return self.staged - self.inserted

    @property
    def rows_per_second(self) -> float:
        return self.staged / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "records": self.records,
            "resumed": self.resumed,
            "staged": self.staged,
            "inserted": self.inserted,
            "already_present": self.already_present,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
        }


@dataclass(slots=True)
class Normalisation:
    """Something the load changed about valid records, as the stores would: how often, examples."""

    what: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str | Callable[[], str]) -> None:
        """Count one; keep it as an example while there are fewer than EXAMPLES (a callable is only
        called then: some normalisations happen thousands of times per snapshot)."""
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example if isinstance(example, str) else example())

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what, "count": self.count, "examples": list(self.examples)}


EXAMPLES: Final = 3  # examples kept per normalisation


@dataclass(slots=True)
class BackfillReport:
    """What a run did, section by section; `seconds` is the whole run (checks, merges, VACUUM)."""

    snapshot_sha256: str
    sections: list[SectionReport] = field(default_factory=list)
    check_seconds: float = 0.0
    vacuum_seconds: float | None = None
    seconds: float = 0.0
    # True: the foreign keys were checked once per batch (parents locked and counted) and their
    # per-row triggers skipped; False: the triggers checked every row.
    references_per_batch: bool = False
    problems: list[Problem] = field(default_factory=list)  # records refused (none loaded when raised)
    normalised: list[Normalisation] = field(default_factory=list)
    quarantine: str | None = None  # the file the refused records were written to

    @property
    def records(self) -> int:
        return sum(s.records for s in self.sections)

    @property
    def staged(self) -> int:
        return sum(s.staged for s in self.sections)

    @property
    def inserted(self) -> int:
        return sum(s.inserted for s in self.sections)

    @property
    def resumed(self) -> int:
        return sum(s.resumed for s in self.sections)

    def summary(self) -> str:
        return (
            f"{self.records:,} records: {self.inserted:,} inserted, {self.staged - self.inserted:,} already present, "
            f"{self.resumed:,} done by an earlier run, in {self.seconds:.2f} s"
        )

    def section(self, name: str) -> SectionReport:
        for s in self.sections:
            if s.section == name:
                return s
        raise KeyError(name)

    def as_json(self) -> dict[str, Any]:
        return {
            "snapshot_sha256": self.snapshot_sha256,
            "records": self.records,
            "resumed": self.resumed,
            "staged": self.staged,
            "inserted": self.inserted,
            "check_seconds": round(self.check_seconds, 3),
            "vacuum_seconds": None if self.vacuum_seconds is None else round(self.vacuum_seconds, 3),
            "seconds": round(self.seconds, 3),
            "references_per_batch": self.references_per_batch,
            "sections": [s.as_json() for s in self.sections],
            "refused": len(self.problems),
            "quarantine": self.quarantine,
            "problems": [p.as_json() for p in self.problems],
            "normalised": [n.as_json() for n in self.normalised],
        }

    def format_table(self) -> str:
        lines = [
            f"snapshot sha256 {self.snapshot_sha256}",
            f"{'section':<22}{'records':>10}{'resumed':>10}{'inserted':>10}{'present':>10}{'seconds':>9}{'rows/s':>10}",
        ]
        for s in self.sections:
            lines.append(
                f"{s.section:<22}{s.records:>10,}{s.resumed:>10,}{s.inserted:>10,}{s.already_present:>10,}"
                f"{s.seconds:>9.2f}{s.rows_per_second:>10,.0f}"
            )
        lines.append(f"{'checks':<72}{self.check_seconds:>9.2f}")
        lines.append(
            "foreign keys: "
            + ("checked per batch, per-row triggers skipped" if self.references_per_batch else "checked per row")
        )
        if self.vacuum_seconds is not None:
            lines.append(f"{'vacuum/analyze (alongside loading)':<72}{self.vacuum_seconds:>9.2f}")
        rate = self.staged / self.seconds if self.seconds > 0 else 0.0
        lines.append(
            f"{'total':<22}{self.records:>10,}{self.resumed:>10,}{self.inserted:>10,}"
            f"{self.staged - self.inserted:>10,}{self.seconds:>9.2f}{rate:>10,.0f}"
        )
        if self.problems or self.normalised:
            lines.append(format_problems(self.problems, self.normalised))
        if self.quarantine is not None:
            lines.append(
                f"quarantine: {len(self.problems):,} refused record(s) written to {self.quarantine}"
                + (": fix them there, then backfill that file" if self.problems else "")
            )
        return "\n".join(lines)


def format_problems(problems: Sequence[Problem], normalised: Sequence[Normalisation]) -> str:
    """Every refused record by kind (where, key, reason), then what was normalised, with examples."""
    lines: list[str] = []
    if problems:
        lines.append(f"refused {len(problems):,} record(s):")
        by_kind: dict[str, list[Problem]] = {}
        for problem in problems:
            by_kind.setdefault(problem.kind, []).append(problem)
        for kind, listed in by_kind.items():
            lines.append(f"  {kind} ({len(listed):,}):")
            lines.extend(f"    {p.where()}: {p.reason}" for p in listed)
    if normalised:
        lines.append("normalised (loaded as the stores would have them):")
        for n in normalised:
            lines.append(f"  {n.what}: {n.count:,}" + (", e.g. " + "; ".join(n.examples) if n.examples else ""))
    return "\n".join(lines)


class DirtySnapshotError(SnapshotError):
    """The snapshot holds records the stores would refuse, and no quarantine file was given: nothing
    was written. `report.problems` lists every one, `report.normalised` what would have been changed."""

    def __init__(self, report: BackfillReport) -> None:
        self.report = report
        kinds = Counter(p.kind for p in report.problems)
        super().__init__(
            f"{len(report.problems):,} record(s) refused ({', '.join(f'{n:,} {k}' for k, n in kinds.items())}), "
            "nothing was written; --quarantine FILE loads the valid records and writes these to FILE:\n"
            + "\n".join(f"  {p.kind}: {p.where()}: {p.reason}" for p in report.problems)
        )


# -- progress on a terminal ----------------------------------------------------------------------


class ProgressBar:
    """`backfill [#####.....]  52%  100,600/193,500 rows  contributions, edges` on one terminal line.

    Called per section (`progress(section, done, total)`), it shows the whole run and the sections
    in progress. Enabled only when `stream` is a TTY and `quiet` is off, so logs and pipes stay clean.
    """

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, width: int = 30) -> None:
        self._stream = sys.stderr if stream is None else stream
        self.enabled = not quiet and self._stream.isatty()
        self._width = width
        self._last = 0.0
        self._sections: dict[str, tuple[int, int]] = {}
        self._finished = False

    def __call__(self, section: str, done: int, total: int) -> None:
        self._sections[section] = (done, total)
        if not self.enabled or self._finished:
            return
        done_all = sum(d for d, _ in self._sections.values())
        total_all = sum(t for _, t in self._sections.values())
        now = time.monotonic()
        finished = done_all >= total_all
        if not finished and now - self._last < 0.1:
            return
        self._last = now
        share = 1.0 if total_all == 0 else done_all / total_all
        filled = int(share * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        active = ", ".join(name for name, (d, t) in self._sections.items() if 0 < d < t)
        self._stream.write(f"\r\033[Kbackfill [{bar}] {share:>4.0%}  {done_all:,}/{total_all:,} rows  {active}")
        if finished:
            self._stream.write("\n")
            self._finished = True
        self._stream.flush()


# -- checking and converting the snapshot --------------------------------------------------------


class _BadRecordError(Exception):
    """A record breaks a rule; `_Plan._checked` adds where the record is. `kind` groups the report."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


# What a record's conversion may raise on a hostile value (rules raise InvalidValueError, a
# ValueError; a time overflowing UTC an OverflowError; a Decimal operation an ArithmeticError):
# each is that record's problem, never the run's.
_RECORD_ERRORS: Final = (_BadRecordError, ValueError, ArithmeticError, TypeError, RecursionError)


def _json_text(field_name: str, value: object) -> str:
    """rules.json_object's checks, returning the JSON text jsonb receives."""
    if not isinstance(value, dict):
        raise _BadRecordError(f"{field_name} must be a JSON object, got {type(value).__name__}")
    if not value:
        return "{}"
    try:
        text = _JSON.encode(value)
        text.encode("utf-8")  # a lone surrogate cannot be sent to PostgreSQL
    except (TypeError, ValueError) as exc:
        raise _BadRecordError(f"{field_name} is not encodable as JSON: {exc}") from None
    except RecursionError:
        raise _BadRecordError(f"{field_name} is nested too deep to encode as JSON") from None
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise _BadRecordError(f"{field_name} contains a NUL character")
    return text


def _money(field_name: str, value: object) -> Decimal:
    """rules.money (a fast path for the usual Decimal that already has two places)."""
    if type(value) is Decimal and value.is_finite() and 0 < value <= rules.MONEY_MAX:  # zero: -0.00 to rules
        quantized = value.quantize(rules.TWO_PLACES)
        if quantized == value:
            return quantized
    return rules.money(field_name, value)  # the rule itself, and its message


_SCORES: Final[dict[float, Decimal]] = {}  # float → stored Decimal: scores repeat (two places, mostly)
_SCORES_MAX: Final = 4096


def _score(value: object) -> Decimal:
    """rules.coherence_score as the Decimal the column stores (a fast path for the usual float)."""
    if type(value) is float:
        stored = _SCORES.get(value)  # only floats in (0, 1] are ever kept; -0.0 and NaN never match
        if stored is not None:
            return stored
        if math.isfinite(value):
            exact = Decimal(repr(value))
            if 0 < exact <= 1:  # zero (and -0.0) through the rule
                stored = exact.quantize(rules.TWO_PLACES, rounding=ROUND_HALF_EVEN)
                if len(_SCORES) < _SCORES_MAX:
                    _SCORES[value] = stored
                return stored
    return Decimal(str(rules.coherence_score(value)))  # the rule itself, and its message


@dataclass(slots=True)
class _Section:
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
    locking: set[int] = field(default_factory=set)  # ords of rows that lock two project keys (edges)

    def units(self) -> list[_Unit]:
        """The section as units, each in snapshot order: the whole section, or PARTITIONS
        independent partitions of the rows that lock no key, then (when there are any) one unit of
        the rows that lock keys, loaded once the partitions have committed.

        Apart, the partitions' batches stay large (each source project's dependency_count is
        raised once per batch: one batch per partition raises it once), while the rows that lock
        two keys each go at most KEYS_PER_TRANSACTION / 2 to a batch.
        """
        free = [row for row in self.rows if row[0] not in self.locking] if self.locking else self.rows
        if self.partition_of is None:
            units = [_Unit(self, self.name, free, self.per_batch)]
        else:
            shares: list[list[Row]] = [[] for _ in range(PARTITIONS)]
            for row in free:
                shares[self.partition_of(row)].append(row)
            units = [_Unit(self, f"{self.name}/{i}", share, self.per_batch) for i, share in enumerate(shares)]
        if self.locking:
            locking = [row for row in self.rows if row[0] in self.locking]
            per_batch = max(1, min(self.per_batch, KEYS_PER_TRANSACTION // 2))
            units.append(_Unit(self, f"{self.name}/locking", locking, per_batch, last=True))
        return units


@dataclass(slots=True)
class _Unit:
    """What one connection loads at a time: a section, or one partition of it, checkpointed as `key`."""

    section: _Section
    key: str
    rows: list[Row]
    per_batch: int  # rows per batch
    last: bool = False  # loads once the section's other units have committed
    start: int = 0  # rows before it were merged by an earlier run

    def batches(self) -> Iterable[tuple[int, int]]:
        """(first, end) row-index ranges covering rows[start:], in order."""
        for first in range(self.start, len(self.rows), self.per_batch):
            yield first, min(first + self.per_batch, len(self.rows))


class _Plan:
    """The whole snapshot checked and converted into staging rows, before anything is written.

    Every record a store would refuse becomes a `Problem` and is left out, and so is every record
    that depends on one (a contribution whose contributor or asset was refused); a row's `ord` is
    its position in the file (1-based), so checkpoints and seq values mean the same in every run.
    """

    def __init__(self, snapshot: Snapshot, batch_size: int, collected: CollectedSnapshot | None = None) -> None:
        self.sections: list[_Section] = []
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
        self._contributors(snapshot, collected)
        self._assets(snapshot, collected)
        self._contributions(snapshot)
        project_keys = self._projects(snapshot)
        self._edges(snapshot, project_keys)
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
            except _RECORD_ERRORS as exc:
                self.refuse(section, position, record, exc)
                continue
            if row is not None:
                rows.append(row)
        return rows

    def refuse(self, section: str, position: int, record: Any, reason: BaseException | str, kind: str = "") -> None:
        """Leave the record out, with why."""
        if isinstance(reason, BaseException):
            kind = kind or getattr(reason, "kind", "invalid")
            text = str(reason) if isinstance(reason, _BadRecordError | InvalidValueError) else _error_text(reason)
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
            return {(name, index): collected.sections[name][index] for name, index in wanted}
        records = {key: self._models[key] for key in wanted if key in self._models}
        records.update({key: snapshot.contributions[key[1]] for key in wanted if key not in records})
        return {key: _as_json(record) for key, record in records.items()}

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
                ident = _uuid_or_none(raw.get("id") if isinstance(raw, dict) else None)
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
    ) -> _Section:
        section = _Section(
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
            rate = None if c.hourly_rate is None else _money("hourly_rate", c.hourly_rate)
            if c.id in ids:
                raise _BadRecordError(f"duplicate id: contributors[{ids[c.id]}] has it too", "duplicate id")
            email_key = rules.email_key(c.email)
            if email_key in emails:
                raise _BadRecordError(
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
                _json_text("metadata", c.metadata),
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
                raise _BadRecordError(f"duplicate id: assets[{ids[a.id]}] has it too", "duplicate id")
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
                _json_text("metadata", a.metadata),
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
            cost = _money("cost_amount", c.cost_amount)
            score = _score(c.coherence_score)
            metadata = _json_text("metadata", c.metadata)
            contributor_id, asset_id, key = c.contributor_id, c.asset_id, c.id.int
            external_contributor = contributor_id.int not in contributors
            external_asset = asset_id.int not in assets
            if external_contributor and contributor_id.int in refused_contributors:
                where = refused_contributors[contributor_id.int]
                raise _BadRecordError(f"its contributor {contributor_id} was refused ({where})", "parent refused")
            if external_asset and asset_id.int in refused_assets:
                where = refused_assets[asset_id.int]
                raise _BadRecordError(f"its asset {asset_id} was refused ({where})", "parent refused")
            if key in ids:
                raise _BadRecordError(f"duplicate id: contributions[{ids[key]}] has it too", "duplicate id")
            timestamp = c.timestamp
            stored_at = timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)
            ids[key] = index
            if external_contributor:
                self.external_contributors.setdefault(contributor_id, []).append(index + 1)
            if external_asset:
                self.external_assets.setdefault(asset_id, []).append(index + 1)
            sums[asset_id.int] = sums.get(asset_id.int, _ZERO) + cost
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
            total = sums.get(asset.id.int, _ZERO)
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

    def _edges(self, snapshot: Snapshot, project_keys: set[tuple[str, str]]) -> None:
        section = self._add(
            "edges",
            "backfill_stage_edges",
            ("from_ecosystem", "from_name", "to_ecosystem", "to_name"),
            backfill_sql.merge_edges,
            after=("projects",),
            vacuum="projects",
            partition_of=lambda row: zlib.crc32(f"{row[1]}/{row[2]}".encode()) % PARTITIONS,  # by source
        )
        seen: dict[tuple[str, str, str, str], int] = {}  # edge → its first position
        keys: dict[tuple[str, str], tuple[str, str]] = {}  # spelling → checked key: each project has many edges

        def key_of(ecosystem: str, name: str) -> tuple[str, str]:
            key = keys.get((ecosystem, name))
            if key is None:
                key = keys[ecosystem, name] = rules.project_key(ecosystem, name)
            return key

        def convert(index: int, e: Any) -> Row | None:
            source = key_of(e.from_ecosystem, e.from_name)
            target = key_of(e.to_ecosystem, e.to_name)
            if source == target:
                raise _BadRecordError(
                    f"a project cannot depend on itself: {e.from_ecosystem}/{e.from_name}", "self-edge"
                )
            edge = (*source, *target)
            if edge in seen:
                merged.add(f"edges[{index}] repeats edges[{seen[edge]}] ({record_key('edges', e)})")
                return None
            seen[edge] = index
            if source not in project_keys or target not in project_keys:
                missing = "/".join(source if source not in project_keys else target)
                parked.add(lambda: f"edges[{index}] ({record_key('edges', e)}): {missing} is not in the snapshot")
                # It will stay pending: record_dependency() locks its two keys until commit.
                section.locking.add(index + 1)
            return (index + 1, *edge)

        merged = self.note("edges: duplicates merged (an edge counts once)")
        parked = self.note("edges: parked as pending until their project arrives (unless PostgreSQL has it)")
        section.rows = self._checked("edges", snapshot.edges, convert)
        self._recount(section.rows)

    def _recount(self, edges: list[Row]) -> None:
        """Report the projects whose stated dependency_count is not their out-degree in the snapshot."""
        degree = Counter(map(itemgetter(1, 2), edges))  # by source key; tuples made in C (~10 ms per 50,000)
        stated = self._stated_counts
        recomputed = self.note("projects: dependency_count recomputed from the edges")
        projects = next(s for s in self.sections if s.name == "projects").rows
        for row in [r for r in projects if stated.get((r[3], r[4]), 0) != degree.get((r[1], r[2]), 0)]:
            was, counted = stated.get((row[3], row[4]), 0), degree.get((row[1], row[2]), 0)
            recomputed.add(f"projects[{row[0] - 1}] ({row[3]}/{row[4]}): {was} stated, {counted} counted")

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
            (
                "id",
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
            backfill_sql.merge_agent_tasks,
            vacuum="agent_tasks",
        )
        ids: dict[str, int] = {}

        def convert(index: int, t: Any) -> Row:
            rules.task_fields(t)
            context = None if t.context is None else _json_text("context", t.context)
            if t.id in ids:
                raise _BadRecordError(f"duplicate id: agent_tasks[{ids[t.id]}] has it too", "duplicate id")
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


# -- the snapshot and its digest -----------------------------------------------------------------


def snapshot_digest(snapshot: Snapshot) -> str:
    """SHA-256 of the file `write_snapshot` would write for `snapshot` (so both key one checkpoint)."""
    try:
        text = json.dumps(snapshot.to_json(), indent=0)
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. metadata nested past the serializer's depth
        raise SnapshotError(
            f"the snapshot cannot be written as JSON to compute its digest ({type(exc).__name__}: {exc}): "
            "pass snapshot_sha256"
        ) from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_snapshot_file(path: str | Path) -> tuple[Snapshot, str]:
    """Parse and validate a snapshot file; return it with the SHA-256 of its bytes. The first
    record that does not validate raises `SnapshotError`."""
    source = Path(path)
    data = read_snapshot_bytes(source)
    return parse_snapshot(decode_snapshot(data, str(source)), origin=str(source)), hashlib.sha256(data).hexdigest()


def read_collected_snapshot(path: str | Path) -> tuple[CollectedSnapshot, str]:
    """`read_snapshot_file` that keeps every valid record and lists the others as problems; only a
    whole-file problem (unreadable, not UTF-8 JSON, too deep, not an object) raises."""
    source = Path(path)
    data = read_snapshot_bytes(source)
    return collect_snapshot(decode_snapshot(data, str(source)), origin=str(source)), hashlib.sha256(data).hexdigest()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _error_text(exc: BaseException) -> str:
    """A conversion error that is no rule's message (e.g. a time overflowing UTC): type and text."""
    if isinstance(exc, RecursionError):
        return "nested too deep to convert"
    return f"{type(exc).__name__}: {exc}"


def _uuid_or_none(value: object) -> UUID | None:
    try:
        return UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _as_json(record: Any) -> Any:
    """A record of a `Snapshot` (no file behind it) as the file would hold it."""
    if isinstance(record, DependencyEdge):
        return [[record.from_ecosystem, record.from_name], [record.to_ecosystem, record.to_name]]
    if isinstance(record, ContributesTo):
        return [record.contributor_id, [record.ecosystem, record.name]]
    if isinstance(record, BaseModel):
        try:
            return record.model_dump(mode="json")
        except (ValueError, TypeError, RecursionError) as exc:  # e.g. metadata nested past the serializer's depth
            return {"unserialisable": f"{type(exc).__name__}: {exc}", "key": record_key("", record)}
    return record


# -- the quarantine file -------------------------------------------------------------------------

QUARANTINE_RECURSION_LIMIT: Final = 5_000


def write_quarantine(path: Path, plan: _Plan) -> None:
    """The refused records in a snapshot-shaped file `backfill` reads, with every reason in the
    top-level "problems" list (which readers ignore): `index` is the record's place in this file,
    `source_index` its place in the snapshot. Written atomically, also when nothing was refused."""
    order = {name: i for i, name in enumerate((*GRAPH_SECTIONS, TASK_SECTION))}
    data: dict[str, Any] = {name: [] for name in GRAPH_SECTIONS}
    listed: list[dict[str, Any]] = []
    for problem in sorted(plan.problems, key=lambda p: (order[p.section], p.index)):
        records = data.setdefault(problem.section, [])
        listed.append({**problem.as_json(), "index": len(records), "source_index": problem.index})
        records.append(plan.raw[problem.section, problem.index])
    data[PROBLEMS_KEY] = listed
    limit = sys.getrecursionlimit()
    try:
        # A refused record may be nested nearly as deep as the decoder took it, from a deeper stack.
        sys.setrecursionlimit(max(limit, QUARANTINE_RECURSION_LIMIT))
        write_json(path, data)
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise SnapshotError(f"cannot write the quarantine file {path}: {reason}") from None
    finally:
        sys.setrecursionlimit(limit)


# -- writing -------------------------------------------------------------------------------------


@asynccontextmanager
async def _session(target: str | Pool | None) -> AsyncIterator[Connection]:
    """One connection for the whole run (the staging tables live in its session)."""
    if isinstance(target, asyncpg.Pool):
        try:
            async with target.acquire() as proxy:
                yield cast(Connection, proxy)  # the proxy forwards every call
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise translate(exc, "backfill") from None
        return
    settings = {**DEFAULT_SERVER_SETTINGS, "application_name": "coherence_sql backfill"}
    conn = await connect(resolve_dsn(target), server_settings=settings)
    try:
        yield conn
    finally:
        await conn.close()


_DATA_ERRORS: Final = (InvalidValueError, UnknownReferenceError, DuplicateError)


async def _load_batch(conn: Connection, section: _Section, rows: Sequence[Row]) -> None:
    """COPY one batch into staging and merge it, in one transaction; retried on a deadlock."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(section.table, records=rows, columns=section.columns)
                    await section.merge(conn)
            except CoherenceSQLError:
                raise
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                raise translate(exc, f"backfill.{section.name}") from None
            return
        except ConcurrencyError:
            if attempt == BATCH_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
        except _DATA_ERRORS as exc:
            first, last = rows[0][0] - 1, rows[-1][0] - 1
            raise SnapshotError(
                f"{section.name}[{first}..{last}]: PostgreSQL refused the batch (nothing of it was written): {exc}"
            ) from None


async def _check_references(conn: Connection, plan: _Plan) -> None:
    """Contributions may name contributors and assets PostgreSQL already has; a contribution that
    names one PostgreSQL lacks too is refused (an orphan)."""
    orphans: dict[int, str] = {}  # ord → why
    for kind, wanted, lookup in (
        ("contributor", plan.external_contributors, backfill_sql.existing_contributor_ids),
        ("asset", plan.external_assets, backfill_sql.existing_asset_ids),
    ):
        if not wanted:
            continue
        found = {row.id for row in await lookup(conn, ids=list(wanted))}
        for ref, ords in wanted.items():
            if ref not in found:
                for ord_ in ords:
                    orphans.setdefault(ord_, f"the {kind} {ref} is neither in the snapshot nor in PostgreSQL")
    for ord_, reason in sorted(orphans.items()):
        plan.refuse("contributions", ord_ - 1, plan.raw["contributions", ord_ - 1], reason, "orphan")
    if orphans:
        plan.drop_rows("contributions", set(orphans))


async def _reserve_contribution_seqs(conn: Connection, sha: str, count: int) -> None:
    """Reserve one block of `count` contributions.seq values for the snapshot, once: the merge gives
    the k-th contribution the block's k-th value, so a resumed run keeps the order."""
    ranges = await backfill_sql.get_reserved_seqs(conn, snapshot_sha256=sha)
    if len(ranges) == 1 and ranges[0].last_seq - ranges[0].first_seq + 1 == count:
        return
    if ranges:  # the same snapshot always has the same contributions: the table was edited by hand
        held = sum(r.last_seq - r.first_seq + 1 for r in ranges)
        raise DatabaseError(
            f"backfill_reserved_seqs holds {len(ranges)} range(s) of {held} values for this snapshot, which has "
            f"{count} contributions: run again with restart (--restart)"
        )
    try:
        async with conn.transaction():
            await backfill_sql.lock_contributions_seq(conn)
            first = await backfill_sql.reserve_contribution_seq_block(conn, n=count)
            assert first is not None
            await backfill_sql.record_reserved_seqs(
                conn, snapshot_sha256=sha, first_seqs=[first], last_seqs=[first + count - 1]
            )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise translate(exc, "backfill.reserve_contribution_seq_block") from None


# After a table group is loaded: VACUUM (ANALYZE) where a bulk load leaves the trigram indexes'
# pending lists full (docs/decisions.md), ANALYZE elsewhere (insert-only tables; autovacuum follows).
_VACUUM: Final[dict[str, Callable[[Executor], Awaitable[None]]]] = {
    "contributions": backfill_sql.analyze_contributions,
    "projects": backfill_sql.vacuum_projects,
    "github": backfill_sql.analyze_github,
    "agent_tasks": backfill_sql.analyze_agent_tasks,
}


def _schedule_order(units: list[_Unit], jobs: int) -> list[_Unit]:
    """Section order for one connection; with several, the long chains start first: the parents,
    then contribution and edge partitions alternately, then the small independent sections."""
    if jobs == 1:
        return units
    rank = {"contributors": 0, "assets": 0, "projects": 0, "contributions": 1, "edges": 1}
    ordered = sorted(enumerate(units), key=lambda item: (rank.get(item[1].section.name, 2), item[1].key[-1:], item[0]))
    return [unit for _, unit in ordered]


class _Scheduler:
    """Hands units to connections: the first waiting unit whose `after` sections have committed.
    When the last unit of a section commits, its worker ANALYZEs it (for the sections after it) and,
    once a table group is complete, VACUUMs the group while the other connections keep loading."""

    def __init__(
        self,
        sha: str,
        units: list[_Unit],
        reports: dict[str, SectionReport],
        progress: Progress | None,
        *,
        vacuum: bool,
    ) -> None:
        self._sha = sha
        self._waiting = list(units)
        self._open: dict[str, int] = {}  # section → units not committed yet
        self._members: dict[str, set[str]] = {}  # vacuum group → its sections
        for unit in units:
            section = unit.section
            self._open[section.name] = self._open.get(section.name, 0) + 1
            self._members.setdefault(section.vacuum, set()).add(section.name)
        self._incomplete = {group: set(names) for group, names in self._members.items()}
        self._changed = asyncio.Condition()
        self._reports = reports
        self._progress = progress
        self._vacuum = vacuum
        self._done: dict[str, int] = {name: r.resumed for name, r in reports.items()}
        self._started: dict[str, float] = {}
        self.vacuum_seconds: float | None = None

    def _ready(self) -> _Unit | None:
        for unit in self._waiting:
            if unit.last and self._open[unit.section.name] > 1:
                continue  # its section's other units are still loading
            if all(self._open.get(name, 0) == 0 for name in unit.section.after):
                return unit
        return None

    async def run(self, conns: Sequence[Connection], checkpoints: dict[str, backfill_sql.GetCheckpointsRow]) -> None:
        workers = [asyncio.ensure_future(self._work(conn, checkpoints)) for conn in conns]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for worker in done:
                worker.result()  # the first failure, as it was raised
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, conn: Connection, checkpoints: dict[str, backfill_sql.GetCheckpointsRow]) -> None:
        while True:
            async with self._changed:
                unit = self._ready()
                while unit is None and self._waiting:
                    await self._changed.wait()
                    unit = self._ready()
                if unit is None:
                    return
                self._waiting.remove(unit)
            await self._load_unit(conn, unit, checkpoints.get(unit.key))
            section = unit.section
            self._open[section.name] -= 1
            if self._open[section.name] == 0:
                await self._section_done(conn, section)
            async with self._changed:
                self._changed.notify_all()

    async def _section_done(self, conn: Connection, section: _Section) -> None:
        report = self._reports[section.name]
        report.seconds = time.perf_counter() - self._started.get(section.name, time.perf_counter())
        if section.analyze is not None and report.inserted:
            await section.analyze(conn)  # the sections waiting on it plan with real statistics
        incomplete = self._incomplete[section.vacuum]
        incomplete.discard(section.name)
        filled = any(self._reports[name].inserted for name in self._members[section.vacuum])
        if self._vacuum and not incomplete and filled:
            began = time.perf_counter()
            await _VACUUM[section.vacuum](conn)
            self.vacuum_seconds = (self.vacuum_seconds or 0.0) + time.perf_counter() - began

    async def _load_unit(self, conn: Connection, unit: _Unit, before: backfill_sql.GetCheckpointsRow | None) -> None:
        section = unit.section
        report = self._reports[section.name]
        self._started.setdefault(section.name, time.perf_counter())
        await backfill_sql.start_unit(conn, unit=unit.key)
        staged = 0
        for first, end in unit.batches():
            await _load_batch(conn, section, unit.rows[first:end])
            staged += end - first
            self._done[section.name] += end - first
            if self._progress is not None:
                self._progress(section.name, self._done[section.name], report.records)
        if staged:
            after = await backfill_sql.get_checkpoints(conn, snapshot_sha256=self._sha)
            now = next(row.inserted for row in after if row.section == unit.key)
            report.inserted += now - (0 if before is None else before.inserted)
            report.staged += staged


@asynccontextmanager
async def _sessions(target: str | Pool | None, jobs: int, sha: str) -> AsyncIterator[list[Connection]]:
    """`jobs` connections, each with the staging tables and the snapshot named in its session."""
    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(_session(target)) for _ in range(jobs)]
        for conn in conns:
            await backfill_sql.start_session(conn, snapshot_sha256=sha)
            await backfill_sql.session_statement_timeout(conn, duration=STATEMENT_TIMEOUT)
            await backfill_sql.create_staging(conn)
        yield conns
        for conn in conns:
            await backfill_sql.drop_staging(conn)


async def backfill(
    target: str | Pool | None,
    source: Snapshot | str | Path,
    *,
    snapshot_sha256: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    jobs: int = DEFAULT_JOBS,
    restart: bool = False,
    vacuum: bool = True,
    per_row_foreign_keys: bool = False,
    progress: Progress | None = None,
    quarantine: str | Path | None = None,
) -> BackfillReport:
    """Load `source` (a snapshot file or a `Snapshot`) into PostgreSQL; return what was done.

    `target` is a DSN, a pool, or None ($DATABASE_URL, else the embedded server). Rows PostgreSQL
    already has are left alone (ON CONFLICT DO NOTHING): the runbook takes the snapshot after
    dual-write started, so they are at least as new. Progress is checkpointed per batch under the
    snapshot's SHA-256 (the file's bytes, or `snapshot_digest`), so a second run resumes where the
    first stopped; `restart=True` forgets the checkpoints and merges everything again (still
    idempotent). `jobs` connections load independent sections (and partitions of contributions)
    at once. `vacuum`: once a table group is loaded, VACUUM (ANALYZE) the projects' tables (trigram
    pending lists) and ANALYZE the others. When the role may set `session_replication_role` (a
    superuser, or `GRANT SET ON PARAMETER`), contributions and edges check their references once per
    batch and skip the foreign keys' per-row triggers; `per_row_foreign_keys=True` keeps the
    triggers.

    Every record a store would refuse, and every record depending on one, is a problem; all are
    found in one pass. Without `quarantine` any problem raises `DirtySnapshotError` (listing them
    all in `.report.problems`) before anything is written; with it, the refused records are written
    to that file (snapshot-shaped, reasons in its "problems" list; see `write_quarantine`) and the
    valid ones load. A whole-file problem (unreadable, not UTF-8 JSON, nested too deep, not an
    object, a section that is not a list) raises `SnapshotError` at once.
    """
    if batch_size < 1:
        raise InvalidValueError(f"batch_size must be at least 1, got {batch_size}")
    if jobs < 1:
        raise InvalidValueError(f"jobs must be at least 1, got {jobs}")
    started = time.perf_counter()
    quarantine_path = None if quarantine is None else Path(quarantine)
    collected: CollectedSnapshot | None = None
    if isinstance(source, Snapshot):
        snapshot = source
        sha = snapshot_sha256 or snapshot_digest(snapshot)
    else:
        if quarantine_path is not None and _same_file(quarantine_path, Path(source)):
            raise SnapshotError(f"the quarantine file {quarantine_path} is the snapshot itself: name another file")
        collected, file_sha = read_collected_snapshot(source)
        snapshot = collected.snapshot
        sha = snapshot_sha256 or file_sha
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise InvalidValueError(f"snapshot_sha256 must be 64 lower-case hex digits, got {sha!r}")
    if quarantine_path is not None and quarantine_path.is_dir():
        raise SnapshotError(f"the quarantine file {quarantine_path} is a directory: name a file")
    with collector_paused():  # ~200k new tuples among ~200k models
        plan = _Plan(snapshot, batch_size, collected)
    del collected  # the file's decoded records: plan.raw keeps the ones a quarantine may need
    report = BackfillReport(sha)
    async with _sessions(target, jobs, sha) as conns:
        first = conns[0]
        await require_current(first)
        await _check_references(first, plan)
        order = {name: i for i, name in enumerate((*GRAPH_SECTIONS, TASK_SECTION))}
        report.problems = sorted(plan.problems, key=lambda p: (order[p.section], p.index))
        report.normalised = [n for n in plan.normalised.values() if n.count]
        if report.problems and quarantine_path is None:
            raise DirtySnapshotError(report)
        if quarantine_path is not None:  # before loading: the refused records are safe first
            write_quarantine(quarantine_path, plan)
            report.quarantine = str(quarantine_path)
        references_per_batch = not per_row_foreign_keys and bool(
            await backfill_sql.may_skip_foreign_key_triggers(first)
        )
        for conn in conns:
            await backfill_sql.set_reference_checks(conn, per_batch="on" if references_per_batch else "off")
        report.references_per_batch = references_per_batch
        if restart:
            await backfill_sql.clear_checkpoints(first, snapshot_sha256=sha)
        checkpoints = {row.section: row for row in await backfill_sql.get_checkpoints(first, snapshot_sha256=sha)}
        units: list[_Unit] = []
        reports: dict[str, SectionReport] = {}
        for section in plan.sections:
            section_units = section.units()
            for unit in section_units:
                before = checkpoints.get(unit.key)
                ords = [row[0] for row in unit.rows]
                unit.start = 0 if before is None else bisect.bisect_right(ords, before.done_through)
            if section.name == "contributions" and any(u.start < len(u.rows) for u in section_units):
                await _reserve_contribution_seqs(first, sha, plan.contribution_slots)
            reports[section.name] = SectionReport(
                section.name, len(section.rows), resumed=sum(u.start for u in section_units)
            )
            units.extend(section_units)
        report.sections = list(reports.values())
        if progress is not None:
            for name, section_report in reports.items():
                progress(name, section_report.resumed, section_report.records)
        report.check_seconds = time.perf_counter() - started
        scheduler = _Scheduler(sha, _schedule_order(units, jobs), reports, progress, vacuum=vacuum)
        await scheduler.run(conns, checkpoints)
        report.vacuum_seconds = scheduler.vacuum_seconds
    report.seconds = time.perf_counter() - started
    return report
