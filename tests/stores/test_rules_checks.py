"""The whole-argument checks of `stores.rules` that the stores and the cut-over stores share.

`checked_model`, `checked_projects`, `checked_edges`, `checked_sequence`, `utc`/`moment`,
`money`, `coherence_score`, `key_text` and `shown`, called directly: what each accepts, what it
returns, and that every refusal is `InvalidValueError` naming the argument.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coherence_sql.errors import InvalidValueError
from coherence_sql.models import AgentTaskRecord, Contributor, Project
from coherence_sql.stores import rules
from coherence_sql.stores.protocol import DependencyEdge
from tests.stores import records


def test_checked_model_returns_a_fresh_valid_copy() -> None:
    original = records.contributor(1, metadata={"tags": ["a"]})
    checked = rules.checked_model(original, Contributor, "contributor")
    assert checked == original
    assert checked is not original
    original.name = "changed later"
    assert checked.name == "Contributor 1"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (None, "got NoneType"),
        ({"name": "x", "ecosystem": "npm", "version": "1", "description": ""}, "got dict"),
        (records.task(1), "got AgentTaskRecord"),
        ("react", "got str"),
    ],
)
def test_checked_model_refuses_what_is_not_the_model(value: object, named: str) -> None:
    with pytest.raises(InvalidValueError, match=f"project must be a Project, {named}"):
        rules.checked_model(value, Project, "project")


def test_checked_model_refuses_a_model_changed_after_construction_naming_each_field() -> None:
    task = records.task(1)
    task.status = "bogus"  # type: ignore[assignment]
    task.progress_pct = "half"  # type: ignore[assignment]
    with pytest.raises(InvalidValueError) as caught:
        rules.checked_model(task, AgentTaskRecord, "task")
    message = str(caught.value)
    assert message.startswith("task does not validate as a AgentTaskRecord: ")
    assert "status:" in message
    assert "progress_pct:" in message
    assert "bogus" not in message.split(":", 1)[0]


def test_checked_model_refuses_a_deleted_field() -> None:
    project = records.project("a")
    del project.__dict__["version"]
    with pytest.raises(InvalidValueError, match="version: Field required"):
        rules.checked_model(project, Project, "project")


def test_checked_projects_and_edges_take_lists_and_tuples_only() -> None:
    assert rules.checked_projects((records.project("a"),)) == [records.project("a")]
    assert rules.checked_edges([DependencyEdge("npm", "a", "npm", "b"), ["npm", "b", "npm", "c"]]) == [
        ("npm", "a", "npm", "b"),
        ("npm", "b", "npm", "c"),
    ]
    value: object
    for value in ("abcd", b"abcd", {"a": 1}, {("npm", "a", "npm", "b")}, iter([]), None, 5):
        with pytest.raises(InvalidValueError, match="edges must be a list or tuple"):
            rules.checked_edges(value)
    with pytest.raises(InvalidValueError, match=r"edges\[0\] must be a tuple of four strings"):
        rules.checked_edges(["abcd"])
    with pytest.raises(InvalidValueError, match=r"edges\[1\]\.to_ecosystem must be a string, got None"):
        rules.checked_edges([("a", "b", "c", "d"), ("a", "b", None, "d")])
    with pytest.raises(InvalidValueError, match=r"projects\[1\] must be a Project, got str"):
        rules.checked_projects([records.project("a"), "b"])


MINUS_ONE = timezone(timedelta(hours=-1))


def test_utc_converts_or_refuses_naming_the_field() -> None:
    naive = datetime(2026, 1, 1, 12)
    assert rules.utc("now", naive) == naive.replace(tzinfo=UTC)
    assert rules.utc("now", naive.replace(tzinfo=MINUS_ONE)) == datetime(2026, 1, 1, 13, tzinfo=UTC)
    assert rules.naive_utc(naive.replace(tzinfo=MINUS_ONE), "created_at") == datetime(2026, 1, 1, 13)
    assert rules.moment("now", None).tzinfo is UTC
    with pytest.raises(InvalidValueError, match="now is out of range when converted to UTC"):
        rules.utc("now", datetime.max.replace(tzinfo=MINUS_ONE))
    with pytest.raises(InvalidValueError, match="created_at is out of range when converted to UTC"):
        rules.naive_utc(datetime.min.replace(tzinfo=timezone(timedelta(hours=1))), "created_at")
    with pytest.raises(InvalidValueError, match="timestamp must be a datetime, got '2026-01-01'"):
        rules.moment("timestamp", "2026-01-01")


@given(
    st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True),
        st.floats(),
        st.integers(),
        st.text(max_size=30),
        st.none(),
        st.booleans(),
    )
)
def test_money_and_scores_give_a_value_or_invalid_value_error(value: Any) -> None:
    for check, field in (
        (lambda v: rules.money("cost_amount", v), "cost_amount"),
        (rules.coherence_score, "coherence_score"),
    ):
        refusal = ""
        try:
            result = check(value)
        except InvalidValueError as exc:
            refusal = str(exc)
        if refusal:
            assert field in refusal
        elif isinstance(result, Decimal):
            assert result.is_finite()
            assert result == result.quantize(Decimal("0.01"))
            assert result >= 0
        else:
            assert 0.0 <= result <= 1.0
            assert math.copysign(1.0, result) == 1.0


def test_shown_never_fails() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert rules.shown(10**5000) == "an integer of 16610 bits"
    assert "Broken" in rules.shown(Broken())
    assert rules.shown(cyclic).startswith("[[")
    assert len(rules.shown("x" * 10_000)) < 80


def test_key_text_refuses_none_and_non_strings() -> None:
    assert rules.key_text("task_id", "") == ""
    for value in (None, 5, b"x", "a\ud800", "a\x00"):
        with pytest.raises(InvalidValueError, match="task_id"):
            rules.key_text("task_id", value)
