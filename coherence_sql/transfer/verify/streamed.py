"""verify holding a digest per key: the report `compare` gives, in memory bounded by the keys.

1. The source is read once (`digest_source`): each key's 16-byte digest maps to the digest of its
   values (`digest.py`), plus what the one-sided checks need per project and asset (the out-degree,
   the sums of contributions, the stated values) and how often a key-only record repeats.
2. PostgreSQL is read in keyset pages (`compare_postgres`): each row is projected, its digest
   compared with the source's and the key marked as seen; a row that differs, or that the source
   lacks, is kept with its values (the report shows them). Its one-sided checks run as it goes
   (edges before projects and contributions before assets, so each count and sum is known when
   the stated value arrives).
3. The source is read again for the keys that need their values or their real key (`capture`):
   the ones that differ, the ones PostgreSQL lacks and the source's own findings. The report is
   then built by the same code as `compare`'s (`streamed_report`).

Memory: O(keys) small (two 16-byte digests a key, a count per project, a sum per asset) plus the
differences, which the report lists in full anyway; never both sides' records. A digest that
differs for equal values only sends the key to step 3, where the values themselves are compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Protocol

from coherence_sql.transfer.verify.compare import add_findings, group_findings, in_sample, key_differences
from coherence_sql.transfer.verify.digest import digest
from coherence_sql.transfer.verify.project import (
    DERIVED,
    ZERO,
    Finding,
    Rows,
    Values,
    aggregate,
    duplicate,
    unknown_contributor,
    with_derived,
)
from coherence_sql.transfer.verify.report import (
    DEFAULT_THRESHOLD_PERCENT,
    ENTITIES,
    INVARIANT,
    Difference,
    EntityCounts,
    Key,
    VerifyReport,
    render_key,
)
from coherence_sql.transfer.verify.source import Source

__all__ = [
    "PostgresSide",
    "capture",
    "compare_postgres",
    "digest_source",
    "invariant_findings",
    "streamed_report",
    "wanted_keys",
]

# Marks in place of a value digest (16 bytes) or a key-only record's b"" (never equal to either).
UNSAMPLED: Final = b"-"  # a source key outside the sample: still there (an edge counts once, a contributor is known)
SEEN: Final = b"+"  # PostgreSQL has the key (compared already)
KEY_ONLY: Final = ("edges", "github_contributes_to")
# PostgreSQL's tables in the order the one-sided checks need: the records a derived value is
# computed from before the records that state it.
POSTGRES_ORDER: Final = (
    "edges",
    "projects",
    "contributions",
    "assets",
    "contributors",
    "github_contributors",
    "github_organizations",
    "github_contributes_to",
    "agent_tasks",
)


class PostgresSide(Protocol):
    """PostgreSQL's rows section by section in pages (`postgres_reader.PostgresPages`), and the
    pending edges it could resolve."""

    def section(self, name: str) -> AsyncIterator[Sequence[Any]]: ...
    async def resolvable_pending_edges(self) -> Sequence[Any]: ...


def _base_digest(entity: str, values: Values) -> bytes:
    """The digest of the values but the derived field (compared on its own: each side derives it)."""
    at = DERIVED.get(entity)
    return digest(values if at is None else values[:at] + values[at + 1 :])


@dataclass(slots=True)
class SourceDigests:
    """The source after one pass: key digest -> value digest (or UNSAMPLED) per entity, and what
    the source's own checks and derived values need."""

    keys: dict[str, dict[bytes, bytes]] = field(default_factory=lambda: {name: {} for name in ENTITIES})
    repeats: dict[str, dict[bytes, int]] = field(default_factory=lambda: {name: {} for name in KEY_ONLY})
    out_degree: Counter[bytes] = field(default_factory=Counter)  # project key digest -> distinct edges
    stated_counts: dict[bytes, int] = field(default_factory=dict)  # sampled projects' stated count (last)
    sums: dict[bytes, Decimal] = field(default_factory=dict)  # asset key digest -> its contributions' sum
    stated_totals: list[tuple[bytes, Decimal]] = field(default_factory=list)  # sampled asset records
    has_tasks: bool = False
    compared: dict[str, int] = field(default_factory=dict)  # sampled distinct keys per entity
    findings: dict[str, set[bytes]] = field(default_factory=dict)  # keys with a finding of their own
    unknown: set[bytes] = field(default_factory=set)  # contributes-to keys whose contributor it lacks


def digest_source(source: Source, rows: Rows, sample_percent: float) -> SourceDigests:
    """Pass 1: every source record to digests (`SourceDigests`), the records dropped as read."""
    out = SourceDigests()
    for entity, records in source.sections():
        out.has_tasks |= entity == "agent_tasks"
        if entity in KEY_ONLY:
            _key_only_records(out, entity, records, rows, sample_percent)
        else:
            _valued_records(out, entity, records, rows, sample_percent)
    for entity, keys in out.keys.items():
        out.compared[entity] = sum(1 for value in keys.values() if value != UNSAMPLED)
    # The source's own findings, by key digest (their real keys come in pass 3). Unknown
    # contributors now: pass 2 adds PostgreSQL's contributors to the same dict.
    github = out.keys["github_contributors"]
    works = out.keys["github_contributes_to"]
    out.unknown = {kd for kd, contributor in works.items() if contributor != UNSAMPLED and contributor not in github}
    out.findings = {
        "edges": set(out.repeats["edges"]),
        "projects": {kd for kd, stated in out.stated_counts.items() if stated != out.out_degree.get(kd, 0)},
        "assets": {kd for kd, stated in out.stated_totals if stated != out.sums.get(kd, ZERO)},
        "github_contributes_to": set(out.repeats["github_contributes_to"]) | out.unknown,
    }
    return out


def _key_only_records(out: SourceDigests, entity: str, records: Iterable[Any], rows: Rows, percent: float) -> None:
    """Edges and contributes-to edges: each key once (how often it repeats counted), an edge's
    source project's out-degree, a contributes-to edge's contributor (known or not: checked last)."""
    keys, repeats = out.keys[entity], out.repeats[entity]
    for record in records:
        key, _ = rows.row(entity, record)
        kd = digest(key)
        prior = keys.get(kd)
        if prior is None:
            sampled = percent >= 100 or in_sample(entity, key, percent)
            if entity == "edges":
                keys[kd] = b"" if sampled else UNSAMPLED
                out.out_degree[digest(key[:2])] += 1  # type: ignore[index]
            else:
                keys[kd] = digest(key[0]) if sampled else UNSAMPLED  # type: ignore[index]
        elif prior != UNSAMPLED:
            repeats[kd] = repeats.get(kd, 1) + 1


def _valued_records(out: SourceDigests, entity: str, records: Iterable[Any], rows: Rows, percent: float) -> None:
    """Records with values: the digest of all but the derived field, whose stated value is kept for
    the source's own check; every contribution (sampled or not) adds to its asset's sum."""
    keys = out.keys[entity]
    for record in records:
        key, values = rows.row(entity, record)
        kd = digest(key)
        if entity == "contributions":
            asset = digest(values[1])
            out.sums[asset] = out.sums.get(asset, ZERO) + values[2]
        if not (percent >= 100 or in_sample(entity, key, percent)):
            keys[kd] = UNSAMPLED
            continue
        keys[kd] = _base_digest(entity, values)  # the last record of a repeated key wins, as in the stores
        if entity == "projects":
            out.stated_counts[kd] = values[DERIVED["projects"]]
        elif entity == "assets":
            out.stated_totals.append((kd, values[DERIVED["assets"]]))


@dataclass(slots=True)
class PostgresPass:
    """PostgreSQL after one pass: the rows that differ from the source's and the rows the source
    lacks (key and values, in PostgreSQL's order), and PostgreSQL's own findings."""

    differing: dict[str, dict[bytes, tuple[Key, Values]]] = field(
        default_factory=lambda: {name: {} for name in ENTITIES}
    )
    only: dict[str, dict[bytes, tuple[Key, Values]]] = field(default_factory=lambda: {name: {} for name in ENTITIES})
    findings: list[Finding] = field(default_factory=list)


async def compare_postgres(
    postgres: PostgresSide, source: SourceDigests, rows: Rows, sample_percent: float
) -> PostgresPass:
    """Pass 2: PostgreSQL's rows page by page against the source's digests (which it marks SEEN)."""
    check = _PostgresChecks(source, sample_percent)
    for entity in POSTGRES_ORDER:
        if entity == "agent_tasks" and not source.has_tasks:
            async for _ in postgres.section(entity):  # not compared (read for the progress' count)
                pass
            continue
        async for page in postgres.section(entity):
            for record in page:
                check.row(entity, *rows.row(entity, record))
    return check.result(invariant_findings(await postgres.resolvable_pending_edges()))


class _PostgresChecks:
    """PostgreSQL's rows one at a time: compared with the source's digests, and PostgreSQL's own
    findings as `project` makes them (its counts, sums, repeats and contributors so far)."""

    def __init__(self, source: SourceDigests, sample_percent: float) -> None:
        self._source = source
        self._percent = sample_percent
        self._out = PostgresPass()
        self._out_degree: Counter[bytes] = Counter()
        self._sums: dict[bytes, Decimal] = {}
        self._repeats: dict[str, dict[bytes, tuple[Key, int]]] = {name: {} for name in KEY_ONLY}
        self._aggregates: dict[str, list[Finding]] = {"projects": [], "assets": []}
        self._unknown: list[Finding] = []

    def row(self, entity: str, key: Key, values: Values) -> None:
        kd = digest(key)
        keys = self._source.keys[entity]
        prior = keys.get(kd)
        sampled = self._percent >= 100 or in_sample(entity, key, self._percent)
        if entity in KEY_ONLY:
            if prior == SEEN:  # listed again (an edge both resolved and pending)
                if sampled:
                    _, times = self._repeats[entity].get(kd, (key, 1))
                    self._repeats[entity][kd] = (key, times + 1)
                return
            self._first_listing(entity, key, sampled)
        else:
            self._derived(entity, key, kd, values, sampled)
            if prior == SEEN:
                return  # a key PostgreSQL holds twice: its keys are unique (the first row is compared)
        keys[kd] = SEEN
        if prior is None:
            if sampled:
                self._out.only[entity][kd] = (key, values)
        elif prior != UNSAMPLED and entity not in KEY_ONLY and self._differs(entity, kd, values, prior):
            self._out.differing[entity][kd] = (key, values)

    def _first_listing(self, entity: str, key: Key, sampled: bool) -> None:
        if entity == "edges":
            self._out_degree[digest(key[:2])] += 1  # type: ignore[index]
        elif sampled and self._source.keys["github_contributors"].get(digest(key[0])) != SEEN:  # type: ignore[index]
            self._unknown.append((entity, key, unknown_contributor(key, "postgres")))

    def _derived(self, entity: str, key: Key, kd: bytes, values: Values, sampled: bool) -> None:
        """Contributions add up per asset; a stated count or total its rows do not give is a finding."""
        if entity == "contributions":
            asset = digest(values[1])
            self._sums[asset] = self._sums.get(asset, ZERO) + values[2]
        elif entity in DERIVED and sampled:
            stated = values[DERIVED[entity]]
            if entity == "projects":
                computed: Any = self._out_degree.get(kd, 0)
                name = "dependency_count"
            else:
                computed, name = self._sums.get(kd, ZERO), "total_cost"
            if stated != computed:
                self._aggregates[entity].append(
                    (entity, key, aggregate(entity, key, name, "postgres", stated, computed))
                )

    def _differs(self, entity: str, kd: bytes, values: Values, prior: bytes) -> bool:
        if _base_digest(entity, values) != prior:
            return True
        return entity in DERIVED and _source_derived(self._source, entity, kd) != values[DERIVED[entity]]

    def result(self, invariants: list[Finding]) -> PostgresPass:
        """The pass's outcome; findings in `project`'s order (then the invariant's)."""
        self._out.findings = [
            *self._duplicates("edges"),
            *self._aggregates["projects"],
            *self._aggregates["assets"],
            *self._duplicates("github_contributes_to"),
            *self._unknown,
            *invariants,
        ]
        return self._out

    def _duplicates(self, entity: str) -> list[Finding]:
        return [
            (entity, key, duplicate(entity, key, times, "postgres")) for key, times in self._repeats[entity].values()
        ]


def _source_derived(source: SourceDigests, entity: str, kd: bytes) -> Any:
    """The source's compared value of a derived field: what its records give."""
    return source.out_degree.get(kd, 0) if entity == "projects" else source.sums.get(kd, ZERO)


def invariant_findings(resolvable: Sequence[Any]) -> list[Finding]:
    """PostgreSQL's defects a snapshot cannot show: a pending edge whose two projects both exist."""
    findings: list[Finding] = []
    for q in resolvable:
        edge = (q.from_ecosystem, q.from_name, q.to_ecosystem, q.to_name)
        difference = Difference(
            "edges",
            render_key("edges", edge),
            INVARIANT,
            field="pending",
            side="postgres",
            stated="pending",
            computed="both projects exist: should be in project_dependencies",
        )
        findings.append(("edges", edge, difference))
    return findings


@dataclass(slots=True)
class Captured:
    """A source key read again: where it first is in its section, its key and its last values
    (the last record of a repeated key wins, as in the stores), and each record's stated total."""

    order: int
    key: Key
    values: Values
    totals: list[tuple[int, Any]] = field(default_factory=list)


def capture(source: Source, rows: Rows, wanted: dict[str, set[bytes]]) -> dict[str, dict[bytes, Captured]]:
    """Pass 3: the source's records whose key digest is wanted, by entity; other sections unread."""
    found: dict[str, dict[bytes, Captured]] = {name: {} for name in ENTITIES}
    for entity, records in source.sections():
        keys = wanted.get(entity)
        if not keys:
            continue
        caught = found[entity]
        for order, record in enumerate(records):
            key, values = rows.row(entity, record)
            kd = digest(key)
            if kd not in keys:
                continue
            seen = caught.get(kd)
            if seen is None:
                seen = caught[kd] = Captured(order, key, values)
            else:
                seen.values = values
            if entity == "assets":
                seen.totals.append((order, values[DERIVED["assets"]]))
    return found


def streamed_report(
    source: SourceDigests,
    postgres: PostgresPass,
    captured: dict[str, dict[bytes, Captured]],
    *,
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    source_name: str = "source",
    target_name: str = "postgresql",
) -> VerifyReport:
    """The report `compare_projections` would give for the same two sides."""
    report = VerifyReport(source_name, target_name, sample_percent, threshold_percent)
    findings = group_findings([*_captured_findings(source, captured), *postgres.findings])
    for entity in ENTITIES:
        if entity == "agent_tasks" and not source.has_tasks:
            report.not_compared.append(entity)  # an API graph file has no task section
            continue
        counts = EntityCounts(compared=source.compared[entity] + len(postgres.only[entity]))
        report.entities[entity] = counts
        mismatched: set[Key] = set()
        differing, missing = postgres.differing[entity], missing_in_postgres(source, entity)
        caught = captured[entity]
        for kd in sorted((kd for kd in caught if kd in differing or kd in missing), key=lambda kd: caught[kd].order):
            mine = _compared(source, entity, kd, caught[kd].values)
            theirs = differing[kd][1] if kd in differing else None
            key_differences(entity, caught[kd].key, mine, theirs, counts, mismatched, report.differences)
        for key, theirs in postgres.only[entity].values():
            key_differences(entity, key, None, theirs, counts, mismatched, report.differences)
        add_findings(entity, findings.get(entity, {}), sample_percent, counts, mismatched, report.differences)
        counts.mismatched = len(mismatched)
    return report


def missing_in_postgres(source: SourceDigests, entity: str) -> set[bytes]:
    """Sampled source keys PostgreSQL did not mark as seen (after pass 2)."""
    return {kd for kd, value in source.keys[entity].items() if value != SEEN and value != UNSAMPLED}


def wanted_keys(source: SourceDigests, postgres: PostgresPass) -> dict[str, set[bytes]]:
    """The source keys pass 3 reads again: findings, differences, and the keys PostgreSQL lacks."""
    wanted: dict[str, set[bytes]] = {}
    for entity in ENTITIES:
        keys = (
            source.findings.get(entity, set()) | set(postgres.differing[entity]) | missing_in_postgres(source, entity)
        )
        if keys:
            wanted[entity] = keys
    return wanted


def _compared(source: SourceDigests, entity: str, kd: bytes, values: Values) -> Values:
    """The source's values as compared: a derived field as its records give it."""
    return with_derived(entity, values, _source_derived(source, entity, kd)) if entity in DERIVED else values


def _captured_findings(source: SourceDigests, captured: dict[str, dict[bytes, Captured]]) -> list[Finding]:
    """The source's own findings with their real keys, in the order `project` lists them: edges
    listed twice, dependency counts, totals (per record), contributes-to edges listed twice, unknown
    contributors; each by where its key first is in its section."""

    def ordered(entity: str, keys: set[bytes]) -> list[tuple[bytes, Captured]]:
        caught = captured[entity]
        return sorted(((kd, caught[kd]) for kd in keys if kd in caught), key=lambda pair: pair[1].order)

    def duplicates(entity: str) -> list[Finding]:
        repeats = source.repeats[entity]
        return [
            (entity, c.key, duplicate(entity, c.key, repeats[kd], "source")) for kd, c in ordered(entity, set(repeats))
        ]

    out = duplicates("edges")
    for kd, c in ordered("projects", source.findings.get("projects", set())):
        stated, computed = c.values[DERIVED["projects"]], source.out_degree.get(kd, 0)
        if stated != computed:  # the last record's stated count, as `project` keeps it
            out.append(
                ("projects", c.key, aggregate("projects", c.key, "dependency_count", "source", stated, computed))
            )
    totals: list[tuple[int, Finding]] = []
    for kd, c in ordered("assets", source.findings.get("assets", set())):
        total = source.sums.get(kd, ZERO)
        for order, stated in c.totals:  # one finding per record, as `project` gives them
            if stated != total:
                totals.append(
                    (order, ("assets", c.key, aggregate("assets", c.key, "total_cost", "source", stated, total)))
                )
    out.extend(finding for _, finding in sorted(totals, key=lambda pair: pair[0]))
    out.extend(duplicates("github_contributes_to"))
    for _, c in ordered("github_contributes_to", source.unknown):
        out.append(("github_contributes_to", c.key, unknown_contributor(c.key, "source")))
    return out
