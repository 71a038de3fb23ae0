"""Snapshot files written and read record by record, so that neither side holds a whole data set.

`SnapshotFileWriter` writes the same bytes as `write_snapshot` (`json.dump(data, indent=0)`), one
section and one record at a time, atomically. `iter_sections` reads any snapshot-shaped JSON file
(an object of lists) one record at a time with the standard library's decoder: memory stays near
one read chunk plus the largest record, whatever the file's size.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from coherence_sql.errors import SnapshotError
from coherence_sql.transfer.snapshot import (
    GRAPH_SECTIONS,
    TASK_SECTION,
    Snapshot,
    fsync_directory,
    load_snapshot,
    parse_snapshot,
)

__all__ = ["CHUNK", "SnapshotFileWriter", "iter_sections", "iter_stream_sections", "load_snapshot_streaming"]

CHUNK: Final = 1 << 20  # bytes read at a time
_DECODER: Final = json.JSONDecoder()
_SPACE: Final = " \t\n\r"


class SnapshotFileWriter:
    """A snapshot file written section by section: a temp file beside the target, renamed over it
    by `commit()` after an fsync (a crash leaves the old file or the new one, never half)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._target = Path(path)
        self._target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self._target.name}.", suffix=".tmp", dir=self._target.parent)
        self._temp = Path(name)
        self._out: IO[str] = os.fdopen(fd, "w", encoding="utf-8")
        self._sections = 0

    async def section(self, name: str, records: AsyncIterable[Any]) -> int:
        """Write `"name": [records…]` as json.dump(indent=0) would; returns how many records."""
        out = self._out
        out.write("{\n" if self._sections == 0 else ",\n")
        out.write(json.dumps(name) + ": ")
        self._sections += 1
        count = 0
        async for record in records:
            out.write("[\n" if count == 0 else ",\n")
            out.write(json.dumps(record, indent=0))
            count += 1
        out.write("[]" if count == 0 else "\n]")
        return count

    def commit(self) -> None:
        self._out.write("{}" if self._sections == 0 else "\n}")
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        os.replace(self._temp, self._target)
        fsync_directory(self._target.parent)  # make the rename itself durable

    def abort(self) -> None:
        self._out.close()
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> SnapshotFileWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class _Reader:
    """A text buffer over a file, refilled by CHUNK; `pos` is the next character to read."""

    def __init__(self, stream: IO[str], origin: str) -> None:
        self._stream = stream
        self.origin = origin
        self.text = ""
        self.pos = 0
        self.eof = False
        self._line = 1  # line of text[0]

    def more(self) -> bool:
        """Read another chunk (dropping what was consumed); False at the end of the file."""
        if self.eof:
            return False
        chunk = self._stream.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self._line += self.text.count("\n", 0, self.pos)
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def skip_space(self) -> str:
        """The next non-space character (not consumed), or "" at the end of the file."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1
            self.pos = pos
            if pos < len(text):
                return text[pos]
            if not self.more():
                return ""

    def expect(self, chars: str, what: str) -> str:
        char = self.skip_space()
        if not char or char not in chars:
            raise self.error(f"expected {what}")
        self.pos += 1
        return char

    def value(self) -> Any:
        """Decode one JSON value at pos, reading more until it is whole."""
        self.skip_space()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # A value cut by the chunk's end fails near the end: read on. Numbers can look whole.
                if self.more():
                    continue
                raise self.error(exc.msg, exc.pos) from None
            except RecursionError:
                raise self.error("JSON nested too deep") from None
            except ValueError:  # an integer longer than int() takes from text (sys.get_int_max_str_digits)
                raise self.error("a number too long to convert") from None
            if end == len(self.text) and not self.eof and self.more():
                continue  # a number or literal may go on in the next chunk
            self.pos = end
            return value

    def error(self, message: str, at: int | None = None) -> SnapshotError:
        at = self.pos if at is None else at
        line = self._line + self.text.count("\n", 0, at)
        column = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return SnapshotError(f"{self.origin}: not valid JSON: {message} at line {line} column {column}")


def iter_sections(path: str | os.PathLike[str]) -> Iterator[tuple[str, Iterator[Any]]]:
    """(section name, its records) in file order; each record is decoded only when its iterator
    reaches it, so a section must be read (or left) before the next one is asked for. A value
    that is not a list is refused with `SnapshotError`, as are bytes that are not UTF-8 JSON."""
    source = Path(path)
    try:
        stream = source.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise SnapshotError(f"{source}: cannot read the snapshot: {exc.strerror or exc}") from None
    with stream:
        yield from iter_stream_sections(stream, str(source))


def iter_stream_sections(stream: IO[str], origin: str) -> Iterator[tuple[str, Iterator[Any]]]:
    """`iter_sections` of a text stream open at the file's start (left open: the caller's)."""
    reader = _Reader(stream, origin)
    try:
        yield from _sections(reader)
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"{origin}: not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise SnapshotError(f"{origin}: cannot read the snapshot: {exc.strerror or exc}") from None


def _sections(reader: _Reader) -> Iterator[tuple[str, Iterator[Any]]]:
    if reader.skip_space() != "{":
        raise SnapshotError(f"{reader.origin}: the top level must be a JSON object")
    reader.pos += 1
    if reader.skip_space() == "}":
        reader.pos += 1
        return
    while True:
        name = reader.value()
        if not isinstance(name, str):
            raise reader.error("expected a section name")
        reader.expect(":", "':'")
        if reader.skip_space() != "[":
            value = reader.value()
            raise SnapshotError(f"{reader.origin}: section {name!r} must be a list, got {type(value).__name__}")
        records = _records(reader)
        yield name, records
        for _ in records:  # the caller left records unread: step over them
            pass
        if reader.expect(",}", "',' or '}'") == "}":
            break
    if reader.skip_space():
        raise reader.error("extra data after the snapshot")


def _records(reader: _Reader) -> Iterator[Any]:
    reader.pos += 1  # the '['
    if reader.skip_space() == "]":
        reader.pos += 1
        return
    while True:
        yield reader.value()
        if reader.expect(",]", "',' or ']'") == "]":
            return


def load_snapshot_streaming(path: str | os.PathLike[str]) -> Snapshot:
    """`load_snapshot` (the same models and the same errors) that holds one section's decoded JSON
    at a time instead of the file's bytes, its text and all its JSON at once. A file it refuses is
    read again by `load_snapshot`, whose message (what is wrong, and where) is the one raised."""
    parts: dict[str, Any] = {}
    try:
        for name, records in iter_sections(path):
            one = parse_snapshot({name: list(records)}, origin=str(path))  # refuses an unknown section
            if name in (*GRAPH_SECTIONS, TASK_SECTION):
                parts[name] = getattr(one, name)
    except SnapshotError:
        return load_snapshot(path)  # raises its own account of the problem (only a bad file gets here)
    return Snapshot(**parts)
