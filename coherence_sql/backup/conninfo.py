"""A DSN made safe for a child program's command line: the password moves into its environment.

Anyone on the machine can read a process's arguments (`ps`), so pg_dump and pg_restore get the
connection URL without its password and the password as PGPASSWORD, which only the same user
(and root) can read. Only URLs are accepted, as everywhere in the package (asyncpg reads no
libpq `key=value` strings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from coherence_sql.errors import ConfigurationError
from coherence_sql.redaction import redact

__all__ = ["ChildConnection", "child_connection", "database_of", "with_database"]

_SCHEMES: Final = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class ChildConnection:
    """What a client program is given: a URL with no password, and the environment it runs in."""

    url: str
    env: dict[str, str] = field(repr=False)


def _split(dsn: str) -> tuple[str, str, str, list[tuple[str, str]], str]:
    parts = urlsplit(dsn.strip())
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"a backup or restore needs a postgresql:// URL, got {redact(dsn)!r}"
            if "://" in dsn
            else "a backup or restore needs a postgresql:// URL (key=value connection strings are not read)"
        )
    return parts.scheme, parts.netloc, parts.path, parse_qsl(parts.query, keep_blank_values=True), parts.fragment


def child_connection(dsn: str, base_env: dict[str, str] | None = None) -> ChildConnection:
    """`dsn` without its password (userinfo or `?password=`), and `base_env` (default: this
    process's) with PGPASSWORD set to it. A DSN without one leaves `base_env` as it is: the
    child finds the password where the package's own connection did (PGPASSWORD, ~/.pgpass)."""
    scheme, netloc, path, query, fragment = _split(dsn)
    password: str | None = None
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, raw = userinfo.partition(":")
        password = unquote(raw)
        netloc = f"{user}@{hosts}"
    kept: list[tuple[str, str]] = []
    for name, value in query:
        if name == "password":
            password = value
        elif "password" in name.lower():
            raise ConfigurationError(
                f"the URL's {name} parameter cannot be passed to pg_dump/pg_restore without showing it "
                f"on their command line: use a key file that needs no password"
            )
        else:
            kept.append((name, value))
    env = dict(os.environ if base_env is None else base_env)
    if password is not None:
        env["PGPASSWORD"] = password
    url = urlunsplit((scheme, netloc, path, urlencode(kept, safe="/", quote_via=quote), fragment))
    return ChildConnection(url=url, env=env)


def database_of(dsn: str) -> str:
    """The database a URL names (its path), or '' when it names none."""
    return unquote(_split(dsn)[2].lstrip("/"))


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    scheme, netloc, _, query, fragment = _split(dsn)
    query = [(k, v) for k, v in query if k != "dbname"]
    return urlunsplit(
        (scheme, netloc, "/" + quote(database, safe=""), urlencode(query, safe="/", quote_via=quote), fragment)
    )
