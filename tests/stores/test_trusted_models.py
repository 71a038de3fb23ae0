"""Rows become models without re-validation (stores/trusted.py), and the result is always what
validation gives: for generated rows, with the values PostgreSQL holds and with values it would
never give (wrong types, NaN, naive or aware times, invalid addresses, a non-object JSON), the
trusted path and the validating path (`Model(**fields)`) produce equal models, field by field the
same types in the same order, or both raise ValidationError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import asyncpg.pgproto.pgproto as pgproto
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    AssetType,
    Contribution,
    Contributor,
    ContributorType,
    GitHubContributor,
    GitHubOrganization,
    Project,
    ProjectSummary,
    TaskStatus,
    TaskType,
)
from coherence_sql.stores import postgres
from coherence_sql.stores.trusted import TrustedBuilder

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
TEXT = st.text(max_size=12)
OPTIONAL_TEXT = st.none() | TEXT
ODD = st.none() | st.integers() | st.booleans() | st.floats() | st.binary(max_size=3)  # what no column gives
WHEN = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]))
TIMES = WHEN | st.datetimes()  # aware, or naive as a timestamp without time zone gives it
UUIDS = st.uuids().map(lambda u: pgproto.UUID(str(u))) | st.uuids()
OBJECTS = st.dictionaries(st.text(max_size=5), JSON, max_size=4)
EMAILS = (
    st.emails()
    | st.emails().map(str.upper)
    | st.sampled_from(["A@Example.ORG", "x@[127.0.0.1]", "user@exämple.org", "not an address", ""])
)
DECIMALS = st.decimals(places=2, min_value=-(10**6), max_value=10**6) | st.sampled_from(
    [Decimal("NaN"), Decimal("Infinity"), Decimal("-0.00"), Decimal("12.5")]
)
COUNTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def row(draw: st.DrawFn, **columns: st.SearchStrategy[Any]) -> SimpleNamespace:
    """A row of the columns' values; one time in four, one column holds something no column gives."""
    values = {name: draw(strategy) for name, strategy in columns.items()}
    if draw(st.integers(0, 3)) == 0:
        values[draw(st.sampled_from(sorted(values)))] = draw(ODD)
    return SimpleNamespace(**values)


def same(mapper: Any, model: type[BaseModel], record: SimpleNamespace) -> None:
    try:
        validated = mapper(record, model)
    except ValidationError:
        with pytest.raises(ValidationError):
            mapper(record)
        return
    except (TypeError, ValueError, AttributeError):  # the mapper's own conversions refused the row
        return
    trusted = mapper(record)
    assert trusted == validated
    assert repr(trusted) == repr(validated)  # also tzinfo and Decimal spelling
    assert [(name, type(value)) for name, value in trusted.__dict__.items()] == [
        (name, type(value)) for name, value in validated.__dict__.items()
    ]
    assert trusted.model_fields_set == validated.model_fields_set
    assert trusted.model_dump_json() == validated.model_dump_json()


@given(row(name=TEXT, ecosystem=TEXT, version=TEXT, description=TEXT, dependency_count=COUNTS,
           homepage_url=OPTIONAL_TEXT, repository_url=OPTIONAL_TEXT))  # fmt: skip
def test_projects(record: SimpleNamespace) -> None:
    same(postgres._project, Project, record)


@given(row(id=UUIDS, type=st.sampled_from([t.value for t in ContributorType]), name=TEXT, email=EMAILS,
           wallet_address=OPTIONAL_TEXT, hourly_rate=st.none() | DECIMALS, created_at=TIMES,
           github_username=OPTIONAL_TEXT, metadata=OBJECTS))  # fmt: skip
def test_contributors(record: SimpleNamespace) -> None:
    same(postgres._contributor, Contributor, record)


@given(row(id=UUIDS, type=st.sampled_from([t.value for t in AssetType]), name=OPTIONAL_TEXT, description=TEXT,
           total_cost=DECIMALS, created_at=TIMES, metadata=OBJECTS))  # fmt: skip
def test_assets(record: SimpleNamespace) -> None:
    same(postgres._asset, Asset, record)


@given(row(id=UUIDS, contributor_id=UUIDS, asset_id=UUIDS, cost_amount=DECIMALS,
           coherence_score=st.decimals(places=2, min_value=-1, max_value=2) | st.just(Decimal("NaN")),
           metadata=OBJECTS, timestamp=TIMES))  # fmt: skip
def test_contributions(record: SimpleNamespace) -> None:
    same(postgres._contribution, Contribution, record)


@given(row(id=TEXT, source=TEXT, login=TEXT, name=OPTIONAL_TEXT, avatar_url=OPTIONAL_TEXT,
           contributions_count=COUNTS, created_at=TIMES, updated_at=st.none() | TIMES))  # fmt: skip
def test_github_contributors(record: SimpleNamespace) -> None:
    same(postgres._github_contributor, GitHubContributor, record)


@given(row(id=TEXT, login=TEXT, type=TEXT, name=OPTIONAL_TEXT, avatar_url=OPTIONAL_TEXT, created_at=TIMES,
           updated_at=st.none() | TIMES))  # fmt: skip
def test_github_organizations(record: SimpleNamespace) -> None:
    same(postgres._github_organization, GitHubOrganization, record)


@given(row(id=TEXT, direction=TEXT, task_type=st.sampled_from(TaskType) | TEXT, status=st.sampled_from(TaskStatus),
           model=TEXT, command=TEXT, tier=OPTIONAL_TEXT, context=st.none() | OBJECTS | JSON, output=OPTIONAL_TEXT,
           progress_pct=st.none() | st.integers(-5, 105), current_step=OPTIONAL_TEXT, decision_prompt=OPTIONAL_TEXT,
           decision=OPTIONAL_TEXT, started_at=st.none() | WHEN, created_at=WHEN, updated_at=st.none() | WHEN,
           claimed_by=OPTIONAL_TEXT, claimed_at=st.none() | WHEN))  # fmt: skip
def test_agent_tasks(record: SimpleNamespace) -> None:
    same(postgres._task, AgentTaskRecord, record)


def test_an_email_is_normalized_as_validation_does() -> None:
    record = SimpleNamespace(id=pgproto.UUID("00000000-0000-0000-0000-000000000001"), type="HUMAN", name="n",
                             email="Someone@EXAMPLE.org", wallet_address=None, hourly_rate=None,
                             created_at=datetime(2026, 1, 1), github_username=None, metadata={})  # fmt: skip
    assert postgres._contributor(record).email == "Someone@example.org"
    record.email = "not an address"
    with pytest.raises(ValidationError, match="email"):
        postgres._contributor(record)


def test_a_model_validator_nobody_accounted_for_is_refused() -> None:
    """A validator added to a model later must not be skipped silently."""
    with pytest.raises(TypeError, match="_default_name"):
        TrustedBuilder(Asset)


@given(row(name=TEXT, ecosystem=TEXT, description=TEXT))
def test_project_summaries(record: SimpleNamespace) -> None:
    def summary(r: SimpleNamespace, build: Any = postgres._PROJECT_SUMMARY) -> Any:
        return build(name=r.name, ecosystem=r.ecosystem, description=r.description)

    same(summary, ProjectSummary, record)


def test_the_compiled_builder_reads_as_the_checks_it_makes() -> None:
    """The source is kept for a reader (and a debugger): one expression of checks, one fallback."""
    source = TrustedBuilder(Contribution).source
    assert source.startswith("def build(*, contributor_id, asset_id, cost_amount, metadata, id, coherence_score,")
    assert "(_type(cost_amount) is _Decimal and cost_amount.is_finite())" in source
    assert "_json_object(metadata)" in source
    assert "coherence_score >= " in source
    assert "coherence_score <= " in source
    assert source.rstrip().endswith(
        "return _model(contributor_id=contributor_id, asset_id=asset_id, cost_amount=cost_amount,"
        " metadata=metadata, id=id, coherence_score=coherence_score, timestamp=timestamp)"
    )
