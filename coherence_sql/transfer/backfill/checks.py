"""Per-record checks of the backfill: the stores' rules as fast paths, and what a refused record is.

A record that breaks a rule raises one of RECORD_ERRORS; the plan turns it into a `Problem`.
"""

from __future__ import annotations

import json
import math
import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel

from coherence_sql.stores import rules
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.snapshot import ContributesTo, record_key

__all__ = [
    "RECORD_ERRORS",
    "ZERO",
    "BadRecordError",
    "as_json",
    "error_text",
    "json_text",
    "money",
    "stored_score",
    "uuid_or_none",
]

ZERO: Final = Decimal("0.00")
_JSON_NUL: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # a \u0000 escape, as rules.json_object sees it
_JSON: Final = json.JSONEncoder(allow_nan=False, ensure_ascii=False)  # one encoder: json.dumps makes one per call


class BadRecordError(Exception):
    """A record breaks a rule; `Plan._checked` adds where the record is. `kind` groups the report."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


# What a record's conversion may raise on a hostile value (rules raise InvalidValueError, a
# ValueError; a time overflowing UTC an OverflowError; a Decimal operation an ArithmeticError):
# each is that record's problem, never the run's.
RECORD_ERRORS: Final = (BadRecordError, ValueError, ArithmeticError, TypeError, RecursionError)


def json_text(field_name: str, value: object) -> str:
    """rules.json_object's checks, returning the JSON text jsonb receives."""
    if not isinstance(value, dict):
        raise BadRecordError(f"{field_name} must be a JSON object, got {type(value).__name__}")
    if not value:
        return "{}"
    try:
        text = _JSON.encode(value)
        text.encode("utf-8")  # a lone surrogate cannot be sent to PostgreSQL
    except (TypeError, ValueError) as exc:
        raise BadRecordError(f"{field_name} is not encodable as JSON: {exc}") from None
    except RecursionError:
        raise BadRecordError(f"{field_name} is nested too deep to encode as JSON") from None
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise BadRecordError(f"{field_name} contains a NUL character")
    return text


def money(field_name: str, value: object) -> Decimal:
    """rules.money (a fast path for the usual Decimal that already has two places)."""
    if type(value) is Decimal and value.is_finite() and 0 < value <= rules.MONEY_MAX:  # zero: -0.00 to rules
        quantized = value.quantize(rules.TWO_PLACES)
        if quantized == value:
            return quantized
    return rules.money(field_name, value)  # the rule itself, and its message


_SCORES: Final[dict[float, Decimal]] = {}  # float → stored Decimal: scores repeat (two places, mostly)
_SCORES_MAX: Final = 4096


def stored_score(value: object) -> Decimal:
    """rules.coherence_score as the Decimal the column stores (a fast path for the usual float)."""
    if type(value) is float:
        stored = _SCORES.get(value)  # only floats in (0, 1] are ever kept; -0.0 and NaN never match
        if stored is not None:
            return stored
        if math.isfinite(value):
            exact = Decimal(repr(value))
            if 0 < exact <= 1:  # zero (and -0.0) through the rule
                stored = exact.quantize(rules.TWO_PLACES, rounding=ROUND_HALF_EVEN)
                if len(_SCORES) < _SCORES_MAX:
                    _SCORES[value] = stored
                return stored
    return Decimal(str(rules.coherence_score(value)))  # the rule itself, and its message


def error_text(exc: BaseException) -> str:
    """A conversion error that is no rule's message (e.g. a time overflowing UTC): type and text."""
    if isinstance(exc, RecursionError):
        return "nested too deep to convert"
    return f"{type(exc).__name__}: {exc}"


def uuid_or_none(value: object) -> UUID | None:
    try:
        return UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def as_json(record: Any) -> Any:
    """A record of a `Snapshot` (no file behind it) as the file would hold it."""
    if isinstance(record, DependencyEdge):
        return [[record.from_ecosystem, record.from_name], [record.to_ecosystem, record.to_name]]
    if isinstance(record, ContributesTo):
        return [record.contributor_id, [record.ecosystem, record.name]]
    if isinstance(record, BaseModel):
        try:
            return record.model_dump(mode="json")
        except (ValueError, TypeError, RecursionError) as exc:  # e.g. metadata nested past the serializer's depth
            return {"unserialisable": f"{type(exc).__name__}: {exc}", "key": record_key("", record)}
    return record
