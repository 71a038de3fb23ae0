"""The one redaction of connection strings: what may be printed of a DSN, and of text around it.

`redact(dsn)` keeps everything an operator needs to tell which server (scheme, user, hosts,
ports, database, harmless parameters) and replaces every password with `***`:

- URLs (`postgresql://`, `postgres://`, any `scheme://`): the password of the userinfo (up to
  the last `@`), even when it holds unescaped `@`, `/`, `:`, `?` or `#`; the value of every query parameter whose
  (percent-decoded, any case) name contains `password` (`password`, `sslpassword`, repeated);
- libpq `key=value` strings: the value of every `*password*` keyword, quoted or not, with
  escaped quotes; a value that is itself a DSN (libpq's `dbname=postgresql://…`) is redacted
  in turn; whatever cannot be parsed is hidden from there on.

Secrets are masked where they stand in the original text, so nothing else is re-rendered.
`scrub(text, *dsns)` hides the secrets of known DSNs wherever they occur in other text (a
driver's error message, a log line); `failure_message` decides what of a driver's failure may be
shown; `redact_text(text)` redacts the DSNs it can recognise in free text when the DSN itself is
not known (an argument echoed by a usage error, a traceback).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote, unquote_plus

import asyncpg

__all__ = ["MASK", "failure_message", "redact", "redact_text", "scrub", "secrets_of"]

MASK: Final = "***"
# A URL: a scheme (JDBC-style prefixes allowed) then `//`.
_URL: Final = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.\-]*:)*[A-Za-z][A-Za-z0-9+.\-]*://")
# The shortest piece of a password that a client-side message may not quote.
_FRAGMENT: Final = 3
_WITHHELD: Final = "(the driver's message is withheld: it quotes part of the password)"

Span = tuple[int, int]


def _is_secret_key(name: str) -> bool:
    return "password" in name.strip().lower()


def _url_spans(dsn: str, start: int) -> list[Span]:
    rest_at = start
    rest = dsn[rest_at:]
    # The userinfo ends at the last `@` of all: a pasted password may hold raw `@ / : ? # =`, so
    # no earlier `@` can be told apart from one inside it. An `@` in a query value then hides
    # the host too: more is hidden, never less.
    at = rest.rfind("@")
    spans: list[Span] = []
    if at >= 0:
        colon = rest.find(":", 0, at)
        if colon >= 0:
            spans.append((rest_at + colon + 1, rest_at + at))
    # Every `name=value` segment, split on `?` and `&` whatever the structure (a query value may
    # hold the `@` taken above for the userinfo's end).
    for match in re.finditer(r"[^?&]+", rest):
        name, eq, _ = match.group().partition("=")
        if eq and _is_secret_key(unquote_plus(name)):
            spans.append((rest_at + match.start() + len(name) + 1, rest_at + match.end()))
    return spans


def _keyword_spans(dsn: str, offset: int = 0) -> list[Span]:
    """libpq `key = value` pairs (values bare, or single-quoted with backslash escapes)."""
    spans: list[Span] = []
    i, n = 0, len(dsn)
    while True:
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n:
            return spans
        key_at = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        key = dsn[key_at:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n or dsn[i] != "=" or not key:
            return [*spans, (offset + key_at, offset + n)]  # unparseable: hide the rest
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        value_at = i
        if i < n and dsn[i] == "'":
            i += 1
            while i < n and dsn[i] != "'":
                i += 2 if dsn[i] == "\\" else 1
            if i >= n:
                return [*spans, (offset + value_at, offset + n)]  # unterminated quote
            i += 1
            inner_at, inner_end = value_at + 1, i - 1
        else:
            while i < n and not dsn[i].isspace():
                i += 2 if dsn[i] == "\\" else 1
            i = min(i, n)
            inner_at, inner_end = value_at, i
        if _is_secret_key(key):
            spans.append((offset + value_at, offset + i))
        else:
            inner = dsn[inner_at:inner_end]
            if "=" in inner or "://" in inner:  # libpq expands a dbname that is a DSN itself
                spans.extend(_spans(inner, offset + inner_at))


def _spans(dsn: str, offset: int = 0) -> list[Span]:
    found = _URL.match(dsn)
    if found:
        return [(offset + a, offset + b) for a, b in _url_spans(dsn, found.end())]
    if not dsn.strip():
        return []
    return _keyword_spans(dsn, offset)


def _merged(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def redact(dsn: str) -> str:
    """`dsn` with every password replaced by `***`; user, hosts, ports and database kept."""
    out: list[str] = []
    last = 0
    for a, b in _merged(_spans(dsn)):
        out.append(dsn[last:a])
        out.append(MASK)
        last = b
    out.append(dsn[last:])
    return "".join(out)


def _unescaped(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def secrets_of(dsn: str) -> list[str]:
    """Every password in `dsn`, as written and as decoded (percent-encoding, quotes, escapes)."""
    found: set[str] = set()
    for a, b in _merged(_spans(dsn)):
        raw = dsn[a:b]
        found.update(v for v in (raw, unquote(raw), unquote_plus(raw), _unescaped(raw)) if v)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, *dsns: str | None) -> str:
    """`text` with every DSN given redacted and each of their passwords replaced by `***`."""
    for dsn in dsns:
        if not dsn:
            continue
        text = text.replace(dsn, redact(dsn))
        for secret in secrets_of(dsn):
            text = text.replace(secret, MASK)
    return text


# In free text: a URL up to white space or a quote, and `…password…=value` keyword pairs.
_URL_IN_TEXT: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)*[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]*")
_KEYWORD_IN_TEXT: Final = re.compile(r"(\w*password\w*\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'\"]+)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted and every `…password…=value` value masked."""
    text = _URL_IN_TEXT.sub(lambda m: redact(m.group()), text)
    return _KEYWORD_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)


def _quotes_a_piece(text: str, secret: str) -> bool:
    if len(secret) <= _FRAGMENT:
        return secret in text
    return any(secret[i : i + _FRAGMENT] in text for i in range(len(secret) - _FRAGMENT + 1))


def failure_message(exc: BaseException, text: str, *dsns: str | None) -> str:
    """What may be shown of `text`, the message of the driver failure `exc` with these DSNs.

    The server's messages never quote a password: scrubbed. Socket errors are scrubbed and
    withheld if they still quote a piece of one. Client-side DSN parsing errors quote the pieces
    of a mis-parsed DSN (`bad query field: 'ss@host'` for a password `pa?ss`): withheld whenever
    the DSN holds a password.
    """
    cleaned = scrub(text, *dsns)
    secrets = [secret for dsn in dsns for secret in secrets_of(dsn or "")]
    if isinstance(exc, asyncpg.PostgresError) or not secrets:
        return cleaned
    if isinstance(exc, OSError | TimeoutError):
        bare = cleaned.replace(MASK, "")
        return _WITHHELD if any(_quotes_a_piece(bare, secret) for secret in secrets) else cleaned
    return (
        f"the DSN could not be used ({type(exc).__name__}; the driver's message is withheld because "
        "it may quote part of the password): percent-encode @ / ? # : in the password"
    )
