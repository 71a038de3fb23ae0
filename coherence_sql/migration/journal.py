"""The write journal: a durable, ordered record of PostgreSQL writes that did not land.

While dual-writing, a PostgreSQL failure never fails the caller: the write is appended here (one
JSON line, fsynced) and every later PostgreSQL write follows it into the journal until a replay
has drained it, so PostgreSQL receives writes in the order memory did. `replay()` (used by
`coherence-sql reconcile` and by the migrating stores themselves) applies the entries in order.
"""

from __future__ import annotations

import fcntl
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import to_jsonable_python

from coherence_sql.errors import JournalError
from coherence_sql.stores.protocol import AgentTaskStore, GraphStore

StoreName = Literal["graph", "tasks"]
_PROTOCOLS: dict[str, type] = {"graph": GraphStore, "tasks": AgentTaskStore}


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

    @property
    def complete(self) -> bool:
        return self.error is None and self.remaining == 0


@cache
def _arguments_model(store: str, op: str) -> type[BaseModel]:
    """A pydantic model of one store method's arguments, from the protocol's signature, so that
    journal lines decode back to exactly the types the method takes (UUID, Decimal, models...)."""
    method = getattr(_PROTOCOLS[store], op, None)
    if method is None or op.startswith("_"):
        raise JournalError(f"journal: {store}.{op} is not a store method")
    hints = get_type_hints(method)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(method).parameters.items():
        if name == "self":
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hints[name], default)
    model: type[BaseModel] = create_model(
        f"{store}_{op}_args", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
    )
    return model


def encode(store: StoreName, op: str, kwargs: dict[str, Any]) -> str:
    _arguments_model(store, op)  # fail on an unknown op now, not at replay
    line = {
        "store": store,
        "op": op,
        "kwargs": to_jsonable_python(kwargs),
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    return json.dumps(line, separators=(",", ":"), sort_keys=True)


def decode(line: str, where: str) -> JournalEntry:
    try:
        raw = json.loads(line)
        model = _arguments_model(raw["store"], raw["op"])
        parsed = model.model_validate(raw["kwargs"])
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise JournalError(f"journal {where}: unreadable entry: {exc}") from None
    kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
    return JournalEntry(store=raw["store"], op=raw["op"], kwargs=kwargs, recorded_at=raw["recorded_at"])


class WriteJournal:
    """An append-only JSON-lines file with a replay that survives being interrupted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replaying = path.with_name(path.name + ".replaying")
        self.progress = path.with_name(path.name + ".progress")
        self._lock_path = path.with_name(path.name + ".lock")
        self._replay_lock_path = path.with_name(path.name + ".replay-lock")

    @contextmanager
    def _replaying_alone(self) -> Iterator[bool]:
        """Whether this process may replay: one replayer at a time, for the whole replay, so no
        entry is applied twice and no replayer removes a file another has not finished."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._replay_lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def active(self) -> bool:
        """Whether writes are waiting: then new writes must queue behind them."""
        try:
            return self.replaying.exists() or self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def append(self, store: StoreName, op: str, kwargs: dict[str, Any]) -> None:
        line = encode(store, op, kwargs) + "\n"
        with self._locked(), open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def _read(self, path: Path) -> list[JournalEntry]:
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [decode(line, f"{path.name}:{i + 1}") for i, line in enumerate(lines) if line.strip()]

    def _done_count(self) -> int:
        try:
            return int(self.progress.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def pending(self) -> int:
        """How many writes still have to reach PostgreSQL."""
        with self._locked():
            replaying = len(self._read(self.replaying)) - self._done_count() if self.replaying.exists() else 0
            return replaying + len(self._read(self.path))

    async def replay(
        self,
        apply: Callable[[JournalEntry], Awaitable[bool]],
    ) -> ReplayReport:
        """Apply every entry in order; `apply` returns False when the write had already landed.

        Stops at the first failure (PostgreSQL still away) and keeps its place for the next call.
        When another replay is under way (the API's background replay, `coherence-sql reconcile`),
        returns at once with `error` saying so and nothing applied.
        """
        with self._replaying_alone() as alone:
            if not alone:
                return ReplayReport(error="another replay of this journal is under way", remaining=self.pending())
            return await self._replay(apply)

    async def _replay(self, apply: Callable[[JournalEntry], Awaitable[bool]]) -> ReplayReport:
        report = ReplayReport()
        while True:
            with self._locked():
                if not self.replaying.exists():
                    if not self.path.exists() or self.path.stat().st_size == 0:
                        self.path.unlink(missing_ok=True)
                        return report
                    os.replace(self.path, self.replaying)
                    self.progress.write_text("0")
            entries = self._read(self.replaying)
            done = self._done_count()
            for index in range(done, len(entries)):
                entry = entries[index]
                try:
                    landed = await apply(entry)
                except Exception as exc:
                    report.error = f"{entry.store}.{entry.op}: {exc}"
                    report.remaining = self.pending()
                    return report
                if landed:
                    report.applied += 1
                else:
                    report.already_applied += 1
                self.progress.write_text(str(index + 1))
            with self._locked():
                self.replaying.unlink(missing_ok=True)
                self.progress.unlink(missing_ok=True)
