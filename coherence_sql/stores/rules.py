"""The contract rules both stores apply before writing, so they accept and reject the same input.

Each check raises `InvalidValueError` naming the field and the value; nothing here touches a
store. See shared/design.md "Contract decisions" and docs/decisions.md.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum
from typing import Any, Final, NamedTuple, SupportsIndex, SupportsInt, TypeVar
from uuid import UUID, uuid4

from coherence_sql.errors import CONSTRAINT_MESSAGES, InvalidValueError
from coherence_sql.models import DIRECTION_MAX, TaskStatus

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


def project_key(ecosystem: str, name: str) -> tuple[str, str]:
    """The API's `_key()`: case-insensitive identity of a project; empty keys are rejected.

    Widths are checked on the lower-cased key too: `str.lower()` can lengthen a string ("İ").
    """
    keys = []
    for field, value, limit in (("ecosystem", ecosystem, ECOSYSTEM_MAX), ("name", name, PROJECT_NAME_MAX)):
        if not isinstance(value, str) or value == "":
            raise InvalidValueError(f"project {field} must be a non-empty string, got {value!r}")
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
    """A DECIMAL(15,2) amount as Decimal; more than two places, out of range or NaN is rejected."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise InvalidValueError(f"{field} must be a decimal amount, got {value!r}")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise InvalidValueError(f"{field} must be a decimal amount, got {value!r}") from None
    if not amount.is_finite():
        raise InvalidValueError(f"{field} must be a finite amount, got {value!r}")
    if amount != amount.quantize(TWO_PLACES, rounding=ROUND_HALF_EVEN):
        raise InvalidValueError(f"{field} has more than two decimal places: {value!r}")
    if amount < 0 and not allow_negative:
        raise InvalidValueError(f"{field} must not be negative, got {value!r}")
    if abs(amount) > MONEY_MAX:
        raise InvalidValueError(f"{field} is out of range for DECIMAL(15,2): {value!r}")
    if amount == 0:
        amount = abs(amount)  # -0.00 is 0.00 in PostgreSQL's numeric
    return amount.quantize(TWO_PLACES)


def coherence_score(value: object) -> float:
    """DECIMAL(3,2): within [0, 1], rounded half-even to two places, returned as float."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidValueError(f"coherence_score must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValueError(f"coherence_score must be finite, got {value!r}")
    score = Decimal(str(value)).quantize(TWO_PLACES, rounding=ROUND_HALF_EVEN)
    if not Decimal(0) <= Decimal(str(value)) <= Decimal(1):
        raise InvalidValueError(f"coherence_score must be between 0 and 1, got {value!r}")
    return float(score)


def list_limit(limit: object) -> int:
    """The API's `max(0, int(limit))`: "5" works, negatives give an empty page."""
    try:
        if isinstance(limit, bool) or not isinstance(limit, SupportsInt | SupportsIndex | str):
            raise TypeError
        return max(0, int(limit))
    except (TypeError, ValueError, OverflowError):
        raise InvalidValueError(f"limit must be an integer, got {limit!r}") from None


def page(limit: object, offset: object) -> tuple[int, int]:
    """Agent task paging: integers, neither negative (the API's router allows no negatives)."""
    values = []
    for field, value in (("limit", limit), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValueError(f"{field} must be an integer, got {value!r}")
        if value < 0:
            raise InvalidValueError(f"{field} must not be negative, got {value}")
        values.append(value)
    return values[0], values[1]


def progress_pct(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in PROGRESS_RANGE:
        raise InvalidValueError(f"progress_pct must be an integer from 0 to 100, got {value!r}")
    return value


def search_text(query: str | None) -> str:
    """The API's normalisation: strip and lower-case; an empty result means "no results"."""
    if query is not None and not isinstance(query, str):
        raise InvalidValueError(f"search query must be a string, got {query!r}")
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


def naive_utc(value: datetime) -> datetime:
    """Graph models carry naive UTC; an aware value is converted, a naive one taken as UTC."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def aware_utc(value: datetime) -> datetime:
    """Agent tasks carry aware UTC; a naive value is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# A \u0000 escape in JSON text: a backslash preceded by an even number of backslashes.
_JSON_NUL_ESCAPE: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def json_object(field: str, value: Any) -> dict[str, Any]:
    """Metadata and context: a JSON object jsonb can hold, returned as a jsonb round trip gives it back.

    Keys become strings and tuples lists, as they do through jsonb; values JSON cannot encode, NaN and
    infinities, surrogates and NUL characters (jsonb rejects \\u0000) are rejected up front.
    """
    if not isinstance(value, dict):
        raise InvalidValueError(f"{field} must be a JSON object, got {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")  # a lone surrogate cannot be sent to PostgreSQL
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"{field} is not encodable as JSON: {exc}") from None
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


def uuid_value(field: str, value: object) -> UUID:
    """A UUID, or its text form (as PostgreSQL would cast it)."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidValueError(f"{field} must be a UUID, got {value!r}")


def optional_enum(enum: type[_E], field: str, value: object) -> _E | None:
    """An optional enum argument given as a member or its value (the API compares with ==)."""
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise InvalidValueError(f"{field} must be one of {allowed}, got {value!r}") from None


def optional_naive(value: datetime | None) -> datetime | None:
    return None if value is None else naive_utc(value)


def optional_aware(value: datetime | None) -> datetime | None:
    return None if value is None else aware_utc(value)


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
    text("task_id", task_id)
    checked_status = optional_enum(TaskStatus, "status", status)
    checked_pct = progress_pct(pct)
    for name, value in texts.items():
        text(name, value)
    return TaskUpdate(checked_status, checked_pct, datetime.now(UTC) if now is None else aware_utc(now))


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
            f"contributions_count must be between 0 and {INT4_MAX}, got {contributor.contributions_count}"
        )


def github_organization_fields(organization: Any) -> None:
    """A GitHub organization fits the github_organizations table and its CHECKs."""
    text("id", organization.id, NAME_MAX, required=True)
    text("login", organization.login, NAME_MAX)
    text("name", organization.name, NAME_MAX)
    text("avatar_url", organization.avatar_url, URL_MAX)
    if organization.type not in GITHUB_ORGANIZATION_TYPES:
        raise InvalidValueError(f"{CONSTRAINT_MESSAGES['github_organizations_type_check']}, got {organization.type!r}")


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
        timestamp=datetime.now(UTC).replace(tzinfo=None) if timestamp is None else naive_utc(timestamp),
    )
