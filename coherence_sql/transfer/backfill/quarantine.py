"""The quarantine file: the records a backfill refused, snapshot-shaped, with every reason."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

from coherence_sql.errors import SnapshotError
from coherence_sql.transfer.backfill.plan import Plan
from coherence_sql.transfer.snapshot import GRAPH_SECTIONS, PROBLEMS_KEY, TASK_SECTION, write_json

__all__ = ["QUARANTINE_RECURSION_LIMIT", "write_quarantine"]

QUARANTINE_RECURSION_LIMIT: Final = 5_000


def write_quarantine(path: Path, plan: Plan) -> None:
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
