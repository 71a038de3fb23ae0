"""A fixed-size digest of a projected value, so that verify keeps 16 bytes per key instead of the value.

The digest is blake2b (16 bytes) of the `repr` of a canonical form in which two values have the
same text only if they are equal as the comparison sees them (`==`). `repr` tells the types apart
(`1`, `1.0`, `'1'`, `True`, `Decimal('1')`) and is written in C, which matters at a million keys;
the canonical form adds what `repr` would get wrong: a dict's keys sorted (jsonb reorders them),
an amount's trailing zeros dropped (`100.10` = `100.1`), containers tagged so that a list, a tuple,
a dict and an amount never read alike, and NaN, which is not equal to itself, never equal to
anything. Equal values usually get equal digests too, but not always (`1` and `1.0`, an enum and
its text, two offsets of one instant): such a pair only sends the key to verify's last pass, which
compares the values themselves, so a digest can cost work but never hide a difference (bar a
128-bit collision). A type not listed here is never equal to anything, for the same reason.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal
from hashlib import blake2b
from typing import Any, Final
from uuid import UUID

__all__ = ["DIGEST_SIZE", "digest"]

DIGEST_SIZE: Final = 16
# Types whose repr is already canonical: equal values, same text; unequal values, other text.
_PLAIN: Final = frozenset({str, int, bool, type(None), datetime, UUID})


class _NeverEqual:
    """Stands for a value equal to nothing (NaN, an unknown type): a repr no other value has."""

    _numbers: Final = itertools.count()

    def __init__(self) -> None:
        self._n = next(self._numbers)

    def __repr__(self) -> str:
        return f"<never equal {self._n}>"


def digest(value: Any) -> bytes:
    """16 bytes that differ whenever `value` differs (by `==`) from another value's."""
    kind = type(value)
    if kind is UUID:
        data = b"u" + value.bytes  # the usual id (an asyncpg UUID takes the path below: the same bytes)
    elif kind is str or (kind is tuple and _PLAIN.issuperset(map(type, value))):
        # the usual key or row (a tagged tuple has one element more: never alike)
        data = repr(value).encode("utf-8", "surrogatepass")
    elif isinstance(value, UUID):
        data = b"u" + value.bytes
    else:
        data = repr(_canonical(value)).encode("utf-8", "surrogatepass")
    return blake2b(data, digest_size=DIGEST_SIZE).digest()


def _canonical(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, str):  # a str enum: by its text (equal to it)
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):  # an int enum
        return int(value)
    if isinstance(value, float):
        return value if value == value else _NeverEqual()
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, UUID | datetime | date):  # asyncpg's UUID: the same repr as uuid.UUID's
        return value
    if isinstance(value, dict):
        items = sorted((repr(_canonical(k)), _canonical(v)) for k, v in value.items())
        return ("{", *items)
    if isinstance(value, list):
        return ("[", *map(_canonical, value))
    if isinstance(value, tuple):
        return ("(", *map(_canonical, value))
    return _NeverEqual()


def _decimal(value: Decimal) -> Any:
    if value.is_nan():
        return _NeverEqual()
    if value.is_infinite():
        return ("d", str(value))
    if not value:
        return ("d", 0)  # 0, 0.00 and -0 are equal
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    end = len(digits)
    while digits[end - 1] == 0:  # exact, unlike normalize(), which rounds past 28 digits
        end -= 1
    return ("d", sign, digits[:end], exponent + len(digits) - end)
