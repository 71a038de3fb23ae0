"""The contract rules both stores apply before writing, so they accept and reject the same input.

Each check raises `InvalidValueError` naming the field and the value; nothing here touches a
store. See shared/design.md "Contract decisions" and docs/decisions.md.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, DecimalException
from enum import Enum
from typing import Any, Final, NamedTuple, SupportsIndex, SupportsInt, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ValidationError

from coherence_sql.errors import CONSTRAINT_MESSAGES, InvalidValueError
from coherence_sql.models import DIRECTION_MAX, Project, TaskStatus

MONEY_MAX: Final = Decimal("9999999999999.99")  # DECIMAL(15, 2)
TWO_PLACES: Final = Decimal("0.01")
ECOSYSTEM_MAX: Final = 100
PROJECT_NAME_MAX: Final = 255
PROGRESS_RANGE: Final = range(0, 101)
# Column widths of schema/*.sql that both stores (and the backfill) check before writing.
NAME_MAX: Final = 255
URL_MAX: Final = 500
TASK_ID_MAX: Final = 50
TASK_MODEL_MAX: Final = 100
TASK_TIER_MAX: Final = 50
INT4_MAX: Final = 2**31 - 1
GITHUB_SOURCE_MAX: Final = 50
GITHUB_ORGANIZATION_TYPES: Final = ("Organization", "User")  # github_organizations_type_check


_SHORT: Final = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel = 2


def shown(value: object) -> str:
    """A short repr for an error message that cannot fail (huge ints, deep or cyclic values, a
    broken __repr__ would each raise in repr())."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**40:
        return f"an integer of {value.bit_length()} bits"
    try:
        return _SHORT.repr(value)
    except Exception:  # any __repr__ may raise; the message must still be built
        return f"a {type(value).__name__}"


def project_key(ecosystem: str, name: str) -> tuple[str, str]:
    """The API's `_key()`: case-insensitive identity of a project; empty keys are rejected.

    Widths are checked on the lower-cased key too: `str.lower()` can lengthen a string ("İ").
    """
    keys = []
    for field, value, limit in (("ecosystem", ecosystem, ECOSYSTEM_MAX), ("name", name, PROJECT_NAME_MAX)):
        if not isinstance(value, str) or value == "":
            raise InvalidValueError(f"project {field} must be a non-empty string, got {shown(value)}")
        no_nul(f"project {field}", value)
        key = value.lower()
        if len(value) > limit or len(key) > limit:
            raise InvalidValueError(f"project {field} is longer than {limit} characters: {value[:40]!r}…")
        keys.append(key)
    return keys[0], keys[1]


def no_nul(field: str, value: str | None) -> None:
    """Text PostgreSQL can store: no NUL character, no lone surrogate (not UTF-8); both stores
    reject them up front so they accept the same text."""
    if value is None:
        return
    if "\x00" in value:
        raise InvalidValueError(f"{field} contains a NUL character: {value[:40]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(f"{field} is not valid Unicode text (a lone surrogate): {value[:40]!r}") from None


def money(field: str, value: object, *, allow_negative: bool = False) -> Decimal:
    """A DECIMAL(15,2) amount as Decimal; more than two places, out of range, NaN or infinite is rejected."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise InvalidValueError(f"{field} must be a decimal amount, got {shown(value)}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (DecimalException, ValueError):
        raise InvalidValueError(f"{field} must be a decimal amount, got {shown(value)}") from None
    if not amount.is_finite():  # before any arithmetic: an sNaN traps even in a comparison
        raise InvalidValueError(f"{field} must be a finite amount, got {shown(value)}")
    # Range before places: quantizing a huge value traps (InvalidOperation); comparisons never round.
    if amount > MONEY_MAX or amount < -MONEY_MAX:
        raise InvalidValueError(f"{field} is out of range for DECIMAL(15,2): {shown(value)}")
    if amount < 0 and not allow_negative:
        raise InvalidValueError(f"{field} must not be negative, got {shown(value)}")
    try:
        places = amount.quantize(TWO_PLACES, rounding=ROUND_HALF_EVEN)
    except DecimalException:  # an exponent far below the context's range
        places = None
    if places is None or amount != places:
        raise InvalidValueError(f"{field} has more than two decimal places: {shown(value)}")
    if amount == 0:
        return Decimal("0.00")  # -0.00 is 0.00 in PostgreSQL's numeric
    return places


def coherence_score(value: object) -> float:
    """DECIMAL(3,2): within [0, 1], rounded half-even to two places, returned as float (never -0.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidValueError(f"coherence_score must be a number, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValueError(f"coherence_score must be finite, got {shown(value)}")
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not exact.is_finite():  # before any comparison: an sNaN traps even there
        raise InvalidValueError(f"coherence_score must be finite, got {shown(value)}")
    if not Decimal(0) <= exact <= Decimal(1):
        raise InvalidValueError(f"coherence_score must be between 0 and 1, got {shown(value)}")
    try:
        score = exact.quantize(TWO_PLACES, rounding=ROUND_HALF_EVEN)
    except DecimalException:  # an exponent far below the context's range: it rounds to zero
        score = Decimal(0)
    return float(score) + 0.0  # adding 0.0 turns -0.0 into 0.0, as DECIMAL(3,2) has no negative zero


LIMIT_MAX: Final = 2**63 - 1  # what SQL LIMIT takes; a larger limit means "all" anyway


def list_limit(limit: object) -> int:
    """The API's `max(0, int(limit))`: "5" works, negatives give an empty page; capped at a bigint."""
    if isinstance(limit, bool) or not isinstance(limit, SupportsInt | SupportsIndex | str):
        raise InvalidValueError(f"limit must be an integer, got {shown(limit)}")
    # A huge finite Decimal is compared, never converted: int(Decimal("1e999999")) takes seconds.
    if isinstance(limit, Decimal) and limit.is_finite() and abs(limit.adjusted()) > 30:
        return LIMIT_MAX if limit > LIMIT_MAX else 0  # a tiny magnitude truncates to 0 too
    try:
        return max(0, min(int(limit), LIMIT_MAX))
    except (TypeError, ValueError, OverflowError, DecimalException):
        raise InvalidValueError(f"limit must be an integer, got {shown(limit)}") from None


def page(limit: object, offset: object) -> tuple[int, int]:
    """Agent task paging: integers, neither negative (the API's router allows no negatives)."""
    values = []
    for field, value in (("limit", limit), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValueError(f"{field} must be an integer, got {shown(value)}")
        if value < 0:
            raise InvalidValueError(f"{field} must not be negative, got {shown(value)}")
        values.append(value)
    return values[0], values[1]


def progress_pct(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in PROGRESS_RANGE:
        raise InvalidValueError(f"progress_pct must be an integer from 0 to 100, got {shown(value)}")
    return value


def search_text(query: str | None) -> str:
    """The API's normalisation: strip and lower-case; an empty result means "no results"."""
    if query is not None and not isinstance(query, str):
        raise InvalidValueError(f"search query must be a string, got {shown(query)}")
    no_nul("search query", query)
    return (query or "").strip().lower()


def search_rank(q: str, name_key: str, description: str) -> int | None:
    """Decision 8's ranking: 0 exact name, 1 name prefix, 2 name contains, 3 description only."""
    if name_key == q:
        return 0
    if name_key.startswith(q):
        return 1
    if q in name_key:
        return 2
    if q in description.lower():
        return 3
    return None


def like_pattern(q: str) -> str:
    """`q` as a LIKE/ILIKE substring pattern with `%`, `_` and `\\` taken literally."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def utc(field: str, value: object) -> datetime:
    """A point in time as aware UTC (a naive value taken as UTC); anything else, or a time that
    cannot be expressed in UTC (datetime.max at -01:00, datetime.min at +01:00), is rejected."""
    if not isinstance(value, datetime):
        raise InvalidValueError(f"{field} must be a datetime, got {shown(value)}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError, TypeError, AttributeError):  # also a tzinfo that misbehaves
        raise InvalidValueError(f"{field} is out of range when converted to UTC: {shown(value)}") from None


def naive_utc(value: datetime, field: str = "timestamp") -> datetime:
    """Graph models carry naive UTC; an aware value is converted, a naive one taken as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value
        if value.tzinfo is UTC and type(value) is datetime:  # asyncpg's timestamptz: nothing to convert
            return value.replace(tzinfo=None)
    return utc(field, value).replace(tzinfo=None)


def aware_utc(value: datetime, field: str = "timestamp") -> datetime:
    """Agent tasks carry aware UTC; a naive value is taken as UTC."""
    if type(value) is datetime and value.tzinfo is UTC:  # a timestamptz as asyncpg gives it
        return value
    return utc(field, value)


def moment(field: str, value: object) -> datetime:
    """A `now`-like argument: aware UTC, this instant when None."""
    return datetime.now(UTC) if value is None else utc(field, value)


JSON_DEPTH_MAX: Final = 64


def _within_depth(field: str, value: object) -> None:
    """Nesting of at most JSON_DEPTH_MAX containers, checked without recursion: deeper values
    (and cyclic ones) would raise RecursionError in json, deepcopy or pydantic."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > JSON_DEPTH_MAX:
            raise InvalidValueError(f"{field} is nested deeper than {JSON_DEPTH_MAX} levels")
        stack.extend((child, depth + 1) for child in children)


# A \u0000 escape in JSON text: a backslash preceded by an even number of backslashes.
_JSON_NUL_ESCAPE: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def json_object(field: str, value: Any) -> dict[str, Any]:
    """Metadata and context: a JSON object jsonb can hold, returned as a jsonb round trip gives it back.

    Keys become strings and tuples lists, as they do through jsonb; values JSON cannot encode, NaN and
    infinities, surrogates and NUL characters (jsonb rejects \\u0000) are rejected up front.
    """
    if not isinstance(value, dict):
        raise InvalidValueError(f"{field} must be a JSON object, got {type(value).__name__}")
    _within_depth(field, value)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")  # a lone surrogate cannot be sent to PostgreSQL
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValueError(f"{field} is not encodable as JSON: {shown(str(exc))}") from None
    if _JSON_NUL_ESCAPE.search(text):
        raise InvalidValueError(f"{field} contains a NUL character")
    # jsonb has no negative zero: -0.0 comes back as 0 (adding 0.0 turns -0.0 into 0.0).
    loaded: dict[str, Any] = json.loads(text, parse_float=lambda number: float(number) + 0.0)
    return loaded


_E = TypeVar("_E", bound=Enum)


def text(field: str, value: object, max_len: int | None = None, *, required: bool = False) -> None:
    """A text argument: a string (or None), without NUL, within its width; `required` forbids ''."""
    if value is None:
        if required:
            raise InvalidValueError(f"{field} must not be empty, got None")
        return
    if not isinstance(value, str):
        raise InvalidValueError(f"{field} must be a string, got {type(value).__name__}")
    if required and value == "":
        raise InvalidValueError(f"{field} must not be empty")
    if max_len is not None and len(value) > max_len:
        raise InvalidValueError(f"{field} is longer than {max_len} characters: {value[:40]!r}…")
    no_nul(field, value)


def key_text(field: str, value: object, max_len: int | None = None) -> str:
    """A string key (an id, an email, a worker): None is refused like any other non-string, so a
    keyed read or write never looks up or stores None; '' is a key that finds nothing."""
    if value is None:
        raise InvalidValueError(f"{field} must be a string, got None")
    text(field, value, max_len)
    assert isinstance(value, str)
    return value


def uuid_value(field: str, value: object) -> UUID:
    """A UUID, or its text form (as PostgreSQL would cast it)."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidValueError(f"{field} must be a UUID, got {shown(value)}")


def optional_enum(enum: type[_E], field: str, value: object) -> _E | None:
    """An optional enum argument given as a member or its value (the API compares with ==)."""
    if value is None:
        return None
    if isinstance(value, enum):
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):  # only these can be a value
        try:
            return enum(value)
        except ValueError:  # the enum's own message would repr the value
            pass
    allowed = ", ".join(str(m.value) for m in enum)
    raise InvalidValueError(f"{field} must be one of {allowed}, got {shown(value)}")


def optional_naive(value: datetime | None, field: str = "timestamp") -> datetime | None:
    return None if value is None else naive_utc(value, field)


def optional_aware(value: datetime | None, field: str = "timestamp") -> datetime | None:
    return None if value is None else aware_utc(value, field)


class TaskUpdate(NamedTuple):
    status: TaskStatus | None
    progress_pct: int | None
    now: datetime


def task_update(
    task_id: object,
    status: object,
    pct: int | None,
    texts: dict[str, str | None],
    now: datetime | None,
) -> TaskUpdate:
    """The checks both stores make on `update_task`'s arguments; `now` defaults to this instant."""
    key_text("task_id", task_id)
    checked_status = optional_enum(TaskStatus, "status", status)
    checked_pct = progress_pct(pct)
    for name, value in texts.items():
        text(name, value)
    return TaskUpdate(checked_status, checked_pct, moment("now", now))


def project_fields(project: Project) -> tuple[str, str]:
    """A project's key, once its text fields fit their columns (what both stores check on upsert)."""
    key = project_key(project.ecosystem, project.name)
    text("version", project.version)
    text("description", project.description)
    text("homepage_url", project.homepage_url, URL_MAX)
    text("repository_url", project.repository_url, URL_MAX)
    return key


def edge_keys(from_eco: str, from_name: str, to_eco: str, to_name: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The project keys of "from depends on to"; a self-dependency is rejected (the plan's CHECK)."""
    source = project_key(from_eco, from_name)
    target = project_key(to_eco, to_name)
    if source == target:
        raise InvalidValueError(f"{CONSTRAINT_MESSAGES['project_dependencies_not_self']}: {from_eco}/{from_name}")
    return source, target


def contributor_text(contributor: Any) -> None:
    """A contributor's text fields fit their columns (name and email required)."""
    text("name", contributor.name, NAME_MAX, required=True)
    text("email", contributor.email, NAME_MAX, required=True)
    text("wallet_address", contributor.wallet_address, NAME_MAX)
    text("github_username", contributor.github_username, NAME_MAX)


def email_key(email: str) -> str:
    """The identity of a contributor's email: unique per store, what find_contributor_by_email
    compares. Python's lower-casing, computed here for both stores (PostgreSQL stores it as
    contributors.email_key): SQL lower() follows the server's locale and differs for some letters."""
    return email.lower()


def github_contributor_fields(contributor: Any) -> None:
    """A GitHub contributor fits the github_contributors table and its CHECKs."""
    text("id", contributor.id, NAME_MAX, required=True)
    text("source", contributor.source, GITHUB_SOURCE_MAX)
    text("login", contributor.login, NAME_MAX)
    text("name", contributor.name, NAME_MAX)
    text("avatar_url", contributor.avatar_url, URL_MAX)
    if not 0 <= contributor.contributions_count <= INT4_MAX:
        raise InvalidValueError(
            f"contributions_count must be between 0 and {INT4_MAX}, got {shown(contributor.contributions_count)}"
        )


def github_organization_fields(organization: Any) -> None:
    """A GitHub organization fits the github_organizations table and its CHECKs."""
    text("id", organization.id, NAME_MAX, required=True)
    text("login", organization.login, NAME_MAX)
    text("name", organization.name, NAME_MAX)
    text("avatar_url", organization.avatar_url, URL_MAX)
    if organization.type not in GITHUB_ORGANIZATION_TYPES:
        message = CONSTRAINT_MESSAGES["github_organizations_type_check"]
        raise InvalidValueError(f"{message}, got {shown(organization.type)}")


def task_fields(task: Any) -> None:
    """An agent task's text and progress fit the agent_tasks table and its CHECKs."""
    text("id", task.id, TASK_ID_MAX, required=True)
    text("direction", task.direction)
    if not task.direction.strip():
        raise InvalidValueError(CONSTRAINT_MESSAGES["direction_not_empty"])
    if len(task.direction) > DIRECTION_MAX:
        raise InvalidValueError(f"direction must be at most {DIRECTION_MAX} characters, got {len(task.direction)}")
    text("model", task.model, TASK_MODEL_MAX)
    text("command", task.command)
    text("tier", task.tier, TASK_TIER_MAX)
    text("claimed_by", task.claimed_by, NAME_MAX)
    for name in ("output", "current_step", "decision_prompt", "decision"):
        text(name, getattr(task, name))
    progress_pct(task.progress_pct)


class ContributionArgs(NamedTuple):
    cost: Decimal
    score: float
    metadata: dict[str, Any]
    contributor_id: UUID
    asset_id: UUID
    id: UUID
    timestamp: datetime


def contribution_args(
    contributor_id: object,
    asset_id: object,
    cost_amount: object,
    score: object,
    metadata: object,
    contribution_id: object | None,
    timestamp: datetime | None,
) -> ContributionArgs:
    """`create_contribution`'s argument checks, values first (the order both stores report in);
    a missing id or timestamp is decided here: uuid4, naive UTC now."""
    return ContributionArgs(
        cost=money("cost_amount", cost_amount),
        score=coherence_score(score),
        metadata=json_object("metadata", {} if metadata is None else metadata),  # the API's `metadata or {}`
        contributor_id=uuid_value("contributor_id", contributor_id),
        asset_id=uuid_value("asset_id", asset_id),
        id=uuid4() if contribution_id is None else uuid_value("id", contribution_id),
        timestamp=moment("timestamp", timestamp).replace(tzinfo=None),
    )


# -- whole arguments: models, sequences, edges (also called by the cut-over stores) -------------

M = TypeVar("M", bound=BaseModel)


def checked_model(value: object, cls: type[M], what: str) -> M:
    """`value` as a `cls` that validates now: a model changed after construction (a field assigned
    an invalid or mistyped value) is caught here, before anything is written. Returns a fresh copy
    validated from the model's current fields, which is what the stores write."""
    if not isinstance(value, cls):
        raise InvalidValueError(f"{what} must be a {cls.__name__}, got {type(value).__name__}")
    try:
        return cls.model_validate(dict(value.__dict__))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or cls.__name__}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)[:5]
        )
        raise InvalidValueError(f"{what} does not validate as a {cls.__name__}: {problems}") from None
    except (RecursionError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidValueError(f"{what} does not validate as a {cls.__name__}: {type(exc).__name__}") from None


_NOT_A_SEQUENCE: Final = (str, bytes, bytearray, memoryview)


def checked_sequence(value: object, what: str) -> list[Any]:
    """A list, tuple or other Sequence as a list; a string (a sequence of characters), bytes, a
    mapping, a set (no order) or an iterator (consumed by a first attempt) is rejected."""
    if isinstance(value, _NOT_A_SEQUENCE) or not isinstance(value, Sequence):
        raise InvalidValueError(f"{what} must be a list or tuple, got {type(value).__name__}")
    try:
        return list(value)
    except (RecursionError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InvalidValueError(f"{what} could not be read as a sequence: {type(exc).__name__}") from None


def checked_projects(value: object, what: str = "projects") -> list[Project]:
    """`upsert_projects`' argument: a sequence of projects, each `checked_model`'d (all or nothing)."""
    return [checked_model(item, Project, f"{what}[{i}]") for i, item in enumerate(checked_sequence(value, what))]


EDGE_FIELDS: Final = ("from_ecosystem", "from_name", "to_ecosystem", "to_name")


def checked_edge(value: object, what: str = "edge") -> tuple[str, str, str, str]:
    """One dependency edge: a tuple or list (a DependencyEdge is a tuple) of four strings."""
    if not isinstance(value, tuple | list) or len(value) != len(EDGE_FIELDS):
        raise InvalidValueError(
            f"{what} must be a tuple of four strings ({', '.join(EDGE_FIELDS)}), got {shown(value)}"
        )
    for field, part in zip(EDGE_FIELDS, value, strict=True):
        if not isinstance(part, str):
            raise InvalidValueError(f"{what}.{field} must be a string, got {shown(part)}")
    return value[0], value[1], value[2], value[3]


def checked_edges(value: object, what: str = "edges") -> list[tuple[str, str, str, str]]:
    """`add_dependencies`' argument: a sequence of edges, each `checked_edge`'d (all or nothing)."""
    return [checked_edge(item, f"{what}[{i}]") for i, item in enumerate(checked_sequence(value, what))]


def routing_table(value: object) -> dict[str, dict[str, str]]:
    """`get_usage_summary`'s routing: a mapping of mappings (the API's table), copied."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"routing must be a mapping, got {type(value).__name__}")
    table: dict[str, dict[str, str]] = {}
    for key, row in value.items():
        if not isinstance(row, Mapping):
            raise InvalidValueError(f"routing[{shown(key)}] must be a mapping, got {type(row).__name__}")
        table[key] = dict(row)
    return table
