"""The journal codec: every write operation's arguments decode to exactly what was written.

Identity means equal AND of the same types all the way down (1 == 1.0 == True and Decimal("0.1")
== Decimal("0.10"), so `==` alone would not see a changed type or exponent). Property tests cover
every write operation of GraphStore and AgentTaskStore with typed and hostile arguments.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, EmailStr
from pydantic_core import to_jsonable_python

from coherence_sql import models
from coherence_sql.cutover.journal import decode, encode
from coherence_sql.cutover.journal_codec import decode_value, encode_value
from coherence_sql.errors import JournalError
from coherence_sql.stores.protocol import AgentTaskStore, DependencyEdge, GraphStore

_READS = ("get_", "list_", "count_", "search", "find_")
WRITE_OPS: list[tuple[str, str, Any]] = [
    (store, op, method)
    for store, protocol in (("graph", GraphStore), ("tasks", AgentTaskStore))
    for op, method in inspect.getmembers(protocol, inspect.isfunction)
    if not op.startswith("_") and not op.startswith(_READS)
]


def test_every_write_operation_is_covered() -> None:
    names = {f"{store}.{op}" for store, op, _ in WRITE_OPS}
    assert {"graph.create_contribution", "graph.add_dependencies", "tasks.update_task", "tasks.clear"} <= names
    assert len(names) == 15


# -- strict identity ---------------------------------------------------------------------------


def assert_identical(expected: Any, actual: Any, where: str = "value") -> None:
    """Equal and of the same types, recursively (fields, items, keys, exponents, signs, zones)."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} is not {type(expected)}"
    if isinstance(expected, float):
        assert repr(actual) == repr(expected), where  # -0.0 and nan included
    elif isinstance(expected, Decimal):
        assert str(actual) == str(expected), where  # exponent, sign, NaN payload
    elif isinstance(expected, datetime | time):
        assert actual.replace(tzinfo=None) == expected.replace(tzinfo=None), where
        assert actual.fold == expected.fold, where
        assert type(actual.tzinfo) is type(expected.tzinfo), where
        if expected.tzinfo is not None and actual.tzinfo is not None:
            probe = expected if isinstance(expected, datetime) else None
            assert actual.tzinfo.utcoffset(probe) == expected.tzinfo.utcoffset(probe), where
            assert actual.tzinfo.tzname(probe) == expected.tzinfo.tzname(probe), where
    elif isinstance(expected, BaseModel):
        assert actual.model_fields_set == expected.model_fields_set, where
        assert list(actual.__dict__) == list(expected.__dict__), where
        for name, value in expected.__dict__.items():
            assert_identical(value, actual.__dict__[name], f"{where}.{name}")
    elif isinstance(expected, dict):
        assert len(actual) == len(expected), where
        for (key, value), (got_key, got_value) in zip(expected.items(), actual.items(), strict=True):
            assert_identical(key, got_key, f"{where} key")
            assert_identical(value, got_value, f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), where
        for index, (value, got) in enumerate(zip(expected, actual, strict=True)):
            assert_identical(value, got, f"{where}[{index}]")
    elif isinstance(expected, set | frozenset):
        # Not `==`: a set holding a NaN equals no other set. Same size, same typed members.
        assert len(actual) == len(expected), where
        assert sorted(map(_typed_repr, actual)) == sorted(map(_typed_repr, expected)), where
    elif isinstance(expected, Enum):
        assert actual is expected, where
    else:
        assert actual == expected, where


def _typed_repr(value: Any) -> str:
    return f"{type(value).__qualname__}:{value!r}"


def round_trip(store: str, op: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Through the whole journal record: frame, JSON text, checksum, codec."""
    line = encode(store, op, kwargs)  # type: ignore[arg-type]
    assert "\n" not in line
    entry = decode(line, "t")
    assert (entry.store, entry.op) == (store, op)
    return entry.kwargs


# -- strategies --------------------------------------------------------------------------------

MODEL_CLASSES = [
    cls
    for cls in vars(models).values()
    if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == models.__name__
]
ENUM_MEMBERS = [
    member
    for cls in vars(models).values()
    if isinstance(cls, type) and issubclass(cls, Enum) and cls.__module__ == models.__name__
    for member in cls
]
ZONES = st.one_of(
    st.none(),
    st.just(UTC),
    st.builds(
        timezone,
        st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
    ),
    st.builds(
        timezone,
        st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)),
        st.text(min_size=1, max_size=5),
    ),
    st.sampled_from([ZoneInfo("Europe/Paris"), ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu")]),
)
TEXT = st.text(st.characters(exclude_categories=()))  # lone surrogates included
HOSTILE_DECIMALS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            Decimal("sNaN"),
            Decimal("-sNaN42"),
            Decimal("NaN123"),
            Decimal("-0.00"),
            Decimal("1E+999999999"),
            Decimal("0.13"),
        ]
    ),
    st.builds(
        lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), max_size=60),
        st.integers(-(10**6), 10**6),
    ),
)
HASHABLE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    TEXT,
    st.decimals(allow_nan=False),
    st.uuids(),
    st.dates(),
    st.sampled_from(ENUM_MEMBERS),
)
LEAVES = st.one_of(
    HASHABLE,
    st.sampled_from([2**63, -(2**63), 2**63 - 1, -0.0, math.inf, -math.inf, math.nan]),
    st.integers(4300, 5000).map(lambda digits: -(10**digits) - 1),  # built, not spelled: repr refuses them
    HOSTILE_DECIMALS,
    st.datetimes(timezones=ZONES, allow_imaginary=True),
    st.times(timezones=ZONES),
    st.timedeltas(),
    st.binary(),
    st.builds(DependencyEdge, TEXT, TEXT, TEXT, TEXT),
    st.just("{00000000-0000-4000-8000-000000000001}"),  # a UUID as 32 hex digits in braces
)


def _models(children: st.SearchStrategy[Any]) -> st.SearchStrategy[BaseModel]:
    """Models as built by a caller, or changed after construction: fields of any value."""

    def build(cls: type[BaseModel], values: list[Any], subset: list[bool]) -> BaseModel:
        names = list(cls.model_fields)
        fields = {name: value for name, value, keep in zip(names, values, subset, strict=False) if keep}
        return cls.model_construct(**fields)

    return st.sampled_from(MODEL_CLASSES).flatmap(
        lambda cls: st.builds(
            build,
            st.just(cls),
            st.lists(children, min_size=len(cls.model_fields), max_size=len(cls.model_fields)),
            st.lists(st.booleans(), min_size=len(cls.model_fields), max_size=len(cls.model_fields)),
        )
    )


VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(HASHABLE, children, max_size=4),
        st.dictionaries(TEXT, children, max_size=4).map(OrderedDict),
        st.sets(HASHABLE, max_size=4),
        st.frozensets(HASHABLE, max_size=4),
        _models(children),
    ),
    max_leaves=12,
)


def typed(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a parameter's declared type (models with fields of their declared types)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([typed(arg) for arg in args])
    if origin in (Sequence, list):
        return st.lists(typed(args[0]), max_size=4) | st.lists(typed(args[0]), max_size=4).map(tuple)
    if origin in (dict, typing.Mapping):
        return st.dictionaries(TEXT, VALUES, max_size=4)
    if hint is Any:
        return VALUES
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        hints = typing.get_type_hints(hint)
        return st.builds(hint.model_construct, **{name: typed(hints[name]) for name in hint.model_fields})
    if hint is str:
        return TEXT
    if hint is EmailStr:
        return st.emails()
    if hint is datetime:
        return st.datetimes(timezones=ZONES)
    return st.from_type(hint)


def arguments(method: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for every parameter (optional ones sometimes left out): typed or hostile."""
    hints = typing.get_type_hints(method)
    parameters = [p for name, p in inspect.signature(method).parameters.items() if name != "self"]
    required = {p.name: typed(hints[p.name]) | VALUES for p in parameters if p.default is inspect.Parameter.empty}
    optional = {p.name: typed(hints[p.name]) | VALUES for p in parameters if p.default is not inspect.Parameter.empty}
    return st.fixed_dictionaries(required, optional=optional)


@pytest.mark.parametrize(("store", "op", "method"), WRITE_OPS, ids=[f"{s}.{o}" for s, o, _ in WRITE_OPS])
@given(data=st.data())
def test_every_write_operation_round_trips_exactly(store: str, op: str, method: Any, data: st.DataObject) -> None:
    kwargs = data.draw(arguments(method))
    assert_identical(kwargs, round_trip(store, op, kwargs))


@given(VALUES)
def test_any_value_round_trips_exactly_through_json(value: Any) -> None:
    tokens = encode_value(value)
    text = json.dumps(tokens, ensure_ascii=True, allow_nan=False)
    assert_identical(value, decode_value(json.loads(text)))


# -- the cases seen in the field ---------------------------------------------------------------


def test_the_values_that_used_to_stall_or_change_in_the_journal() -> None:
    braces = "{0123456789abcdef0123456789abcdef}"
    contribution = {
        "contributor_id": braces,
        "asset_id": UUID(int=2),
        "cost_amount": Decimal("0.13"),
        "coherence_score": Decimal("0.13"),
        "metadata": None,
    }
    back = round_trip("graph", "create_contribution", contribution)
    assert_identical(contribution, back)
    assert back["contributor_id"] == braces  # memory took the text: the replay gives it the text
    assert str(back["coherence_score"]) == "0.13"
    edges = round_trip("graph", "add_dependencies", {"edges": ["abcd"]})
    assert_identical({"edges": ["abcd"]}, edges)


def test_a_model_comes_back_without_its_validators_running_again() -> None:
    asset = models.Asset(type=models.AssetType.CODE, description="d", name="n")
    asset.name = None  # changed after construction: validation would put the description back
    task = models.AgentTaskRecord(id="t", direction="d", task_type=models.TaskType.SPEC, model="m", command="c")
    task.progress_pct = "half"  # type: ignore[assignment]
    back = round_trip("graph", "create_asset", {"asset": asset})["asset"]
    assert_identical(asset, back)
    assert back.name is None
    back_task = round_trip("tasks", "create_task", {"task": task})["task"]
    assert back_task.progress_pct == "half"
    assert_identical(task, back_task)


def test_times_keep_their_zone_fold_and_microseconds() -> None:
    values = [
        datetime(2026, 2, 15, 10, 30, 0, 654321),
        datetime(2026, 2, 15, 10, 30, 0, 1, tzinfo=UTC),
        datetime(2026, 2, 15, tzinfo=timezone(timedelta(hours=-3, minutes=-30, seconds=-7, microseconds=-5))),
        datetime(2026, 2, 15, tzinfo=timezone(timedelta(hours=5, minutes=45), "NPT")),
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
        datetime.max,
        datetime.min.replace(tzinfo=timezone(timedelta(hours=23, minutes=59))),
        date(1, 1, 1),
    ]
    back = decode_value(encode_value(values))
    assert_identical(values, back)
    assert back[1].tzinfo is UTC
    assert back[4].utcoffset() == timedelta(hours=1)


def test_huge_and_special_numbers_keep_their_value_and_type() -> None:
    values = [10**5000, -(2**64), True, 1, 1.0, -0.0, math.inf, Decimal("sNaN"), Decimal("-Infinity"), Decimal("1.000")]
    back = decode_value(json.loads(json.dumps(encode_value(values), allow_nan=False)))
    assert_identical(values, back)
    assert math.isnan(decode_value(encode_value(math.nan)))


def test_a_value_nested_100000_levels_deep_round_trips() -> None:
    value: list[Any] = []
    inner = value
    for _ in range(100_000):
        child: list[Any] = []
        inner.append({"k": child})
        inner = child
    text = json.dumps(encode_value(value))  # flat: no recursion limit in the JSON either
    back = decode_value(json.loads(text))
    depth = 0
    while back:
        assert type(back) is list
        assert len(back) == 1
        assert list(back[0]) == ["k"]
        back = back[0]["k"]
        depth += 1
    assert depth == 100_000


# -- refusals at write time --------------------------------------------------------------------


class Custom:
    pass


class Level(IntEnum):
    LOW = 1


class Text(str):
    pass


class Moment(datetime):
    pass


ALIENS = [object(), Custom(), Level.LOW, Text("x"), Moment(2026, 1, 1), bytearray(b"x"), 1j, ..., print, iter([])]


@pytest.mark.parametrize("alien", ALIENS, ids=lambda alien: type(alien).__name__)
def test_a_value_of_an_unknown_type_is_refused_when_written_naming_the_type(alien: Any) -> None:
    with pytest.raises(JournalError, match=rf"type [\w.]*{type(alien).__qualname__} cannot be journaled"):
        encode("graph", "create_contribution", {**_CONTRIBUTION, "metadata": {"deep": [1, {"x": (alien,)}]}})


@given(VALUES, st.sampled_from(ALIENS))
def test_an_unknown_type_anywhere_is_refused_and_nothing_else_is(value: Any, alien: Any) -> None:
    with pytest.raises(JournalError, match=r"cannot be journaled"):
        encode_value([value, {"x": alien}])
    assert_identical(value, decode_value(encode_value(value)))


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = [1]
    loop.append({"again": loop})
    with pytest.raises(JournalError, match=r"contains itself"):
        encode_value(loop)
    shared = [1]
    assert_identical([shared, shared], decode_value(encode_value([shared, shared])))  # shared is no loop


_CONTRIBUTION = {
    "contributor_id": UUID(int=1),
    "asset_id": UUID(int=2),
    "cost_amount": Decimal("1.00"),
    "coherence_score": 0.5,
    "metadata": {},
}


@pytest.mark.parametrize(
    "tokens",
    [["D", "abc"], ["l", 3, 1], ["zz"], [1, 2], ["E", "TaskStatus", "NOPE"], ["m", "Nope", 0, 0], ["u", 5], {}, "s"],
)
def test_tokens_that_are_no_encoding_are_refused_with_a_typed_error(tokens: Any) -> None:
    with pytest.raises(JournalError, match=r"journal: (undecodable value|encoded value must be a list)"):
        decode_value(tokens)


# -- the first format --------------------------------------------------------------------------


def old_line(store: str, op: str, kwargs: dict[str, Any]) -> str:
    """A line as the first journal format wrote it."""
    body = {"store": store, "op": op, "kwargs": to_jsonable_python(kwargs), "recorded_at": "2026-02-15T10:30:00+00:00"}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def test_a_line_of_the_first_format_is_still_read() -> None:
    task = models.AgentTaskRecord(
        id="task_1",
        direction="d",
        task_type=models.TaskType.SPEC,
        model="m",
        command="c",
        created_at=datetime(2026, 2, 15, tzinfo=UTC),
    )
    entry = decode(old_line("tasks", "create_task", {"task": task}), "old:1")
    assert entry.kwargs["task"] == task
    edge = decode(
        old_line("graph", "add_dependency", {"from_eco": "npm", "from_name": "a", "to_eco": "npm", "to_name": "b"}),
        "old:2",
    )
    assert edge.kwargs["to_name"] == "b"
    with pytest.raises(JournalError, match=r"old:3: unreadable entry: .*first-format"):
        decode(old_line("graph", "create_contribution", {**_CONTRIBUTION, "metadata": None}), "old:3")
