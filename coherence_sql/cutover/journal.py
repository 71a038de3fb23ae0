"""The write journal: a durable, ordered record of PostgreSQL writes that did not land.

While dual-writing, a PostgreSQL failure never fails the caller: the write is appended here (one
framed record, fsynced; see journal_frames.py) and every later PostgreSQL write follows it into the
journal until a replay has drained it, so PostgreSQL receives writes in the order memory did.
`replay()` (used by `coherence-sql reconcile` and by the cut-over stores themselves) applies the
entries in order. The arguments are kept with their exact types (journal_codec.py). A record that
cannot be read (torn by a crash, corrupt, undecodable) is moved to `<journal>.set-aside` and never
blocks the records after it. Writes PostgreSQL refused on their data go to `.dead_letters`.
"""

from __future__ import annotations

import fcntl
import inspect
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from coherence_sql.cutover.deadletters import DeadLetterFile
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
    parse_line,
    read_slots,
    repair_tail,
    write_error,
)
from coherence_sql.errors import JournalError
from coherence_sql.stores.protocol import AgentTaskStore, GraphStore

StoreName = Literal["graph", "tasks"]
_PROTOCOLS: dict[str, type] = {"graph": GraphStore, "tasks": AgentTaskStore}
_WHAT = "the write journal"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    store: StoreName
    op: str
    kwargs: dict[str, Any]
    recorded_at: str


@dataclass(slots=True)
class ReplayReport:
    applied: int = 0
    already_applied: int = 0
    remaining: int = 0
    error: str | None = None
    failed_entries: list[str] = field(default_factory=list)
    set_aside: int = 0  # unreadable records this replay moved to the set-aside file

    @property
    def complete(self) -> bool:
        return self.error is None and self.remaining == 0


@cache
def _signature(store: str, op: str) -> inspect.Signature:
    method = getattr(_PROTOCOLS.get(store), op, None) if isinstance(op, str) else None
    if method is None or op.startswith("_") or not callable(method):
        raise JournalError(f"journal: {store}.{op} is not a store method")
    return inspect.signature(method)


@cache
def _parameter_names(store: str, op: str) -> tuple[frozenset[str], frozenset[str]]:
    """The names a store method takes, and those it requires (all of its parameters are named)."""
    parameters = [parameter for name, parameter in _signature(store, op).parameters.items() if name != "self"]
    required = {p.name for p in parameters if p.default is inspect.Parameter.empty}
    return frozenset(p.name for p in parameters), frozenset(required)


def _checked_call(store: object, op: object, kwargs: object) -> tuple[StoreName, str, dict[str, Any]]:
    """The write's store, operation and arguments, refused unless the store method takes them."""
    if not isinstance(store, str) or not isinstance(op, str):
        raise JournalError(f"journal: store and operation must be text, got {store!r}.{op!r}")
    taken, required = _parameter_names(store, op)
    if type(kwargs) is not dict or not all(type(name) is str for name in kwargs):
        raise JournalError(f"journal: {store}.{op} arguments must be a dict by name, got {type(kwargs).__name__}")
    if not kwargs.keys() <= taken or not required <= kwargs.keys():
        unknown, missing = sorted(kwargs.keys() - taken), sorted(required - kwargs.keys())
        raise JournalError(f"journal: {store}.{op} does not take these arguments: unknown {unknown}, missing {missing}")
    return cast(StoreName, store), op, kwargs


def encode(store: StoreName, op: str, kwargs: dict[str, Any]) -> str:
    """One journal record (without its newline); JournalError for an unknown operation, arguments
    it does not take, or a value of a type the journal cannot keep exactly."""
    store, op, kwargs = _checked_call(store, op, kwargs)
    body = {"store": store, "op": op, "kwargs": encode_value(kwargs), "recorded_at": now_text()}
    return frame(body).decode("ascii").rstrip("\n")


# -- the first format: unframed JSON lines, arguments decoded through the method's signature -----


@cache
def _arguments_model(store: str, op: str) -> type[BaseModel]:
    method = getattr(_PROTOCOLS[store], op)
    hints = get_type_hints(method)
    fields: dict[str, Any] = {}
    for name, parameter in _signature(store, op).parameters.items():
        if name == "self":
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hints[name], default)
    model: type[BaseModel] = create_model(
        f"{store}_{op}_args", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
    )
    return model


def _legacy_kwargs(store: str, op: str, raw: object) -> dict[str, Any]:
    try:
        parsed = _arguments_model(store, op).model_validate(raw)
    except ValidationError as exc:
        raise JournalError(f"journal: unreadable first-format entry: {exc}") from None
    return {name: getattr(parsed, name) for name in type(parsed).model_fields}


def entry_from_record(record: Record) -> JournalEntry:
    """The entry a readable record holds; JournalError when it is not a valid journal entry."""
    body = record.body
    store, op, recorded_at = body.get("store"), body.get("op"), body.get("recorded_at")
    if not isinstance(store, str) or not isinstance(op, str) or not isinstance(recorded_at, str):
        raise JournalError("journal: entry without its store, operation or recorded_at time")
    _signature(store, op)
    kwargs = _legacy_kwargs(store, op, body.get("kwargs")) if record.legacy else decode_value(body.get("kwargs"))
    store, op, kwargs = _checked_call(store, op, kwargs)
    return JournalEntry(store=store, op=op, kwargs=kwargs, recorded_at=recorded_at)


def decode(line: str, where: str) -> JournalEntry:
    """The entry on one journal line; JournalError naming `where` when it cannot be read."""
    try:
        raw = line.rstrip("\n").encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise JournalError(f"journal {where}: unreadable entry: not text a journal file can hold") from None
    slot = parse_line(1, raw)
    if isinstance(slot, Unreadable):
        raise JournalError(f"journal {where}: unreadable entry: {slot.reason}")
    try:
        return entry_from_record(slot)
    except JournalError as exc:
        raise JournalError(f"journal {where}: unreadable entry: {exc}") from None


class WriteJournal:
    """An append-only file of framed records with a replay that survives being interrupted."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        self.path = path
        self.replaying = path.with_name(path.name + ".replaying")
        self.progress = path.with_name(path.name + ".progress")
        self.set_aside = SetAsideFile(path.with_name(path.name + ".set-aside"))
        self.dead_letters = DeadLetterFile(path.with_name(path.name + ".dead-letters"))
        self._lock_path = path.with_name(path.name + ".lock")
        self._replay_lock_path = path.with_name(path.name + ".replay-lock")
        # Appends made through this object (attempted: one that failed only makes a watcher look).
        self.appends = 0

    @contextmanager
    def _flock(self, lock_path: Path, flags: int) -> Iterator[bool]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a")  # noqa: SIM115 - held for the whole block below
        except OSError as exc:
            raise write_error(_WHAT, lock_path, exc) from None
        with handle:
            try:
                fcntl.flock(handle, flags)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _replaying_alone(self) -> Iterator[bool]:
        """Whether this process may replay: one replayer at a time, for the whole replay, so no
        entry is applied twice and no replayer removes a file another has not finished."""
        with self._flock(self._replay_lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB) as alone:
            yield alone

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._flock(self._lock_path, fcntl.LOCK_EX):
            yield

    def active(self) -> bool:
        """Whether writes are waiting: then new writes must queue behind them."""
        try:
            return self.replaying.exists() or self.path.stat().st_size > 0
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise JournalError(f"{_WHAT} {self.path} could not be read: {exc.strerror or exc}") from None

    def _set_aside_torn_tail(self, fragment: bytes) -> None:
        self.set_aside.add(fragment, "torn tail: the record was cut off while being written", self.path.name)

    def append(self, store: StoreName, op: str, kwargs: dict[str, Any]) -> None:
        """Record one write, durably; JournalError (at write time, not at replay) for a value the
        journal cannot keep, JournalWriteError when the file cannot be written (disk full, I/O)."""
        self.appends += 1  # before the write: a watcher (journal_watch.py) must never miss one
        record = (encode(store, op, kwargs) + "\n").encode("ascii")
        with self._locked():
            try:
                append_record(self.path, record, self._set_aside_torn_tail)
            except OSError as exc:
                raise write_error(_WHAT, self.path, exc) from None

    def _slots(self, path: Path) -> list[Slot]:
        return read_slots(path, _WHAT)

    def _done_count(self) -> int:
        try:
            return int(self.progress.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0
        except OSError as exc:
            raise JournalError(f"{_WHAT} {self.progress} could not be read: {exc.strerror or exc}") from None

    def _set_progress(self, done: int) -> None:
        """Overwrite the count in place, fixed width: one small write is all or nothing when the
        replayer is killed, and needs no new disk space once the file exists."""
        try:
            fd = os.open(self.progress, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                os.pwrite(fd, b"%020d\n" % done, 0)
            finally:
                os.close(fd)
        except OSError as exc:
            raise write_error(_WHAT, self.progress, exc) from None

    def pending(self) -> int:
        """How many writes still have to reach PostgreSQL (records whose frame is intact)."""
        with self._locked():
            waiting = 0
            if self.replaying.exists():
                slots = self._slots(self.replaying)[self._done_count() :]
                waiting = sum(isinstance(slot, Record) for slot in slots)
            return waiting + sum(isinstance(slot, Record) for slot in self._slots(self.path))

    def oldest_pending_at(self) -> datetime | None:
        """When the oldest write still waiting for PostgreSQL was journaled (None: none waits).

        Read from the first intact record's `recorded_at`; a record without a readable time is
        skipped (the replay will set it aside), so the age is never made up."""
        with self._locked():
            slots: list[Slot] = []
            if self.replaying.exists():
                slots = self._slots(self.replaying)[self._done_count() :]
            for slot in [*slots, *self._slots(self.path)]:
                if not isinstance(slot, Record):
                    continue
                recorded_at = slot.body.get("recorded_at")
                try:
                    when = datetime.fromisoformat(recorded_at) if isinstance(recorded_at, str) else None
                except ValueError:
                    when = None
                if when is not None:
                    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            return None

    def set_aside_count(self) -> int:
        """How many unreadable records were moved out of this journal (kept in `set_aside.path`)."""
        return self.set_aside.count()

    def set_aside_records(self) -> list[SetAsideRecord]:
        return self.set_aside.records()

    async def replay(
        self,
        apply: Callable[[JournalEntry], Awaitable[bool]],
    ) -> ReplayReport:
        """Apply every entry in order; `apply` returns False when the write had already landed.

        Stops at the first failure (PostgreSQL still away) and keeps its place for the next call.
        An unreadable record is set aside and skipped. When another replay is under way (the
        API's background replay, `coherence-sql reconcile`), returns at once with `error` saying
        so and nothing applied.
        """
        with self._replaying_alone() as alone:
            if not alone:
                return ReplayReport(error="another replay of this journal is under way", remaining=self.pending())
            return await self._replay(apply)

    def _take_journal(self, report: ReplayReport) -> bool:
        """Move the journal aside for replaying (under the lock); False when there is nothing."""

        def set_aside_torn_tail(fragment: bytes) -> None:
            self._set_aside_torn_tail(fragment)
            report.set_aside += 1

        with self._locked():
            if self.replaying.exists():
                return True
            try:
                # Close a torn tail first so the file replayed ends with a whole record.
                repair_tail(self.path, set_aside_torn_tail)
                if not self.path.exists() or self.path.stat().st_size == 0:
                    self.path.unlink(missing_ok=True)
                    return False
                # The count is reset before the file it counts exists: a stale one never applies.
                self._set_progress(0)
                os.replace(self.path, self.replaying)
            except OSError as exc:
                raise write_error(_WHAT, self.path, exc) from None
            return True

    def _set_aside_slot(self, slot: Unreadable | Record, reason: str) -> None:
        source = f"{self.replaying.name} record {slot.number}"
        try:
            self.set_aside.add(slot.raw, reason, source)
        except OSError as exc:
            raise write_error(_WHAT, self.set_aside.path, exc) from None

    async def _replay(self, apply: Callable[[JournalEntry], Awaitable[bool]]) -> ReplayReport:
        report = ReplayReport()
        while self._take_journal(report):
            slots = self._slots(self.replaying)
            for index in range(self._done_count(), len(slots)):
                slot = slots[index]
                entry: JournalEntry | None = None
                if isinstance(slot, Unreadable):
                    self._set_aside_slot(slot, slot.reason)
                else:
                    try:
                        entry = entry_from_record(slot)
                    except JournalError as exc:
                        self._set_aside_slot(slot, str(exc))
                if entry is None:
                    report.set_aside += 1
                    self._set_progress(index + 1)
                    continue
                try:
                    landed = await apply(entry)
                except Exception as exc:
                    report.error = f"{entry.store}.{entry.op}: {exc}"
                    report.failed_entries.append(f"{self.replaying.name} record {slot.number}")
                    report.remaining = self.pending()
                    return report
                if landed:
                    report.applied += 1
                else:
                    report.already_applied += 1
                self._set_progress(index + 1)
            with self._locked():
                try:
                    self.replaying.unlink(missing_ok=True)
                    self.progress.unlink(missing_ok=True)
                except OSError as exc:
                    raise write_error(_WHAT, self.replaying, exc) from None
        return report
