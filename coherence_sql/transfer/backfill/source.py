"""The snapshot a backfill reads: parsed from its file, and its SHA-256 (which keys the checkpoints)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from coherence_sql.errors import SnapshotError
from coherence_sql.transfer.snapshot import (
    CollectedSnapshot,
    Snapshot,
    collect_snapshot,
    decode_snapshot,
    parse_snapshot,
    read_snapshot_bytes,
)

__all__ = ["read_collected_snapshot", "read_snapshot_file", "same_file", "snapshot_digest"]


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
    whole-file problem (unreadable, not UTF-8 JSON, too deep, not an object) raises. The edges stay
    as decoded: the plan checks their shape as it reads them (`CollectedSnapshot.edges_raw`)."""
    source = Path(path)
    data = read_snapshot_bytes(source)
    sha = hashlib.sha256(data).hexdigest()
    decoded = decode_snapshot(data, str(source))
    del data  # the file's bytes: not needed while the records are checked
    return collect_snapshot(decoded, origin=str(source), edges_raw=True), sha


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False
