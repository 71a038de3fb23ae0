"""The plan's least-privilege roles: an owner that migrates, the application, a read-only role for
verify and reporting, and the backfill (with `GRANT SET ON PARAMETER session_replication_role`).

`role_statements()` asks PostgreSQL to render them (queries/roles.sql: every name quoted by
`format('%I')`, the access map in one place) for the connected database; `apply_roles()` runs them
in one transaction; `role_drift()` says what running them would change (nothing, once applied).
Passwords are never part of them: the operator sets each with `\\password`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from coherence_sql.db import Connection
from coherence_sql.errors import DRIVER_FAILURES, CoherenceSQLError, ConfigurationError, translate
from coherence_sql.sql import roles as roles_sql

__all__ = ["DEFAULT_ROLES", "RoleNames", "apply_roles", "role_drift", "role_statements"]

_MAX_NAME_BYTES: Final = 63  # NAMEDATALEN - 1: PostgreSQL would silently truncate a longer name
_RESERVED: Final = frozenset({"public", "none", "current_user", "session_user", "current_role"})


@dataclass(frozen=True, slots=True)
class RoleNames:
    """The four role names (any spelling PostgreSQL allows; quoted wherever they are used)."""

    owner: str = "coherence_owner"
    app: str = "coherence_app"
    readonly: str = "coherence_readonly"
    backfill: str = "coherence_backfill"

    def __post_init__(self) -> None:
        for kind, name in self.items():
            if not name or not name.strip():
                raise ConfigurationError(f"the {kind} role's name is empty")
            if "\x00" in name:
                raise ConfigurationError(f"the {kind} role's name holds a NUL byte")
            if len(name.encode()) > _MAX_NAME_BYTES:
                raise ConfigurationError(f"the {kind} role's name {name!r} is longer than {_MAX_NAME_BYTES} bytes")
            if name.lower() in _RESERVED or name.lower().startswith("pg_"):
                raise ConfigurationError(f"the {kind} role's name {name!r} is reserved by PostgreSQL")
        if len({name for _, name in self.items()}) != 4:
            raise ConfigurationError("the owner, app, readonly and backfill roles need four different names")

    def items(self) -> list[tuple[str, str]]:
        return [("owner", self.owner), ("app", self.app), ("readonly", self.readonly), ("backfill", self.backfill)]


DEFAULT_ROLES: Final = RoleNames()


async def role_statements(conn: Connection, names: RoleNames = DEFAULT_ROLES) -> list[str]:
    """The statements that create the roles where missing and grant them exactly the access map,
    for the connected database and its current schema; refuses roles that hold more than that."""
    try:
        privileged = await roles_sql.privileged_roles(conn, names=[name for _, name in names.items()])
        if privileged:
            described = "; ".join(_too_much(row) for row in privileged)
            raise ConfigurationError(
                f"a least-privilege role may not be {described}: name another role, or take those "
                f"attributes away (ALTER ROLE ... NOSUPERUSER NOCREATEROLE ...)"
            )
        rows = await roles_sql.role_setup_statements(
            conn, owner=names.owner, app=names.app, readonly=names.readonly, backfill=names.backfill
        )
    except CoherenceSQLError:
        raise
    except DRIVER_FAILURES as exc:
        raise translate(exc, "roles") from None
    return [row.statement for row in rows]


def _too_much(row: roles_sql.PrivilegedRolesRow) -> str:
    held = [
        label
        for label, on in (
            ("SUPERUSER", row.superuser),
            ("CREATEROLE", row.create_role),
            ("CREATEDB", row.create_db),
            ("REPLICATION", row.replication),
            ("BYPASSRLS", row.bypass_rls),
        )
        if on
    ]
    return f"{', '.join(held)} ({row.role_name} is)"


async def role_drift(conn: Connection, names: RoleNames = DEFAULT_ROLES) -> list[str]:
    """What `apply_roles` would change, one line each ("would grant TRUNCATE on table projects to
    coherence_app"); empty when the roles hold exactly the access map. Runs the statements in a
    transaction it always rolls back, and compares what the roles hold before and after."""
    statements = await role_statements(conn, names)
    wanted = [name for _, name in names.items()]
    transaction = conn.transaction()
    await transaction.start()
    try:
        before = {tuple(row) for row in await roles_sql.role_access(conn, names=wanted)}
        for statement in statements:
            await conn.execute(statement)
        after = {tuple(row) for row in await roles_sql.role_access(conn, names=wanted)}
    except CoherenceSQLError:
        raise
    except DRIVER_FAILURES as exc:
        raise translate(exc, "roles --check") from None
    finally:
        await transaction.rollback()
    gained = [_change("would grant", row) for row in sorted(after - before)]
    return gained + [_change("would revoke", row) for row in sorted(before - after)]


def _change(verb: str, row: tuple[object, ...]) -> str:
    kind, object_name, role_name, privilege = row
    if kind == "role":
        return f"would create role {role_name}"
    if kind == "setting":
        return f"{'would set' if verb == 'would grant' else 'would reset'} {object_name} for {role_name}"
    return f"{verb} {privilege} on {kind} {object_name} to {role_name}"


async def apply_roles(conn: Connection, names: RoleNames = DEFAULT_ROLES) -> list[str]:
    """Render and run the statements in one transaction (all or nothing); return them."""
    statements = await role_statements(conn, names)
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    except DRIVER_FAILURES as exc:
        raise translate(exc, "roles --apply") from None
    return statements
