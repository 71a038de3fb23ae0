"""The progress callback the transfer's long operations take (the command line draws it; a library
caller passes its own or nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Progress"]

Progress: TypeAlias = Callable[[str, int, int], None]
"""Called as `progress(what, done, total)`: `what` is the step or section under way, `done` of
`total` units (records for a backfill, tables for a read of PostgreSQL) are finished."""
