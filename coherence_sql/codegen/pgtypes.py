"""PostgreSQL types (as asyncpg describes them) to the Python types the generated code declares.

The mapping follows what asyncpg decodes with the package's codecs (jsonb/json → Python objects);
the plan's ENUM types become the models' enums; anything else unknown is `Any`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# asyncpg Type.name (pg_catalog) → (annotation, import module or "", imported name or "")
_SCALARS: Final[dict[str, tuple[str, str, str]]] = {
    "int2": ("int", "", ""),
    "int4": ("int", "", ""),
    "int8": ("int", "", ""),
    "oid": ("int", "", ""),
    "numeric": ("Decimal", "decimal", "Decimal"),
    "float4": ("float", "", ""),
    "float8": ("float", "", ""),
    "text": ("str", "", ""),
    "varchar": ("str", "", ""),
    "bpchar": ("str", "", ""),
    "char": ("str", "", ""),
    "name": ("str", "", ""),
    "citext": ("str", "", ""),
    "bool": ("bool", "", ""),
    "uuid": ("UUID", "uuid", "UUID"),
    "timestamptz": ("datetime", "datetime", "datetime"),
    "timestamp": ("datetime", "datetime", "datetime"),
    "date": ("date", "datetime", "date"),
    "time": ("time", "datetime", "time"),
    "interval": ("timedelta", "datetime", "timedelta"),
    "bytea": ("bytes", "", ""),
    "jsonb": ("Any", "typing", "Any"),
    "json": ("Any", "typing", "Any"),
    "void": ("None", "", ""),
}

# The plan's ENUM types (schema/001_initial_schema.sql) and the model enums they decode to.
ENUMS: Final[dict[str, str]] = {"task_type": "TaskType", "task_status": "TaskStatus"}
ENUM_MODULE: Final = "coherence_sql.models"


@dataclass(frozen=True, slots=True)
class PyType:
    """A Python type for a column or parameter.

    `annotation` is the element type for arrays (see `row_annotation`/`param_annotation`);
    `enum` names the model enum whose constructor converts the driver's str.
    """

    annotation: str
    imports: frozenset[tuple[str, str]] = frozenset()
    enum: str | None = None
    array: bool = False

    def row_annotation(self) -> str:
        return f"list[{self.annotation}]" if self.array else self.annotation

    def param_annotation(self, *, nullable_elements: bool = False) -> str:
        element = f"{self.annotation} | None" if nullable_elements else self.annotation
        return f"Sequence[{element}]" if self.array else element

    def param_imports(self) -> frozenset[tuple[str, str]]:
        return self.imports | {("collections.abc", "Sequence")} if self.array else self.imports


ANY: Final = PyType("Any", frozenset({("typing", "Any")}))


def python_type(name: str, kind: str, schema: str, *, is_enum: bool = False) -> PyType:
    """The Python type of a PostgreSQL type named `name` (asyncpg's Type.name, `[]` for arrays).

    `is_enum` says the (element) type is a user ENUM, which asyncpg decodes as str.
    """
    if kind == "array" and name.endswith("[]"):
        element = python_type(name[:-2], "scalar", schema, is_enum=is_enum)
        return PyType(element.annotation, element.imports, element.enum, array=True)
    if schema != "pg_catalog":
        if name in ENUMS:
            enum = ENUMS[name]
            return PyType(enum, frozenset({(ENUM_MODULE, enum)}), enum)
        if is_enum:
            return PyType("str")
        return ANY
    if kind != "scalar" or name not in _SCALARS:
        return ANY
    annotation, module, imported = _SCALARS[name]
    return PyType(annotation, frozenset({(module, imported)}) if module else frozenset())
