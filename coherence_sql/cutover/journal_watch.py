"""Whether writes wait in the journal, asked on every dual-write and routed read without a stat.

`WriteJournal.active()` looks at two files (~14 µs of client CPU, most of it the exception a
missing file raises). The answer changes in three ways: this process appends (the journal becomes
active), a replay drains it (this process's background replay or `coherence-sql reconcile` in
another: it becomes empty), or another process appends (nothing in the design does; a second API
process given the same journal path would). So:

- while the journal may hold writes, every question looks at the files, as before: a replay that
  drained it is seen at once (and a write that finds it active appends, which costs far more);
- an append through the `WriteJournal` object watched (the cut-over stores', which is how this
  process journals) is seen at once: `WriteJournal.appends` counts them;
- while it was empty, the files are looked at again once `recheck_s` has passed since the last
  look, so an append by another process (or another object) is seen within `recheck_s` (100 ms
  by default); a write in that window may reach PostgreSQL ahead of it, which is no order the two
  processes had anyway (each has its own memory store and its own write order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from coherence_sql.cutover.journal import WriteJournal

RECHECK_S: Final = 0.1


class JournalWatch:
    __slots__ = ("_appends_seen", "_clock", "_maybe_active", "_next_look", "journal", "recheck_s")

    def __init__(
        self, journal: WriteJournal, *, recheck_s: float = RECHECK_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.journal = journal
        self.recheck_s = recheck_s
        self._clock = clock
        self._maybe_active = True  # nothing known yet: look
        self._appends_seen = journal.appends
        self._next_look = 0.0

    def active(self) -> bool:
        """`journal.active()`, exact for this process's appends and drains, and for another
        process's appends once `recheck_s` has passed. Raises what `journal.active()` raises."""
        journal = self.journal
        if not self._maybe_active and journal.appends == self._appends_seen:
            now = self._clock()
            if now < self._next_look:
                return False
        self._maybe_active = True  # until a look says otherwise: a look that raises looks again
        self._appends_seen = journal.appends
        active = journal.active()
        self._maybe_active = active
        if not active:
            self._next_look = self._clock() + self.recheck_s
        return active
