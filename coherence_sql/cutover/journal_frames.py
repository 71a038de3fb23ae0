"""Framed, fsynced record files: the on-disk format of the write journal and the dead-letter file.

Each record is one line `J1 <length> <crc32> <json body>\\n` (ASCII: the body is JSON with
non-ASCII escaped, so it holds no newline). A line whose length or checksum does not match, or
that is not JSON, is unreadable; a last line without its newline is a torn tail (a writer killed
or a disk that filled mid-append). Unreadable records are never dropped silently: they are moved
to a set-aside file beside the log (`<log>.set-aside`, itself framed and append-only) with their
raw text, the reason and the time. Appends repair a torn tail first, so a new record is never
glued onto a fragment, and a failed append truncates what it wrote (best effort; what remains
is a torn tail, repaired by the next append).
"""

from __future__ import annotations

import fcntl
import json
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from coherence_sql.errors import JournalError, JournalWriteError

MAGIC: Final = b"J1"
_CHUNK: Final = 1 << 16


def now_text() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Record:
    """A readable record: its body, its raw line, and whether it is in the first (unframed) format."""

    number: int
    body: dict[str, Any]
    raw: bytes
    legacy: bool = False


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that cannot be read: its raw bytes and why."""

    number: int
    raw: bytes
    reason: str


Slot = Record | Unreadable


def frame(body: dict[str, Any]) -> bytes:
    """One record line for `body` (a JSON object)."""
    data = json.dumps(body, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")
    return b"%s %d %08x %s\n" % (MAGIC, len(data), zlib.crc32(data), data)


def _json_object(data: bytes) -> dict[str, Any] | str:
    """The JSON object in `data`, or why there is none."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(body, dict):
        return f"not a JSON object but {type(body).__name__}"
    return body


def parse_line(number: int, line: bytes) -> Slot:
    """The record on one line (without its newline)."""
    if line.startswith(b"{"):  # the first format: a bare JSON object per line
        legacy = _json_object(line)
        if isinstance(legacy, str):
            return Unreadable(number, line, f"unreadable unframed record: {legacy}")
        return Record(number, legacy, line, legacy=True)
    parts = line.split(b" ", 3)
    if len(parts) != 4 or parts[0] != MAGIC:
        return Unreadable(number, line, "not a journal record (no J1 frame)")
    _, length, checksum, data = parts
    if not length.isdigit() or int(length) != len(data):
        return Unreadable(number, line, f"length mismatch: framed {length[:20]!r}, found {len(data)} bytes")
    if checksum != b"%08x" % zlib.crc32(data):
        return Unreadable(number, line, "checksum mismatch")
    body = _json_object(data)
    if isinstance(body, str):
        return Unreadable(number, line, body)
    return Record(number, body, line)


def parse(data: bytes) -> list[Slot]:
    """Every record in a file's bytes, in order; an unreadable last line without its newline is a
    torn tail."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with its newline
    slots: list[Slot] = []
    for line in lines:
        if line.strip():
            slots.append(parse_line(len(slots) + 1, line))
    if tail.strip():
        last = parse_line(len(slots) + 1, tail)
        # A whole record that only lost its newline is kept, as an append would keep it.
        if isinstance(last, Unreadable):
            last = Unreadable(last.number, tail, "torn tail: the record was cut off while being written")
        slots.append(last)
    return slots


def read_slots(path: Path, what: str) -> list[Slot]:
    """The records of `path` ([] when it does not exist); JournalError when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise JournalError(f"{what} {path} could not be read: {exc.strerror or exc}") from None
    return parse(data)


def write_error(what: str, path: Path, exc: OSError) -> JournalWriteError:
    reason = exc.strerror or str(exc)
    return JournalWriteError(f"{what} {path} could not be written: {reason} (errno {exc.errno})")


def raw_text(raw: bytes) -> str:
    """Raw record bytes as text that gives the same bytes back (encode with surrogateescape)."""
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class SetAsideRecord:
    """A record moved out of a log because it could not be read."""

    raw: str
    reason: str
    source: str
    set_aside_at: str


def _last_newline_end(fd: int, end: int) -> int:
    """The offset just past the last newline before `end` (0 when there is none)."""
    position = end
    while position > 0:
        start = max(0, position - _CHUNK)
        chunk = os.pread(fd, position - start, start)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        position = start
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextmanager
def _open_append(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
    try:
        yield fd
    finally:
        os.close(fd)


TornTailHandler = Callable[[bytes], None]


def _repair_tail(fd: int, on_torn: TornTailHandler | None) -> int:
    """End the file with a whole record (see append_record); returns the new size."""
    end = os.lseek(fd, 0, os.SEEK_END)
    if not end or os.pread(fd, 1, end - 1) == b"\n":
        return end
    start = _last_newline_end(fd, end)
    fragment = os.pread(fd, end - start, start)
    if on_torn is None or isinstance(parse_line(0, fragment), Record):
        _write_all(fd, b"\n")
        return end + 1
    on_torn(fragment)
    os.ftruncate(fd, start)
    os.fsync(fd)
    return start


def repair_tail(path: Path, on_torn: TornTailHandler) -> None:
    """Set a torn tail of `path` aside (if it has one); raises OSError. The caller holds the lock."""
    if not path.exists():
        return
    with _open_append(path) as fd:
        _repair_tail(fd, on_torn)


def append_record(path: Path, record: bytes, on_torn: TornTailHandler | None) -> None:
    """Append one framed record and fsync; raises OSError. The caller holds the file's lock.

    A torn tail is first either completed (a whole record that lost only its newline), handed to
    `on_torn` and cut off, or (without `on_torn`) closed with a newline so it stays an unreadable
    line of its own. A failed write is cut off again so it leaves no partial record.
    """
    with _open_append(path) as fd:
        end = _repair_tail(fd, on_torn)
        try:
            _write_all(fd, record)
            os.fsync(fd)
            if end == 0:  # a file (re)created: its directory entry must survive a power loss too
                fsync_directory(path.parent)
        except OSError:
            # What remains if this fails too is a torn tail: the next append or replay sets it aside.
            with suppress(OSError):
                os.ftruncate(fd, end)
            raise


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(path: Path, data: bytes) -> None:
    """Make `path` hold `data` or keep what it held, even through a crash; raises OSError."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_directory(path.parent)


class SetAsideFile:
    """Where unreadable records of one log go: appended, fsynced, never rewritten or deleted."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, raw: bytes, reason: str, source: str) -> None:
        """Keep one unreadable record; raises OSError (the caller says which log failed)."""
        body = {"raw": raw_text(raw), "reason": reason, "source": source, "set_aside_at": now_text()}
        record = frame(body)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as lock:
            # Appenders of several processes (journal writers, a replayer) take turns.
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                append_record(self.path, record, None)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def records(self) -> list[SetAsideRecord]:
        """Everything set aside, oldest first; a line of this file that is itself unreadable is
        listed with its raw text rather than hidden."""
        found: list[SetAsideRecord] = []
        for slot in read_slots(self.path, "set-aside file"):
            if isinstance(slot, Record):
                body = slot.body
                fields = [body.get(name) for name in ("raw", "reason", "source", "set_aside_at")]
                if all(isinstance(value, str) for value in fields):
                    found.append(SetAsideRecord(*[str(value) for value in fields]))
                    continue
                slot = Unreadable(slot.number, slot.raw, "not a set-aside record")
            found.append(
                SetAsideRecord(raw_text(slot.raw), f"unreadable set-aside record: {slot.reason}", self.path.name, "")
            )
        return found

    def count(self) -> int:
        return len(self.records())
