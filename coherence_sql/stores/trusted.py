"""Models from rows PostgreSQL already constrained, without running pydantic's validators again.

Validating a row costs more than reading it: `list_contributors(100)` spent ~90% of its time
building models, most of it in e-mail validation of addresses that were validated on their way in.
`TrustedBuilder(Model)` builds the model the way `model_construct` does, but only after a cheap check
that validation would return every value unchanged (the exact type the field's annotation names,
None where it is optional, finite decimals, numeric bounds the field declares). A value that fails
the check sends the whole row through `Model(**values)`, so the result (or the ValidationError) is
always what validation gives: tests/stores/test_trusted_models.py checks that with Hypothesis.

E-mail fields are the one exception to "unchanged": validation normalizes the address, so their
values go through a bounded cache of validated addresses (rows repeat the same addresses).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, Final, Generic, TypeVar
from uuid import UUID

import annotated_types
from pydantic import BaseModel, EmailStr, TypeAdapter, ValidationError

__all__ = ["EMAIL_CACHE_SIZE", "TrustedBuilder"]

M = TypeVar("M", bound=BaseModel)
Check = Callable[[Any], bool]

EMAIL_CACHE_SIZE: Final = 65_536  # validated addresses kept (~10 MB at most)
_EMAIL: Final = TypeAdapter(EmailStr)
_NOT_AN_EMAIL: Final = object()


@lru_cache(maxsize=EMAIL_CACHE_SIZE)
def _normalized_email(value: str) -> object:
    try:
        return _EMAIL.validate_python(value)
    except ValidationError:
        return _NOT_AN_EMAIL  # validation of the whole row reports it, as it always did


def _exact(*kinds: type) -> Check:
    return lambda value: type(value) in kinds


def _json_object(value: Any) -> bool:
    return type(value) is dict and all(type(key) is str for key in value)


def _finite_decimal(value: Any) -> bool:
    return type(value) is Decimal and value.is_finite()


def _type_check(annotation: Any) -> Check | None:
    """A check that validation returns a value of this annotation unchanged; None: no such check."""
    if annotation in (str, int, float, bool, datetime):
        return _exact(annotation)
    if annotation is Decimal:
        return _finite_decimal
    if annotation is UUID:
        return lambda value: isinstance(value, UUID)  # asyncpg's UUID subclass is kept as it is
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _exact(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and args[:1] == (str,) and args[1] is Any:
        return _json_object
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        inner = _type_check(rest[0]) if len(rest) == 1 else None
        if inner is None:
            return None
        return lambda value: value is None or inner(value)
    return None


def _bound_check(constraint: object) -> Check | None:
    if isinstance(constraint, annotated_types.Ge):
        return lambda value: value >= constraint.ge
    if isinstance(constraint, annotated_types.Le):
        return lambda value: value <= constraint.le
    return None


class TrustedBuilder(Generic[M]):
    """`builder(**values)` is `Model(**values)` for rows PostgreSQL already constrained, at a
    fraction of the cost. Every field must be given (a row has every column).

    `validate_when(values)` names rows a model validator would change (e.g. Asset's default name),
    which take the validating path; `validators` lists the model's validators it accounts for (an
    unlisted one, added to the model later, makes construction fail rather than be skipped)."""

    def __init__(
        self,
        model: type[M],
        *,
        validate_when: Callable[[Mapping[str, Any]], bool] | None = None,
        validators: frozenset[str] = frozenset(),
    ) -> None:
        decorators = model.__pydantic_decorators__
        declared = {*decorators.model_validators, *decorators.field_validators, *decorators.validators}
        declared |= {*decorators.root_validators, *decorators.field_serializers, *decorators.model_serializers}
        if declared != set(validators) or model.__private_attributes__ or model.model_config.get("extra"):
            raise TypeError(f"{model.__name__}: validators {sorted(declared)} are not accounted for")
        self._model = model
        self._names = tuple(model.model_fields)
        self._validate_when = validate_when
        self._emails: tuple[str, ...] = ()
        checks: list[tuple[str, Check]] = []
        for name, info in model.model_fields.items():
            if info.annotation is EmailStr:
                self._emails += (name,)
                continue
            check = _type_check(info.annotation)
            bounds = [_bound_check(constraint) for constraint in info.metadata]
            if check is None or None in bounds:
                raise TypeError(f"{model.__name__}.{name}: no trusted check for {info.annotation!r}")
            checks.append((name, check))
            checks.extend((name, bound) for bound in bounds if bound is not None)
        self._checks = tuple(checks)

    def __call__(self, **values: Any) -> M:
        for name, check in self._checks:
            if not check(values[name]):
                return self._model(**values)
        if self._validate_when is not None and self._validate_when(values):
            return self._model(**values)
        fields = {name: values[name] for name in self._names}  # the model's field order, as validation keeps it
        for name in self._emails:
            email = fields[name]
            normalized = _normalized_email(email) if type(email) is str else _NOT_AN_EMAIL
            if normalized is _NOT_AN_EMAIL:
                return self._model(**values)
            fields[name] = normalized
        model = self._model.__new__(self._model)
        object.__setattr__(model, "__dict__", fields)
        object.__setattr__(model, "__pydantic_fields_set__", set(fields))
        object.__setattr__(model, "__pydantic_extra__", None)
        object.__setattr__(model, "__pydantic_private__", None)
        return model
