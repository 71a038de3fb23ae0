"""verify's source as sections of records that can be read twice: a snapshot file streamed record by
record (validated in chunks, never a whole section), or records already in memory (a `Snapshot`, the
memory stores' contents)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, NoReturn, Protocol

from coherence_sql.errors import SnapshotError
from coherence_sql.transfer.snapshot import (
    GRAPH_SECTIONS,
    PROBLEMS_KEY,
    TASK_SECTION,
    Snapshot,
    load_snapshot,
    parse_snapshot,
)
from coherence_sql.transfer.snapshot_file import iter_sections

__all__ = ["CHUNK_RECORDS", "FileSource", "MemorySource", "RepeatedSectionError", "Source", "whole_file"]

CHUNK_RECORDS: Final = 2_000  # decoded records validated at a time (a few MB at most)


class RepeatedSectionError(Exception):
    """A file names a section twice: `load_snapshot` (json.loads) keeps the last one, which a stream
    cannot do after reading the first; such a file is read whole instead (`whole_file`)."""


class Source(Protocol):
    """Sections of models in the source's order, each to be read before the next is asked for;
    `sections()` can be called again (verify's second pass). A section left unread is skipped."""

    def sections(self) -> Iterator[tuple[str, Iterable[Any]]]: ...


class MemorySource:
    """Records in memory (a `Snapshot`): the same lists on every pass. The agent tasks' section is
    there only when the snapshot has one."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def sections(self) -> Iterator[tuple[str, Iterable[Any]]]:
        for name in GRAPH_SECTIONS:
            yield name, getattr(self._snapshot, name)
        if self._snapshot.agent_tasks is not None:
            yield TASK_SECTION, self._snapshot.agent_tasks


class FileSource:
    """A snapshot file read record by record on each pass, each record validated by the models as
    `load_snapshot` validates it. A file refused is read again by `load_snapshot`, whose message
    (what is wrong, and where) is the one raised, as `load_snapshot_streaming` does; a file that
    changes between two passes is refused (the passes would compare different data)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._identity: tuple[int, ...] | None = None

    def sections(self) -> Iterator[tuple[str, Iterable[Any]]]:
        self._check_unchanged()
        seen: set[str] = set()
        try:
            for name, records in iter_sections(self.path):
                if name == PROBLEMS_KEY:  # the quarantine's reasons: not records, as load_snapshot
                    continue
                if name not in (*GRAPH_SECTIONS, TASK_SECTION):
                    parse_snapshot({name: []}, origin=str(self.path))  # raises: an unknown section
                if name in seen:
                    raise RepeatedSectionError(f"{self.path}: section {name!r} appears twice")
                seen.add(name)
                yield name, self._validated(name, records)
        except SnapshotError as exc:
            self._refused(exc)

    def _validated(self, name: str, records: Iterator[Any]) -> Iterator[Any]:
        try:
            chunk: list[Any] = []
            for record in records:
                chunk.append(record)
                if len(chunk) == CHUNK_RECORDS:
                    yield from getattr(parse_snapshot({name: chunk}, origin=str(self.path)), name)
                    chunk = []
            yield from getattr(parse_snapshot({name: chunk}, origin=str(self.path)), name)
        except SnapshotError as exc:
            self._refused(exc)

    def _refused(self, exc: SnapshotError) -> NoReturn:
        # A chunk's message names the record's index within the chunk: load_snapshot names it in
        # the file (only a bad file pays for the whole read).
        load_snapshot(self.path)
        raise exc

    def _check_unchanged(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            return  # iter_sections raises the SnapshotError that says why
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if self._identity is None:
            self._identity = identity
        elif identity != self._identity:
            raise SnapshotError(f"{self.path}: the snapshot changed while verify read it; run verify again")


def whole_file(path: str | os.PathLike[str]) -> MemorySource:
    """The file read whole by `load_snapshot`, as verify read every file before (only the odd file
    with a section named twice pays for it)."""
    return MemorySource(load_snapshot(path))
