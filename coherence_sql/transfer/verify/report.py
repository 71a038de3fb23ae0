"""Verify's report: every difference between the two sides, counted per entity, and the gate.

Data only: `coherence_sql.commands.render` prints it; `as_json()` is what `--json` prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final, cast
from uuid import UUID

from coherence_sql.transfer.snapshot import AGENT_TASK_FIELDS

__all__ = [
    "AGGREGATE",
    "DEAD_LETTERS_HELP",
    "DEFAULT_THRESHOLD_PERCENT",
    "DUPLICATE",
    "ENTITIES",
    "FIELD",
    "FIELDS",
    "INVARIANT",
    "MISSING_IN_POSTGRES",
    "MISSING_IN_SOURCE",
    "ONE_SIDED",
    "PROBLEMS",
    "UNKNOWN_REFERENCE",
    "Difference",
    "EntityCounts",
    "JournalBacklog",
    "Key",
    "VerifyReport",
    "counts_by_kind",
    "jsonable",
    "render_key",
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
    "agent_tasks": AGENT_TASK_FIELDS[1:],  # all but the id, which keys the record
}
ENTITIES: Final = tuple(FIELDS)
DEFAULT_THRESHOLD_PERCENT: Final = 0.0  # a gate: any difference fails (a threshold is for sampled runs)

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


def counts_by_kind(differences: Iterable[Difference]) -> Mapping[str, int]:
    """How many differences of each kind (for summaries and tests)."""
    return Counter(d.kind for d in differences)
