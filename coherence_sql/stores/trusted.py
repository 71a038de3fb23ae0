"""Models from rows PostgreSQL already constrained, without running pydantic's validators again.

Validating a row costs more than reading it: `list_contributors(100)` spent ~90% of its time
building models, most of it in e-mail validation of addresses that were validated on their way in.
`TrustedBuilder(Model).build` builds the model the way `model_construct` does, but only after a
cheap check that validation would return every value unchanged (the exact type the field's
annotation names, None where it is optional, finite decimals, numeric bounds the field declares).
A value that fails the check sends the whole row through `Model(**values)`, so the result (or the
ValidationError) is always what validation gives: tests/stores/test_trusted_models.py checks that
with Hypothesis.

E-mail fields are the one exception to "unchanged": validation normalizes the address, so their
values go through a bounded cache of validated addresses (rows repeat the same addresses).

`build` is compiled per model from Python source, as `dataclasses` compiles `__init__`: the
checks inline in one expression cost ~3 µs a row where a loop over check functions cost ~13 µs,
and a list of 100 rows is most of a list read's time (docs/decisions.md "Speed, round three").
"""

from __future__ import annotations

import keyword
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

EMAIL_CACHE_SIZE: Final = 65_536  # validated addresses kept (~10 MB at most)
_EMAIL: Final = TypeAdapter(EmailStr)
_NOT_AN_EMAIL: Final = object()


@lru_cache(maxsize=EMAIL_CACHE_SIZE)
def _normalized_email(value: str) -> object:
    try:
        return _EMAIL.validate_python(value)
    except ValidationError:
        return _NOT_AN_EMAIL  # validation of the whole row reports it, as it always did


def _json_object(value: Any) -> bool:
    return type(value) is dict and all(type(key) is str for key in value)


class _Source:
    """The compiled function's text and the objects its names refer to."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}

    def constant(self, value: Any) -> str:
        """A name in the compiled function's globals that refers to `value`."""
        name = f"_c{len(self.names)}"
        self.names[name] = value
        return name


def _type_check(annotation: Any, value: str, source: _Source) -> str | None:
    """An expression true when validation returns `value` (a parameter name) of this annotation
    unchanged; None: no such check is known."""
    exact = annotation in (str, int, float, bool, datetime)
    if exact or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return f"_type({value}) is {source.constant(annotation)}"
    if annotation is Decimal:
        return f"(_type({value}) is _Decimal and {value}.is_finite())"
    if annotation is UUID:
        return f"_isinstance({value}, _UUID)"  # asyncpg's UUID subclass is kept as it is
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and args[:1] == (str,) and args[1] is Any:
        return f"_json_object({value})"
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        inner = _type_check(rest[0], value, source) if len(rest) == 1 else None
        return None if inner is None else f"({value} is None or {inner})"
    return None


def _bound_check(constraint: object, value: str, source: _Source) -> str | None:
    if isinstance(constraint, annotated_types.Ge):
        return f"{value} >= {source.constant(constraint.ge)}"
    if isinstance(constraint, annotated_types.Le):
        return f"{value} <= {source.constant(constraint.le)}"
    return None


# The compiled function's own name (its locals and globals start with `_`, which no field may).
_LOCALS: Final = frozenset({"build"})


class TrustedBuilder(Generic[M]):
    """`TrustedBuilder(Model).build(**values)` is `Model(**values)` for rows PostgreSQL already
    constrained, at a fraction of the cost. Every field must be given (a row has every column).

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
        self.source, names = self._compile(model, validate_when)
        self.build: Callable[..., M] = names["build"]

    @staticmethod
    def _compile(
        model: type[M], validate_when: Callable[[Mapping[str, Any]], bool] | None
    ) -> tuple[str, dict[str, Any]]:
        source = _Source()
        fields = tuple(model.model_fields)
        checks: list[str] = []
        emails: list[str] = []
        for name, info in model.model_fields.items():
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name in _LOCALS:
                raise TypeError(f"{model.__name__}.{name}: not usable as a parameter name")
            if info.annotation is EmailStr:
                emails.append(name)
                continue
            check = _type_check(info.annotation, name, source)
            bounds = [_bound_check(constraint, name, source) for constraint in info.metadata]
            if check is None or None in bounds:
                raise TypeError(f"{model.__name__}.{name}: no trusted check for {info.annotation!r}")
            checks.append(check)
            checks.extend(bound for bound in bounds if bound is not None)
        # The model's field order, as validation keeps it; e-mails replaced by their normal form.
        values = ", ".join(f"{name!r}: {'_e_' + name if name in emails else name}" for name in fields)
        keywords = ", ".join(f"{name}={name}" for name in fields)
        lines = [
            f"def build(*, {', '.join(fields)}):",
            f"    if {' and '.join(checks) or 'True'}:",
        ]
        indent = "        "
        for name in emails:
            lines += [
                f"{indent}_e_{name} = _normalized_email({name}) if _type({name}) is _str else _NOT_AN_EMAIL",
                f"{indent}if _e_{name} is not _NOT_AN_EMAIL:",
            ]
            indent += "    "
        lines.append(f"{indent}_values = {{{values}}}")
        if validate_when is not None:
            lines.append(f"{indent}if not _validate_when(_values):")
            indent += "    "
        lines += [
            f"{indent}_built = _new(_model)",
            f"{indent}_set(_built, '__dict__', _values)",
            f"{indent}_set(_built, '__pydantic_fields_set__', {{{', '.join(map(repr, fields))}}})",
            f"{indent}_set(_built, '__pydantic_extra__', None)",
            f"{indent}_set(_built, '__pydantic_private__', None)",
            f"{indent}return _built",
            f"    return _model({keywords})",
        ]
        text = "\n".join(lines) + "\n"
        names: dict[str, Any] = {
            **source.names,
            "_type": type,
            "_isinstance": isinstance,
            "_str": str,
            "_Decimal": Decimal,
            "_UUID": UUID,
            "_json_object": _json_object,
            "_normalized_email": _normalized_email,
            "_NOT_AN_EMAIL": _NOT_AN_EMAIL,
            "_validate_when": validate_when,
            "_new": model.__new__,
            "_model": model,
            "_set": object.__setattr__,
        }
        exec(compile(text, f"<trusted builder of {model.__name__}>", "exec"), names)  # the text is ours, built above
        return text, names
