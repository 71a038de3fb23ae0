"""The journal's value codec: store arguments to a flat list of JSON tokens and back, exactly.

A journaled write must replay with exactly the values memory accepted, so every value is written
with its type: `decode_value(encode_value(v))` is equal to `v` and of the same types all the way
down (str with lone surrogates, huge ints, -0.0/NaN/inf floats, Decimals with their exponent,
UUIDs, naive and aware datetimes, dates, the enums and pydantic models of `coherence_sql.models`
by class, lists vs tuples, dicts and OrderedDicts with any hashable keys, sets, bytes). The
encoding is a flat, prefix-ordered token list (a tag string, then the payload), so a value nested
100,000 levels deep needs neither recursion here nor deep nesting in the JSON that carries it.
Models are rebuilt with
`model_construct` from the field values they held, so no validator runs again and changes them.
A value of any other type is refused when it is written (`JournalError` naming the type), never
at replay.
"""

from __future__ import annotations

import base64
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Any, NamedTuple, TypeAlias
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from coherence_sql import models
from coherence_sql.errors import JournalError
from coherence_sql.stores.protocol import DependencyEdge

Token: TypeAlias = bool | int | float | str | None

# Ints beyond this go as hex text: JSON readers refuse more than 4300 decimal digits.
_INT_BOUND = 1 << 63

# Classes journaled by name: the models and enums of the contract, and the edge tuple.
_MODELS: dict[str, type[BaseModel]] = {
    name: value
    for name, value in vars(models).items()
    if inspect.isclass(value) and issubclass(value, BaseModel) and value.__module__ == models.__name__
}
_ENUMS: dict[str, type[Enum]] = {
    name: value
    for name, value in vars(models).items()
    if inspect.isclass(value) and issubclass(value, Enum) and value.__module__ == models.__name__
}
_NAMED_TUPLES: dict[str, type[tuple[Any, ...]]] = {"DependencyEdge": DependencyEdge}
_REGISTERED = frozenset([*_MODELS.values(), *_ENUMS.values(), *_NAMED_TUPLES.values()])


class _Open(NamedTuple):
    """A container being encoded: its id (cycle check) and what its holder still has to encode."""

    ident: int
    parts: Iterator[Any]


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _tz_tokens(zone: tzinfo | None, moment: datetime) -> list[Token]:
    if zone is None:
        return [None]
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        return ["zone", zone.key]
    offset = zone.utcoffset(moment)
    if offset is None:
        return [None]
    name = zone.tzname(moment) if type(zone) is timezone else None
    if name is not None and name == timezone(offset).tzname(None):
        name = None  # the default name: rebuilding without one gives the same zone (and UTC itself)
    # Any other tzinfo keeps its offset at this instant: the instant and the wall time are kept.
    return ["offset", offset.days, offset.seconds, offset.microseconds, name]


def _int_tokens(value: int) -> list[Token]:
    return [value] if -_INT_BOUND < value < _INT_BOUND else ["I", format(value, "x")]


def _float_tokens(value: float) -> list[Token]:
    if value != value or value in (float("inf"), float("-inf")):
        return ["F", repr(value)]
    return [value]


def _str_tokens(value: str) -> list[Token]:
    if value.isascii() or not _has_surrogate(value):
        return ["s", value]
    return ["S", base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")]


def _datetime_tokens(value: datetime) -> list[Token]:
    return ["dt", value.replace(tzinfo=None).isoformat(), value.fold, *_tz_tokens(value.tzinfo, value)]


def _time_tokens(value: time) -> list[Token]:
    moment = datetime.combine(date(2000, 1, 1), value)
    return ["time", value.replace(tzinfo=None).isoformat(), value.fold, *_tz_tokens(value.tzinfo, moment)]


def _enum_tokens(value: Enum) -> list[Token]:
    return ["E", type(value).__name__, value.name]


# How each type without parts is written; looked up by exact type (a subclass is another type).
_LEAVES: dict[type, Callable[[Any], list[Token]]] = {
    type(None): lambda value: [None],
    bool: lambda value: [value],
    int: _int_tokens,
    float: _float_tokens,
    str: _str_tokens,
    Decimal: lambda value: ["D", str(value)],
    UUID: lambda value: ["u", value.hex],
    datetime: _datetime_tokens,
    date: lambda value: ["date", value.isoformat()],
    time: _time_tokens,
    timedelta: lambda value: ["td", value.days, value.seconds, value.microseconds],
    bytes: lambda value: ["b", base64.b64encode(value).decode("ascii")],
    **dict.fromkeys(_ENUMS.values(), _enum_tokens),
}


def _container(value: Any, kind: type) -> tuple[list[Token], Iterator[Any]]:
    """The head tokens and the parts of a container value."""
    if kind is list:
        return ["l", len(value)], iter(value)
    if kind is tuple:
        return ["t", len(value)], iter(value)
    if kind is dict or kind is OrderedDict:
        tag = "d" if kind is dict else "od"
        return [tag, len(value)], iter([part for item in value.items() for part in item])
    if kind is set or kind is frozenset:
        return ["set" if kind is set else "fset", len(value)], iter(value)
    if kind in _NAMED_TUPLES.values():
        return ["n", kind.__name__, len(value)], iter(value)
    if kind in _MODELS.values():
        extra = value.__pydantic_extra__
        if extra:
            raise JournalError(f"journal: a {kind.__name__} with extra fields cannot be journaled")
        fields_set = sorted(value.model_fields_set)
        head: list[Token] = ["m", kind.__name__, len(fields_set), *fields_set, len(value.__dict__)]
        return head, iter([part for item in value.__dict__.items() for part in item])
    raise JournalError(f"journal: a value of type {kind.__module__}.{kind.__qualname__} cannot be journaled")


def encode_value(value: Any) -> list[Token]:
    """`value` as a flat list of JSON tokens; JournalError for a type the journal cannot keep."""
    out: list[Token] = []
    stack: list[_Open] = []
    on_path: set[int] = set()
    current: Iterator[Any] = iter((value,))
    while True:
        for item in current:
            kind = type(item)
            if kind is str and item.isascii():  # the common case, inline
                out += ("s", item)
                continue
            leaf = _LEAVES.get(kind)
            if leaf is not None:
                out += leaf(item)
                continue
            ident = id(item)
            if ident in on_path:
                raise JournalError("journal: a value that contains itself cannot be journaled")
            head, parts = _container(item, kind)
            out.extend(head)
            on_path.add(ident)
            stack.append(_Open(ident, current))
            current = parts
            break
        else:
            if not stack:
                return out
            # `current` is done: go on with the parts of the container that held it.
            done = stack.pop()
            on_path.discard(done.ident)
            current = done.parts


class _Builder:
    """A container being decoded: how many parts it still needs and how to finish it."""

    __slots__ = ("finish", "needed", "parts")

    def __init__(self, needed: int, finish: Callable[[list[Any]], Any]) -> None:
        self.needed = needed
        self.parts: list[Any] = []
        self.finish = finish


def _pairs(parts: list[Any]) -> dict[Any, Any]:
    return dict(zip(parts[0::2], parts[1::2], strict=True))


def _zone(tokens: Iterator[Token]) -> tzinfo | None:
    kind = next(tokens)
    if kind is None:
        return None
    if kind == "zone":
        return ZoneInfo(_text(tokens))
    if kind == "offset":
        offset = timedelta(days=_count_signed(tokens), seconds=_count(tokens), microseconds=_count(tokens))
        name = next(tokens)
        return timezone(offset) if name is None else timezone(offset, str(name))
    raise ValueError(f"unknown time zone tag {kind!r}")


def _text(tokens: Iterator[Token]) -> str:
    value = next(tokens)
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def _count(tokens: Iterator[Token]) -> int:
    value = next(tokens)
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def _model_finisher(cls: type[BaseModel], fields_set: set[str]) -> Callable[[list[Any]], BaseModel]:
    def finish(parts: list[Any]) -> BaseModel:
        return cls.model_construct(_fields_set=fields_set, **_pairs(parts))

    return finish


def _named_tuple_finisher(cls: type[tuple[Any, ...]]) -> Callable[[list[Any]], Any]:
    def finish(parts: list[Any]) -> Any:
        return cls(*parts)

    return finish


def _open_container(tag: str, tokens: Iterator[Token]) -> _Builder:
    if tag == "l":
        return _Builder(_count(tokens), list)
    if tag == "t":
        return _Builder(_count(tokens), tuple)
    if tag == "d":
        return _Builder(2 * _count(tokens), _pairs)
    if tag == "od":
        return _Builder(2 * _count(tokens), lambda parts: OrderedDict(_pairs(parts)))
    if tag == "set":
        return _Builder(_count(tokens), set)
    if tag == "fset":
        return _Builder(_count(tokens), frozenset)
    if tag == "n":
        cls = _NAMED_TUPLES[_text(tokens)]
        return _Builder(_count(tokens), _named_tuple_finisher(cls))
    if tag == "m":
        model = _MODELS[_text(tokens)]
        fields_set = {_text(tokens) for _ in range(_count(tokens))}
        return _Builder(2 * _count(tokens), _model_finisher(model, fields_set))
    raise ValueError(f"unknown tag {tag!r}")


def _leaf(tag: str, tokens: Iterator[Token]) -> Any:
    """The value of a leaf tag, or _CONTAINER when the tag opens a container."""
    if tag == "s":
        return _text(tokens)
    if tag == "S":
        return base64.b64decode(_text(tokens), validate=True).decode("utf-8", "surrogatepass")
    if tag == "I":
        return int(_text(tokens), 16)
    if tag == "F":
        return float(_text(tokens))
    if tag == "D":
        return Decimal(_text(tokens))
    if tag == "u":
        return UUID(hex=_text(tokens))
    if tag == "dt":
        naive = datetime.fromisoformat(_text(tokens))
        fold = _count(tokens)
        return naive.replace(fold=fold, tzinfo=_zone(tokens))
    if tag == "date":
        return date.fromisoformat(_text(tokens))
    if tag == "time":
        naive_time = time.fromisoformat(_text(tokens))
        fold = _count(tokens)
        return naive_time.replace(fold=fold, tzinfo=_zone(tokens))
    if tag == "td":
        return timedelta(days=_count_signed(tokens), seconds=_count(tokens), microseconds=_count(tokens))
    if tag == "b":
        return base64.b64decode(_text(tokens), validate=True)
    if tag == "E":
        return _ENUMS[_text(tokens)][_text(tokens)]
    return _CONTAINER


def _count_signed(tokens: Iterator[Token]) -> int:
    value = next(tokens)
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return value


_CONTAINER = object()


def _decode(tokens: list[Token]) -> Any:
    stream = iter(tokens)
    stack: list[_Builder] = []
    for token in stream:
        if isinstance(token, str):
            value = _leaf(token, stream)
            if value is _CONTAINER:
                builder = _open_container(token, stream)
                if builder.needed:
                    stack.append(builder)
                    continue
                value = builder.finish([])
        elif token is None or type(token) in (bool, int, float):
            value = token
        else:
            raise ValueError(f"unexpected token {token!r}")
        # Hand the value to the container waiting for it, closing every container it completes.
        while stack:
            top = stack[-1]
            top.parts.append(value)
            if len(top.parts) < top.needed:
                break
            stack.pop()
            value = top.finish(top.parts)
        else:
            if next(stream, _CONTAINER) is not _CONTAINER:
                raise ValueError("tokens left after the value")
            return value
    raise ValueError("the value ends early")


def decode_value(tokens: object) -> Any:
    """The value `encode_value` encoded; JournalError when the tokens are not such an encoding."""
    if not isinstance(tokens, list):
        raise JournalError(f"journal: encoded value must be a list of tokens, got {type(tokens).__name__}")
    try:
        return _decode(tokens)
    except JournalError:
        raise
    except (
        ValueError,
        TypeError,
        KeyError,
        StopIteration,
        ArithmeticError,
        ZoneInfoNotFoundError,
    ) as exc:
        raise JournalError(f"journal: undecodable value: {type(exc).__name__}: {exc}") from None
