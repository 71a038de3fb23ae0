"""The package's environment variables, read with pydantic-settings.

A variable set is an `EnvironmentModel` whose field names are the variables' own names and whose
field descriptions say what a value must be. `read_environment(model, env)` fills one from
`os.environ` (pydantic-settings' environment source) or from a given mapping (an env file, a test),
and turns every bad value into a `ConfigurationError` naming the variable; a secret is never shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from coherence_sql.errors import ConfigurationError

__all__ = ["EnvironmentModel", "read_environment"]

_Model = TypeVar("_Model", bound="EnvironmentModel")


class EnvironmentModel(BaseSettings):
    """Case-sensitive variable names, other variables ignored, a blank value taken as unset."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)
    # Variables whose values are never shown, not even in an error (a DSN carries a password).
    SECRET: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        stripped = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return {k: v for k, v in stripped.items() if v != ""}


def read_environment(model: type[_Model], env: Mapping[str, str] | None = None) -> _Model:
    """`model` filled from `env`, else from the process environment."""
    try:
        if env is None:
            return model()
        return model.model_validate({name: env[name] for name in model.model_fields if name in env})
    except ValidationError as exc:
        raise ConfigurationError("; ".join(_problem(model, e) for e in exc.errors())) from None


def _problem(model: type[EnvironmentModel], error: ErrorDetails) -> str:
    name = str(error["loc"][0]) if error["loc"] else model.__name__
    field = model.model_fields.get(name)
    must = field.description if field is not None and field.description else error["msg"].lower()
    return f"{name} must be {must}, got {_shown(name in model.SECRET, error['input'])}"


def _shown(secret: bool, value: object) -> str:
    if secret:
        return "a value that is not shown (it may hold a password)"
    if isinstance(value, str):
        try:
            return str(int(value))  # an integer out of range reads as the number it is
        except ValueError:
            pass
    return repr(value)
