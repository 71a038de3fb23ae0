"""JSON snapshots of the in-memory stores, in the API's own persistence format plus `agent_tasks`.

`save_snapshot` writes atomically; `load_snapshot` parses and validates a file into a `Snapshot`
(failing loudly, naming section, record and field); `collect_snapshot` parses one keeping every
valid record and listing every invalid one (the backfill's quarantine); `restore_snapshot` fills
memory stores from it all or nothing. The API's files (client-contract §2.5) load as they are.
Whole-file problems (not UTF-8, not JSON, nested too deep, not an object) raise `SnapshotError`.
"""

from __future__ import annotations

import gc
import json
import os
import re
import reprlib
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from coherence_sql.errors import CoherenceSQLError, SnapshotError
from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    Contribution,
    Contributor,
    GitHubContributor,
    GitHubOrganization,
    Project,
)
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.protocol import DependencyEdge

_M = TypeVar("_M", bound=BaseModel)
_Text = TypeVar("_Text", str, bytes)

# The API's top-level keys in its order (client-contract §2.5); ours adds agent_tasks at the end.
GRAPH_SECTIONS = (
    "projects",
    "edges",
    "contributors",
    "assets",
    "contributions",
    "github_contributors",
    "github_organizations",
    "github_contributes_to",
)
TASK_SECTION = "agent_tasks"
# The fields of an agent task, in the model's order: the backfill's staging columns and verify's
# compared fields follow it, so a field added to the model reaches both.
AGENT_TASK_FIELDS: Final = tuple(AgentTaskRecord.model_fields)
# Top-level keys a reader ignores: the quarantine file's reasons for its records (backfill.py).
PROBLEMS_KEY = "problems"


class ContributesTo(NamedTuple):
    """A GitHub contributor works on a project, by project key."""

    contributor_id: str
    ecosystem: str
    name: str


@dataclass
class Snapshot:
    """A snapshot file's records, each validated against its model; edges and keys as stored."""

    projects: list[Project] = field(default_factory=list)
    edges: list[DependencyEdge] = field(default_factory=list)
    contributors: list[Contributor] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    contributions: list[Contribution] = field(default_factory=list)
    github_contributors: list[GitHubContributor] = field(default_factory=list)
    github_organizations: list[GitHubOrganization] = field(default_factory=list)
    github_contributes_to: list[ContributesTo] = field(default_factory=list)
    agent_tasks: list[AgentTaskRecord] | None = None  # None: the file has no agent_tasks section

    @classmethod
    def of(cls, graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None = None) -> Snapshot:
        """What the stores hold now, in insertion order."""
        return cls(
            projects=graph.all_projects(),
            edges=graph.all_edges(),
            contributors=graph.all_contributors(),
            assets=graph.all_assets(),
            contributions=graph.all_contributions(),
            github_contributors=graph.all_github_contributors(),
            github_organizations=graph.all_github_organizations(),
            github_contributes_to=[ContributesTo(*row) for row in graph.all_github_contributes_to()],
            agent_tasks=None if tasks is None else tasks.all_tasks(),
        )

    def to_json(self) -> dict[str, Any]:
        """The file's object: the API's keys in its order, then agent_tasks when there are tasks."""
        data: dict[str, Any] = {
            "projects": [p.model_dump(mode="json") for p in self.projects],
            "edges": [[[e.from_ecosystem, e.from_name], [e.to_ecosystem, e.to_name]] for e in self.edges],
            "contributors": [c.model_dump(mode="json") for c in self.contributors],
            "assets": [a.model_dump(mode="json") for a in self.assets],
            "contributions": [c.model_dump(mode="json") for c in self.contributions],
            "github_contributors": [g.model_dump(mode="json") for g in self.github_contributors],
            "github_organizations": [o.model_dump(mode="json") for o in self.github_organizations],
            "github_contributes_to": [[c.contributor_id, [c.ecosystem, c.name]] for c in self.github_contributes_to],
        }
        if self.agent_tasks is not None:
            data[TASK_SECTION] = [t.model_dump(mode="json") for t in self.agent_tasks]
        return data


# -- saving --------------------------------------------------------------------------------------


def save_snapshot(path: str | os.PathLike[str], graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None) -> None:
    """Write the stores to `path` atomically: a temp file in the same directory, fsync, rename.

    Without `tasks` the file is exactly the API's format (no agent_tasks key).
    """
    write_snapshot(path, Snapshot.of(graph, tasks))


def write_snapshot(path: str | os.PathLike[str], snapshot: Snapshot) -> None:
    """Write `snapshot` to `path` atomically; a crash leaves the old file or the new one, never half."""
    write_json(path, snapshot.to_json())


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write a snapshot-shaped object to `path` atomically (temp file, fsync, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=0)  # the API's json.dump(data, f, indent=0)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)  # make the rename itself durable


def fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- loading -------------------------------------------------------------------------------------


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read and validate a snapshot file; any bad record raises `SnapshotError` naming where it is."""
    source = Path(path)
    return parse_snapshot(decode_snapshot(read_snapshot_bytes(source), str(source)), origin=str(source))


def read_snapshot_bytes(source: Path) -> bytes:
    """The file's bytes; an unreadable file (missing, a directory, no permission) is a SnapshotError."""
    try:
        return source.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{source}: cannot read the snapshot: {exc.strerror or exc}") from None


# Nesting past which a decode failure is reported at its place (json's C decoder stops near the
# interpreter's recursion limit, 1,000 frames less what the caller uses).
_REPORTED_DEPTH: Final = 500
_JSON_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_LONG_INTEGER: Final = re.compile(rf"(?<![\d.eE+-])-?\d{{{sys.get_int_max_str_digits() + 1},}}")


def decode_snapshot(data: bytes, origin: str) -> object:
    """The decoded JSON of a snapshot file; bytes that are not UTF-8 JSON raise one `SnapshotError`
    line that says what is wrong and where (line and column)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column(data, exc.start, b"\n")
        raise SnapshotError(
            f"{origin}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} column {column}"
        ) from None
    try:
        with collector_paused():
            return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{origin}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise SnapshotError(f"{origin}: not a snapshot: JSON nested too deep{_deep_place(text)}") from None
    except ValueError:  # an integer longer than int() takes from text (sys.get_int_max_str_digits)
        long = _LONG_INTEGER.search(text)
        where = "" if long is None else " at line {} column {}".format(*_line_column(text, long.start(), "\n"))
        raise SnapshotError(
            f"{origin}: not a snapshot: a number with more than {sys.get_int_max_str_digits()} digits{where}"
        ) from None
    except MemoryError:
        raise SnapshotError(f"{origin}: not a snapshot: too large to decode in memory") from None


def _deep_place(text: str) -> str:
    """Where the nesting first passes _REPORTED_DEPTH levels (only called after a decode failed)."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > _REPORTED_DEPTH:
                line, column = _line_column(text, token.start(), "\n")
                return f": more than {_REPORTED_DEPTH} levels at line {line} column {column}"
        elif char in "]}":
            depth -= 1
    return ""


def _line_column(data: _Text, offset: int, newline: _Text) -> tuple[int, int]:
    line_start = data.rfind(newline, 0, offset) + 1
    return data.count(newline, 0, offset) + 1, offset - line_start + 1


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building ~200,000 acyclic objects (models, rows) would
    trigger collections that rescan all of them, about half the time spent (docs/benchmarks.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_snapshot(data: object, *, origin: str = "snapshot") -> Snapshot:
    """Validate a decoded snapshot object (missing sections are empty, as in the API's loader);
    the first record that does not validate raises `SnapshotError` naming it."""
    with collector_paused():
        return _parse_snapshot(data, origin, None).snapshot


def collect_snapshot(data: object, *, origin: str = "snapshot", edges_raw: bool = False) -> CollectedSnapshot:
    """Validate a decoded snapshot object keeping every valid record and listing every invalid one;
    only a whole-file problem (not an object, a section that is not a list) raises `SnapshotError`.
    `edges_raw`: the edges are left as decoded (`snapshot.edges` stays empty; `sections["edges"]`
    has them) for a reader that checks their shape itself with `edge_of` (the backfill's plan: a
    million edges need no DependencyEdge each)."""
    with collector_paused():
        return _parse_snapshot(data, origin, [], edges_raw=edges_raw)


@dataclass(frozen=True, slots=True)
class Problem:
    """A record refused: where it is in its file, who it is, what kind of problem and why."""

    section: str
    index: int  # position in the file's section
    key: str  # the record's identity (id, ecosystem/name, the edge); "" when it has none
    kind: str
    reason: str

    def where(self) -> str:
        return f"{self.section}[{self.index}]" + (f" ({self.key})" if self.key else "")

    def as_json(self) -> dict[str, Any]:
        return {"section": self.section, "index": self.index, "key": self.key, "kind": self.kind, "reason": self.reason}


@dataclass
class CollectedSnapshot:
    """`collect_snapshot`'s result: the valid records, the invalid ones' problems, and where each
    valid record sits in the file (`positions[section][i]`, for the sections that lost records)."""

    snapshot: Snapshot
    problems: list[Problem]
    positions: dict[str, list[int]]
    sections: dict[str, list[Any]]  # the decoded sections as they are in the file
    edges_raw: bool = False  # the edges were not parsed: sections["edges"] holds them, unchecked
    # With edges_raw: where the edges are read from instead of sections["edges"] (a second pass
    # over the file, record by record, so that the decoded edges are never all held).
    edges_source: Iterable[Any] | None = None

    def close(self) -> None:
        """Let go of the file `edges_source` reads (when it holds one open)."""
        close = getattr(self.edges_source, "close", None)
        if close is not None:
            close()

    def position(self, section: str, index: int) -> int:
        """The file position of the section's `index`-th valid record."""
        kept = self.positions.get(section)
        return index if kept is None else kept[index]


def _parse_snapshot(
    data: object, origin: str, problems: list[Problem] | None, *, edges_raw: bool = False
) -> CollectedSnapshot:
    if not isinstance(data, dict):
        raise SnapshotError(f"{origin}: the top level must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {*GRAPH_SECTIONS, TASK_SECTION, PROBLEMS_KEY}, key=str)
    if unknown:
        raise SnapshotError(f"{origin}: unknown sections {_short(unknown)}")
    sections = {name: _section(data, name, origin) for name in (*GRAPH_SECTIONS, TASK_SECTION)}
    positions: dict[str, list[int]] = {}
    parse = _Parser(sections, origin, problems, positions)
    snapshot = Snapshot(
        projects=parse.models("projects", Project),
        edges=[] if edges_raw else parse.rows("edges", edge_of),
        contributors=parse.models("contributors", Contributor),
        assets=parse.models("assets", Asset),
        contributions=parse.models("contributions", Contribution),
        github_contributors=parse.models("github_contributors", GitHubContributor),
        github_organizations=parse.models("github_organizations", GitHubOrganization),
        github_contributes_to=parse.rows("github_contributes_to", _contributes_to),
        agent_tasks=parse.models(TASK_SECTION, AgentTaskRecord) if TASK_SECTION in data else None,
    )
    return CollectedSnapshot(snapshot, problems if problems is not None else [], positions, sections, edges_raw)


def _section(data: dict[str, Any], name: str, origin: str) -> list[Any]:
    records = data.get(name, [])
    if not isinstance(records, list):
        raise SnapshotError(f"{origin}: section {name!r} must be a list, got {type(records).__name__}")
    return records


# Values the models accept that no store can hold and that break arithmetic or conversion later,
# checked after validation, per model: (amounts past DECIMAL(15,2)'s digits, integers past INTEGER,
# aware times at the calendar's ends that overflow when converted to UTC). The models already
# refuse NaN and infinite amounts.
_GUARDED: Final[dict[type[BaseModel], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]] = {
    Project: ((), ("dependency_count",), ()),
    Contributor: (("hourly_rate",), (), ("created_at",)),
    Asset: (("total_cost",), (), ("created_at",)),
    Contribution: (("cost_amount",), (), ("timestamp",)),
    GitHubContributor: ((), ("contributions_count",), ("created_at", "updated_at")),
    GitHubOrganization: ((), (), ("created_at", "updated_at")),
    AgentTaskRecord: ((), ("progress_pct",), ("started_at", "created_at", "updated_at", "claimed_at")),
}
_INT_LIMIT: Final = 2**31  # PostgreSQL's INTEGER
_CALENDAR_ENDS: Final = (1, 9999)


def _out_of_range(record: BaseModel) -> str | None:
    """Why a validated record holds a value no store can take, or None (about 1 µs a record)."""
    amounts, integers, times = _GUARDED[type(record)]
    for name in amounts:
        amount = getattr(record, name)
        if amount is not None and (amount.adjusted() > 14 or not amount.is_finite()):
            return f"{name}: out of range for DECIMAL(15,2) (input {_short(amount)})"
    for name in integers:
        number = getattr(record, name)
        if number is not None and not -_INT_LIMIT <= number < _INT_LIMIT:
            return f"{name}: out of range for INTEGER (input {_short(number)})"
    for name in times:
        moment: datetime | None = getattr(record, name)
        if moment is not None and moment.year in _CALENDAR_ENDS and moment.tzinfo is not None:
            try:
                moment.astimezone(UTC)
            except OverflowError:
                return f"{name}: {moment.isoformat()} is out of range when converted to UTC"
    return None


_SHORT: Final = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 3


def _short(value: object) -> str:
    """A bounded repr for messages: a value may be megabytes long or nested thousands deep."""
    try:
        return _SHORT.repr(value)
    except Exception:  # e.g. an int past str()'s digit limit: the message must still come
        return f"<{type(value).__name__} that cannot be shown>"


def record_key(section: str, record: object) -> str:
    """A record's identity for a message, from a model, a row or a raw decoded record."""
    if isinstance(record, DependencyEdge):
        return _short(f"{record.from_ecosystem}/{record.from_name} -> {record.to_ecosystem}/{record.to_name}")[1:-1]
    if isinstance(record, ContributesTo):
        return _short(f"{record.contributor_id} -> {record.ecosystem}/{record.name}")[1:-1]
    if isinstance(record, list):
        return _short(record)
    if isinstance(record, BaseModel):
        fields: dict[str, Any] = {name: getattr(record, name, None) for name in ("id", "ecosystem", "name")}
    elif isinstance(record, dict):
        fields = record
    else:
        return ""
    ident = fields.get("id")
    if isinstance(ident, str | UUID) and ident:
        return f"id {_short(str(ident))[1:-1]}"
    ecosystem, name = fields.get("ecosystem"), fields.get("name")
    if section == "projects" and isinstance(ecosystem, str) and isinstance(name, str):
        return _short(f"{ecosystem}/{name}")[1:-1]
    return ""


class _Parser:
    """Validates sections record by record; strict (problems is None: the first bad record raises)
    or collecting (each bad record becomes a Problem and is left out)."""

    def __init__(
        self,
        sections: dict[str, list[Any]],
        origin: str,
        problems: list[Problem] | None,
        positions: dict[str, list[int]],
    ) -> None:
        self._sections = sections
        self._origin = origin
        self._problems = problems
        self._positions = positions

    def models(self, name: str, model: type[_M]) -> list[_M]:
        out: list[_M] = []
        records = self._sections[name]
        for index, record in enumerate(records):
            try:
                value = model.model_validate(record)
            except ValidationError as exc:
                self._left_out(name, index, record, "invalid", _validation_reason(exc), ".")
                continue
            except RecursionError:
                self._left_out(name, index, record, "invalid", "nested too deep to validate", ": ")
                continue
            problem = _out_of_range(value)
            if problem is not None:
                self._left_out(name, index, record, "invalid", problem, ".")
                continue
            self._kept(name, index)
            out.append(value)
        return out

    def rows(self, name: str, parse: Callable[[Any], _R]) -> list[_R]:
        out: list[_R] = []
        for index, record in enumerate(self._sections[name]):
            try:
                value = parse(record)
            except ValueError as exc:
                self._left_out(name, index, record, "malformed", malformed_reason(record, exc), ": ")
                continue
            self._kept(name, index)
            out.append(value)
        return out

    def _left_out(self, name: str, index: int, record: object, kind: str, reason: str, separator: str) -> None:
        if self._problems is None:
            raise SnapshotError(f"{self._origin}: {name}[{index}]{separator}{reason}")
        self._problems.append(Problem(name, index, record_key(name, record), kind, reason))
        self._positions.setdefault(name, list(range(index)))

    def _kept(self, name: str, index: int) -> None:
        kept = self._positions.get(name)
        if kept is not None:
            kept.append(index)


def _validation_reason(exc: ValidationError) -> str:
    """Every error of a record (at most five): `field: message (input …)`."""
    reasons = []
    errors = exc.errors(include_url=False, include_context=False)
    for error in errors[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "(record)"
        reasons.append(f"{where}: {error['msg']} (input {_short(error.get('input'))})")
    if len(errors) > 5:
        reasons.append(f"and {len(errors) - 5} more")
    return "; ".join(reasons)


_R = TypeVar("_R")


def _pair(value: object) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError("expected [ecosystem, name]")
    return value[0], value[1]


def edge_of(record: object) -> DependencyEdge:
    """A decoded edge as its DependencyEdge; ValueError (see `malformed_reason`) for another shape."""
    # The usual decoded edge, checked inline: 2.5x faster than through _pair (a million edges: ~3 s).
    if type(record) is list and len(record) == 2:
        source, target = record
        if type(source) is list and type(target) is list and len(source) == 2 and len(target) == 2:
            from_ecosystem, from_name = source
            to_ecosystem, to_name = target
            if (
                type(from_ecosystem) is str
                and type(from_name) is str
                and type(to_ecosystem) is str
                and type(to_name) is str
            ):
                return DependencyEdge(from_ecosystem, from_name, to_ecosystem, to_name)
    if not (isinstance(record, list) and len(record) == 2):
        raise ValueError("expected [[from_ecosystem, from_name], [to_ecosystem, to_name]]")
    return DependencyEdge(*_pair(record[0]), *_pair(record[1]))


def malformed_reason(record: object, exc: ValueError) -> str:
    """Why a record of a rows section (edges, contributes-to) has the wrong shape, as parsing says it."""
    return f"{exc} (got {_short(record)})"


def _contributes_to(record: object) -> ContributesTo:
    if not (isinstance(record, list) and len(record) == 2 and isinstance(record[0], str)):
        raise ValueError("expected [contributor_id, [ecosystem, name]]")
    return ContributesTo(record[0], *_pair(record[1]))


# -- restoring into memory stores ------------------------------------------------------------------


async def restore_snapshot(
    snapshot: Snapshot, graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None = None
) -> None:
    """Replace the stores' contents with the snapshot's, through the stores' own validation.

    Everything is loaded into fresh stores first and handed over only when every record went in,
    so a bad record raises `SnapshotError` (section, index, reason) and the targets stay untouched.
    `tasks` is left as it is when the snapshot has no agent_tasks section (an API graph file).
    Derived values are recomputed, not read: dependency_count from the edges, total_cost from the
    contributions (docs/decisions.md "Stores").
    """
    fresh_graph = MemoryGraphStore()
    await _apply(snapshot.projects, "projects", fresh_graph.upsert_project)
    await _apply(snapshot.edges, "edges", lambda e: fresh_graph.add_dependency(*e))
    await _apply(snapshot.contributors, "contributors", fresh_graph.create_contributor)
    await _apply(snapshot.assets, "assets", fresh_graph.create_asset)
    await _apply(
        snapshot.contributions,
        "contributions",
        lambda c: fresh_graph.create_contribution(
            c.contributor_id,
            c.asset_id,
            c.cost_amount,
            c.coherence_score,
            c.metadata,
            id=c.id,
            timestamp=c.timestamp,
        ),
    )
    await _apply(snapshot.github_contributors, "github_contributors", fresh_graph.upsert_github_contributor)
    await _apply(snapshot.github_organizations, "github_organizations", fresh_graph.upsert_github_organization)
    await _apply(
        snapshot.github_contributes_to,
        "github_contributes_to",
        lambda c: fresh_graph.add_github_contributes_to(c.contributor_id, c.ecosystem, c.name),
    )
    fresh_tasks = MemoryAgentTaskStore()
    restore_tasks = tasks is not None and snapshot.agent_tasks is not None
    if restore_tasks:
        await _apply(snapshot.agent_tasks or [], TASK_SECTION, fresh_tasks.create_task)
    graph.replace_contents(fresh_graph)
    if tasks is not None and restore_tasks:
        tasks.replace_contents(fresh_tasks)


async def load_into(
    path: str | os.PathLike[str], graph: MemoryGraphStore, tasks: MemoryAgentTaskStore | None = None
) -> Snapshot:
    """`load_snapshot` then `restore_snapshot`: the stores hold the file's contents, or are untouched."""
    snapshot = load_snapshot(path)
    try:
        await restore_snapshot(snapshot, graph, tasks)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from exc.__cause__
    return snapshot


_T = TypeVar("_T")


async def _apply(records: Sequence[_T], section: str, write: Callable[[_T], Any]) -> None:
    for index, record in enumerate(records):
        try:
            await write(record)
        except CoherenceSQLError as exc:
            raise SnapshotError(f"{section}[{index}]: {type(exc).__name__}: {exc}") from exc
