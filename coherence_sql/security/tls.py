"""Why a connection was refused, when TLS is the reason: the one place a connect failure is typed.

asyncpg reads libpq's TLS parameters itself (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
`sslpassword`, `sslcrl` in the URL; PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGSSLCRL in the
environment). What it does not do is say which of them was wrong: this module turns its failures
into `TLSError` (certificate not signed by the given CA, host name not in the certificate, a
TLS-only server refusing a connection without TLS) and everything else into
`DatabaseUnavailableError`, with the DSN redacted.
"""

from __future__ import annotations

import os
import ssl
from typing import Final
from urllib.parse import parse_qs, urlsplit

import asyncpg

from coherence_sql.errors import DatabaseUnavailableError, TLSError, translate
from coherence_sql.redaction import failure_message, redact

__all__ = ["connect_failure", "sslmode_of"]

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH: Final = frozenset({62, 64})
_INVALID_AUTHORIZATION: Final = "28000"  # pg_hba.conf refused the login (e.g. `hostnossl ... reject`)


def _query(dsn: str) -> dict[str, list[str]]:
    """A URL's query parameters; none when it cannot be parsed (asyncpg says why, elsewhere)."""
    try:
        return parse_qs(urlsplit(dsn).query)
    except ValueError:
        return {}


def sslmode_of(dsn: str) -> str | None:
    """The sslmode a DSN asks for (URL query or libpq keyword), else $PGSSLMODE, else None."""
    if "://" in dsn:
        values = _query(dsn).get("sslmode")
        if values:
            return values[-1].strip().lower()
    else:
        for pair in dsn.split():
            key, eq, value = pair.partition("=")
            if eq and key.strip().lower() == "sslmode":
                return value.strip("'").lower()
    env = os.environ.get("PGSSLMODE", "").strip().lower()
    return env or None


def _tls_files(dsn: str) -> set[str]:
    names = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
    found = {os.environ.get(f"PG{name.upper()}", "") for name in names}
    if "://" in dsn:
        query = _query(dsn)
        found.update(value for name in names for value in query.get(name, []))
    else:
        found.update(v.strip("'") for k, _, v in (p.partition("=") for p in dsn.split()) if k.strip() in names)
    return found - {""}


def connect_failure(target: str, exc: BaseException) -> DatabaseUnavailableError:
    """The typed error for a failed connect to `target`; nothing of a password is quoted."""
    where = f"cannot connect to {redact(target)}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or "certificate verify failed"
        if exc.verify_code in _NAME_MISMATCH:
            return TLSError(
                f"{where}: TLS hostname mismatch: the server's certificate does not name the host connected to "
                f"({reason}); connect by a name the certificate lists, or have the certificate reissued"
            )
        return TLSError(
            f"{where}: TLS certificate verify failed: the server's certificate is not signed by the CA in "
            f"sslrootcert ({reason}); point sslrootcert at the CA that issued it"
        )
    unreadable = sorted(path for path in _tls_files(target) if not os.access(path, os.R_OK))
    if isinstance(exc, OSError) and unreadable:  # ssl's own errors do not name the file
        return TLSError(f"{where}: the TLS file {', '.join(unreadable)} cannot be read: {exc.strerror or exc}")
    if isinstance(exc, ssl.SSLError):
        # Before a handshake (a client key that sslpassword does not open) or during one.
        hint = "; check that sslpassword opens sslkey and that sslkey belongs to sslcert" if _tls_files(target) else ""
        return TLSError(f"{where}: TLS setup failed: {failure_message(exc, str(exc), target)}{hint}")
    message = failure_message(exc, str(translate(exc)), target)
    if (
        isinstance(exc, asyncpg.PostgresError)
        and getattr(exc, "sqlstate", None) == _INVALID_AUTHORIZATION
        # 28000 is also "role ... is not permitted to log in": only pg_hba.conf's refusal is TLS's.
        and "pg_hba.conf" in str(exc)
        and sslmode_of(target) == "disable"
    ):
        return TLSError(
            f"{where}: the server refused a connection without TLS ({message}); sslmode=disable cannot reach "
            f"a server that requires TLS: use sslmode=verify-full with sslrootcert"
        )
    return DatabaseUnavailableError(f"{where}: {message}")
