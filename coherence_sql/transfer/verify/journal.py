"""The dual-write journal as verify reads it: writes still on their way to PostgreSQL, dead letters."""

from __future__ import annotations

from pathlib import Path

from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.errors import JournalError
from coherence_sql.transfer.verify.report import JournalBacklog

__all__ = ["read_journal"]


def read_journal(path: Path) -> JournalBacklog:
    """How many writes `path`'s journal still holds for PostgreSQL, and its dead letters.

    A journal whose directory does not exist is reported as absent without creating anything
    (the journal's lock file would otherwise be created by a read-only check)."""
    if not path.parent.is_dir():
        return JournalBacklog(str(path), exists=False)
    journal = WriteJournal(path)
    try:
        pending = journal.pending()
        dead = journal.dead_letters.count()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    exists = pending > 0 or dead > 0 or path.exists() or journal.dead_letters.path.exists()
    return JournalBacklog(str(path), exists=exists, pending=pending, dead_letters=dead)
