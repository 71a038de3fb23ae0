"""The backfill's report: what a run did, section by section, and what it refused or normalised.

Data only: `coherence_sql.commands.render` prints it; `as_json()` is what `--json` prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from coherence_sql.errors import SnapshotError
from coherence_sql.transfer.snapshot import Problem

__all__ = ["EXAMPLES", "BackfillReport", "DirtySnapshotError", "Normalisation", "SectionReport"]


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
