"""The dead-letter file: dual-writes PostgreSQL refused on their data, kept until an operator acts.

A write memory accepted and PostgreSQL refused with a verdict on the data itself (an integrity or
data exception) is not retried like a journaled one: it is appended here, durably, with its full
arguments (the journal's exact codec), the error and the time, under a stable id. `coherence-sql
reconcile` lists them and replays them after a fix; `remove(ids)` drops the ones dealt with by
rewriting the file atomically. Same framing as the journal (journal_frames.py): a torn or corrupt
record is moved to `<file>.set-aside`, never dropped.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast
from uuid import uuid4

from coherence_sql.cutover.journal_codec import decode_value, encode_value
from coherence_sql.cutover.journal_frames import (
    Record,
    SetAsideFile,
    SetAsideRecord,
    Slot,
    Unreadable,
    append_record,
    frame,
    now_text,
    read_slots,
    replace_atomically,
    write_error,
)
from coherence_sql.errors import JournalError

_WHAT = "the dead-letter file"
_STORES = ("graph", "tasks")
DeadLetterStore = Literal["graph", "tasks"]  # journal.StoreName (journal.py imports this module)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One write PostgreSQL refused: what was written, why it was refused, when."""

    id: str
    store: DeadLetterStore
    op: str
    kwargs: dict[str, Any]
    error: str
    recorded_at: str


def _dead_letter(record: Record) -> DeadLetter:
    body = record.body
    texts = [body.get(name) for name in ("id", "store", "op", "recorded_at")]
    if record.legacy or not all(isinstance(text, str) for text in texts):
        raise JournalError("not a dead-letter record")
    ident, store, op, recorded_at = cast(list[str], texts)
    if store not in _STORES:
        raise JournalError(f"unknown store {store!r}")
    kwargs = decode_value(body.get("kwargs"))
    error = decode_value(body.get("error"))
    if type(kwargs) is not dict or not isinstance(error, str):
        raise JournalError("dead letter without its arguments or its error")
    return DeadLetter(
        id=ident, store=cast(DeadLetterStore, store), op=op, kwargs=kwargs, error=error, recorded_at=recorded_at
    )


class DeadLetterFile:
    """An append-only file of dead letters; `remove` rewrites it without the ones given."""

    def __init__(self, path: Path) -> None:
        self.path = path = Path(path)
        self.set_aside = SetAsideFile(path.with_name(path.name + ".set-aside"))
        self._lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self._lock_path, "a")  # noqa: SIM115 - held for the whole block below
        except OSError as exc:
            raise write_error(_WHAT, self._lock_path, exc) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _set_aside_torn_tail(self, fragment: bytes) -> None:
        self.set_aside.add(fragment, "torn tail: the record was cut off while being written", self.path.name)

    def append(self, store: str, op: str, kwargs: dict[str, Any], error: str) -> DeadLetter:
        """Keep one refused write, durably; JournalError for a value the codec cannot keep,
        JournalWriteError when the file cannot be written."""
        if store not in _STORES or not isinstance(op, str) or type(kwargs) is not dict:
            raise JournalError(f"dead letter: {store!r}.{op!r} with {type(kwargs).__name__} arguments is not a write")
        letter = DeadLetter(
            id=uuid4().hex,
            store=cast(DeadLetterStore, store),
            op=op,
            kwargs=kwargs,
            error=str(error),
            recorded_at=now_text(),
        )
        body = {
            "id": letter.id,
            "store": store,
            "op": op,
            "kwargs": encode_value(kwargs),
            "error": encode_value(letter.error),
            "recorded_at": letter.recorded_at,
        }
        record = frame(body)
        with self._locked():
            try:
                append_record(self.path, record, self._set_aside_torn_tail)
            except OSError as exc:
                raise write_error(_WHAT, self.path, exc) from None
        return letter

    def _sorted(self) -> tuple[list[tuple[Record, DeadLetter]], list[tuple[Slot, str]]]:
        """The readable dead letters with their records, and the unreadable records with why."""
        letters: list[tuple[Record, DeadLetter]] = []
        unreadable: list[tuple[Slot, str]] = []
        for slot in read_slots(self.path, _WHAT):
            if isinstance(slot, Unreadable):
                unreadable.append((slot, slot.reason))
                continue
            try:
                letters.append((slot, _dead_letter(slot)))
            except JournalError as exc:
                unreadable.append((slot, str(exc)))
        return letters, unreadable

    def _rewrite(self, keep: list[Record], unreadable: list[tuple[Slot, str]]) -> None:
        """The file with only `keep`; the unreadable records go to the set-aside file first."""
        try:
            for slot, reason in unreadable:
                self.set_aside.add(slot.raw, reason, f"{self.path.name} record {slot.number}")
            replace_atomically(self.path, b"".join(record.raw + b"\n" for record in keep))
        except OSError as exc:
            raise write_error(_WHAT, self.path, exc) from None

    def read(self) -> list[DeadLetter]:
        """Every dead letter, oldest first. Unreadable records are moved to the set-aside file."""
        with self._locked():
            letters, unreadable = self._sorted()
            if unreadable:
                self._rewrite([record for record, _ in letters], unreadable)
        return [letter for _, letter in letters]

    def count(self) -> int:
        """How many dead letters are readable (a read-only count: nothing is moved)."""
        with self._locked():
            return len(self._sorted()[0])

    def remove(self, ids: Iterable[str]) -> int:
        """Drop the dead letters with these ids (an operator replayed or discarded them); returns
        how many were removed. Ids not in the file are ignored."""
        wanted = {str(ident) for ident in ids}
        with self._locked():
            letters, unreadable = self._sorted()
            keep = [record for record, letter in letters if letter.id not in wanted]
            removed = len(letters) - len(keep)
            if removed or unreadable:
                self._rewrite(keep, unreadable)
        return removed

    def set_aside_count(self) -> int:
        return self.set_aside.count()

    def set_aside_records(self) -> list[SetAsideRecord]:
        return self.set_aside.records()
