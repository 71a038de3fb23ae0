"""The typed store-status payload (spec 054's `GET /api/agent/store-status`, and `/api/health`'s
store section), section by section.

`CutoverStores.store_status()` returns a `StoreStatus`; `.model_dump()` is the JSON object the API
serves (the keys are part of the contract: operators' checks and `coherence-sql rollback` read them).
A FastAPI route can return it as it is (`response_model=StoreStatus`): it serializes to JSON, reads
back as an equal model, and its OpenAPI schema names every field (docs/deployment.md "Health checks").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, SerializerFunctionWrapHandler, model_serializer
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusSettings(_Section):
    """The cut-over settings in force (the plan's variables)."""

    dual_write_mode: bool
    read_from_postgres_percent: int
    shadow_compare_percent: int
    postgres_primary: bool
    memory_writes: bool
    postgres_budget_ms: int


class Diverged(_Section):
    """Whether PostgreSQL is known to miss writes nothing can replay, and what to do about it."""

    since: str | None
    action: str | None


class PoolStatus(_Section):
    size: int
    idle: int
    max: int


class PostgresHealth(_Section):
    """PostgreSQL as seen now. Only the fields that apply are in the payload: `configured` alone
    when no phase uses PostgreSQL; `pool` once it was reached; `server_version` when it answers,
    `error` when it does not."""

    configured: bool
    pool: PoolStatus | None = None
    reachable: bool | None = None
    server_version: str | None = None
    error: str | None = None

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # In an API's OpenAPI document: the fields themselves (each optional but `configured`),
        # not the untyped object the serializer below would describe.
        return handler({key: value for key, value in schema.items() if key != "serialization"})

    @model_serializer(mode="wrap")
    def _only_what_applies(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {name: value for name, value in dumped.items() if name in self.model_fields_set}


class WriteCounts(_Section):
    memory_ok: int
    postgres_ok: int
    postgres_failed: int
    journaled: int
    dead_lettered: int
    over_budget: int
    journal_write_failures: int
    memory_failed_after_postgres: int
    errors_by_type: dict[str, int]
    in_flight_after_budget: int


class ReadCounts(_Section):
    memory: int
    postgres: int
    fallbacks_to_memory: int


class LastReplay(_Section):
    applied: int
    already_applied: int
    remaining: int
    set_aside: int
    error: str | None


class JournalStatus(_Section):
    """The write journal: writes waiting for PostgreSQL (a count, or why it cannot be read)."""

    path: str | None
    pending: int | str
    set_aside: int | str
    last_replay: LastReplay | None


class DeadLetterStatus(_Section):
    """Writes PostgreSQL refused on their data, kept whole for an operator."""

    path: str | None
    count: int | str
    recent: list[str]


class ShadowStatus(_Section):
    """Shadow comparisons so far and the newest mismatches (each `Mismatch.as_json()`)."""

    compared: int
    matched: int
    mismatched: int
    errors: int
    timeouts: int
    skipped: int
    mean_control_ms: float | None
    mean_candidate_ms: float | None
    recent_mismatches: list[dict[str, Any]]


class StoreStatus(_Section):
    """Where the cut-over stands: the phase and its settings, PostgreSQL's health, what writes and
    reads did, the journal, the dead letters and the shadow comparison."""

    phase: Literal["memory", "dual-write", "postgres-primary"]
    settings: StatusSettings
    source_of_truth: Literal["memory", "postgres"]
    degraded: bool
    diverged: Diverged
    postgres: PostgresHealth
    writes: WriteCounts
    reads: ReadCounts
    journal: JournalStatus
    dead_letters: DeadLetterStatus
    shadow: ShadowStatus
