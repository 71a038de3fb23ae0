"""Which side serves a read: a stable hash of the entity key, so one key always reads one side.

Keyed reads use `crc32(key) % 100 < percent` (deterministic across processes and restarts, unlike
`hash()`); reads with no single key (lists, counts, searches) are routed per call at random.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from uuid import UUID


def bucket(key: str) -> int:
    """The key's bucket in 0..99."""
    # surrogatepass: a key holding a lone surrogate still has a bucket (the stores then refuse it
    # with a typed error, or find nothing); plain UTF-8 would raise UnicodeEncodeError here.
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % 100


def entity_key(kind: str, *parts: object) -> str:
    """A routing key: the entity kind plus its identity, case-folded like the stores' keys.

    Never raises: a part that is no key the stores accept (a model, a huge int, a nested value)
    gets a placeholder, and the store the call then reaches refuses it with a typed error.
    """
    return kind + ":" + "/".join(map(_key_part, parts))


def _key_part(part: object) -> str:
    if isinstance(part, str):
        return part.lower()
    if isinstance(part, UUID):
        return str(part)
    return f"<{type(part).__name__}>"


class ReadRouter:
    """Decides, for a read, whether PostgreSQL serves it at the current percentage."""

    def __init__(self, percent: int, draw: Callable[[], float] = random.random) -> None:
        self.percent = percent
        self._draw = draw

    def keyed(self, key: str) -> bool:
        return bucket(key) < self.percent

    def unkeyed(self) -> bool:
        if self.percent <= 0:
            return False
        if self.percent >= 100:
            return True
        return self._draw() * 100 < self.percent
