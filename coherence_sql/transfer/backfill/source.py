"""The snapshot a backfill reads: parsed from its file, and its SHA-256 (which keys the checkpoints)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from coherence_sql.errors import SnapshotError
from coherence_sql.transfer.snapshot import (
    CollectedSnapshot,
    Snapshot,
    collect_snapshot,
    decode_snapshot,
    parse_snapshot,
    read_snapshot_bytes,
)
from coherence_sql.transfer.snapshot_file import iter_stream_sections

__all__ = ["FileEdges", "read_collected_snapshot", "read_snapshot_file", "same_file", "snapshot_digest"]

_HASH_CHUNK: Final = 1 << 18


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


class FileEdges:
    """A snapshot file's edges section, read again record by record each time it is iterated (the
    plan's pass over the edges): the decoded edges, most of a file, are never all held at once.
    The file stays open from the first pass, so a snapshot written anew meanwhile (writers rename a
    new file over the old) is not what the second pass reads; `close()` once the plan is made."""

    def __init__(self, stream: IO[str], origin: str) -> None:
        self._stream = stream
        self._origin = origin

    def __iter__(self) -> Iterator[Any]:
        self._stream.seek(0)
        for name, records in iter_stream_sections(self._stream, self._origin):
            if name == "edges":
                yield from records
                return

    def close(self) -> None:
        self._stream.close()


class _ReadWholeError(Exception):
    """The file is not one the streamed read takes as it is: read it whole (its own messages)."""


def read_collected_snapshot(path: str | Path) -> tuple[CollectedSnapshot, str]:
    """`read_snapshot_file` that keeps every valid record and lists the others as problems; only a
    whole-file problem (unreadable, not UTF-8 JSON, too deep, not an object) raises.

    Streamed: one pass decodes every section but the edges, which it only steps over; the plan
    reads the edges in a second pass (`CollectedSnapshot.edges_source`, a `FileEdges`) and checks
    their shape as it goes. A file this read refuses, or one with a section named twice, is read
    whole (`json.loads`) instead, so that every error is the one that read gives, with its place."""
    source = Path(path)
    try:
        binary = source.open("rb")
    except OSError:
        return _read_whole(source)
    stream = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    try:
        digest = hashlib.sha256()
        while chunk := binary.read(_HASH_CHUNK):
            digest.update(chunk)
        binary.seek(0)
        data: dict[str, Any] = {}
        for name, records in iter_stream_sections(stream, str(source)):
            if name in data:
                raise _ReadWholeError
            if name == "edges":
                for _ in records:  # stepped over: the plan reads them in its own pass
                    pass
                data[name] = []
            else:
                data[name] = list(records)
        collected = collect_snapshot(data, origin=str(source), edges_raw=True)
    except (SnapshotError, _ReadWholeError, OSError):
        stream.close()
        return _read_whole(source)
    except BaseException:
        stream.close()
        raise
    collected.edges_source = FileEdges(stream, str(source))
    return collected, digest.hexdigest()


def _read_whole(source: Path) -> tuple[CollectedSnapshot, str]:
    """The file read and decoded at once (it raises the whole-file problems, with their place)."""
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
