"""The one redaction (coherence_sql.redaction): no password of any DSN form survives it, and the
user, hosts, ports and database do, so an operator can still tell which server.

Passwords are drawn from an alphabet of their own (upper-case letters no keyword or hex digit
has, non-ASCII letters, and the punctuation a DSN gives meaning to), while users, hosts and
databases use lower-case a-p and digits: any of the password's own letters in the output is a
leak, whole or partial.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.db import connect
from coherence_sql.errors import DatabaseUnavailableError
from coherence_sql.redaction import MASK, failure_message, redact, redact_text, scrub, secrets_of

SECRET_LETTERS = "QXZJKVYßøΩжé€"  # none in a keyword, a hex digit, a host or a name
PUNCTUATION = "@/:?#%&= '\"\\+;,"
NAME = st.text("abcdefghijklmnop01234", min_size=1, max_size=8)
PORT = st.integers(1, 65535).map(str)
# Always at least one of its own letters, so a partial leak shows as one of them.
PASSWORD = st.tuples(
    st.text(SECRET_LETTERS, min_size=1, max_size=4), st.text(SECRET_LETTERS + PUNCTUATION, max_size=12)
).flatmap(lambda parts: st.permutations(list(parts[0] + parts[1])).map("".join))


def assert_no_secret(out: str, *passwords: str) -> None:
    for password in passwords:
        for form in {password, quote(password, safe=""), quote_plus(password)}:
            assert form not in out, (form, out)
    leaked = [ch for ch in SECRET_LETTERS if ch in out]
    assert not leaked, (leaked, out)


@st.composite
def url_dsns(draw: st.DrawFn) -> tuple[str, str, list[str], list[str], str, list[str]]:
    """(dsn, user, hosts, ports, database, passwords) of a URL DSN."""
    scheme = draw(st.sampled_from(["postgresql", "postgres"]))
    user = draw(NAME)
    hosts = draw(st.lists(NAME, min_size=1, max_size=3))
    ports = [draw(PORT) for _ in hosts]
    database = draw(NAME)
    passwords: list[str] = []
    userinfo = user
    if draw(st.booleans()):
        password = draw(PASSWORD)
        passwords.append(password)
        # As an operator pastes it (raw @ / : ? # and all) or percent-encoded as the spec wants.
        userinfo += ":" + (password if draw(st.booleans()) else quote(password, safe=""))
    query: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            key = draw(st.sampled_from(["password", "PASSWORD", "Password", "sslpassword", "SSLPassword"]))
            password = draw(PASSWORD)
            passwords.append(password)
            query.append(f"{key}={quote(password, safe='')}")
        else:
            query.append(draw(st.sampled_from(["sslmode=prefer", "application_name=api", "connect_timeout=5"])))
    netloc = ",".join(f"{h}:{p}" for h, p in zip(hosts, ports, strict=True))
    dsn = f"{scheme}://{userinfo}@{netloc}/{database}" + ("?" + "&".join(query) if query else "")
    return dsn, user, hosts, ports, database, passwords


def _libpq_value(value: str, quoted: bool) -> str:
    if quoted or not value or any(ch.isspace() or ch == "'" for ch in value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value.replace("\\", "\\\\")


@st.composite
def keyword_dsns(draw: st.DrawFn) -> tuple[str, str, str, str, str, list[str]]:
    """(dsn, user, host, port, database, passwords) of a libpq key=value DSN, in any order."""
    user, host, port, database = draw(NAME), draw(NAME), draw(PORT), draw(NAME)
    passwords = [draw(PASSWORD) for _ in range(draw(st.integers(1, 2)))]
    pairs = [("host", host), ("port", port), ("user", user), ("dbname", database)]
    pairs += [(draw(st.sampled_from(["password", "sslpassword"])), p) for p in passwords]
    pairs = draw(st.permutations(pairs))
    equals = draw(st.sampled_from(["=", " = ", "= ", " ="]))
    dsn = " ".join(f"{k}{equals}{_libpq_value(v, draw(st.booleans()))}" for k, v in pairs)
    return dsn, user, host, port, database, passwords


@given(url_dsns())
def test_no_url_password_survives_and_the_server_is_still_named(
    case: tuple[str, str, list[str], list[str], str, list[str]],
) -> None:
    dsn, user, hosts, ports, database, passwords = case
    out = redact(dsn)
    assert_no_secret(out, *passwords)
    assert out.startswith(("postgresql://" + user, "postgres://" + user))
    for host, port in zip(hosts, ports, strict=True):
        assert f"{host}:{port}" in out
    assert f"/{database}" in out
    assert redact(out) == out  # idempotent: a redacted DSN can be redacted again
    for password in passwords:
        assert scrub(f"failed for {dsn} with {password}", dsn).count(password) == 0


@given(keyword_dsns())
def test_no_keyword_password_survives_and_the_server_is_still_named(
    case: tuple[str, str, str, str, str, list[str]],
) -> None:
    dsn, user, host, port, database, passwords = case
    out = redact(dsn)
    assert_no_secret(out, *passwords)
    for key, value in (("host", host), ("port", port), ("user", user), ("dbname", database)):
        assert f"{key}" in out
        assert value in out
    for password in passwords:
        assert password in secrets_of(dsn)  # decoded from quotes and escapes, for scrub()
        assert password not in scrub(f"error near {password}!", dsn)


@given(url_dsns(), keyword_dsns())
def test_a_dsn_inside_a_keyword_dsn_is_redacted_too(
    url: tuple[str, str, list[str], list[str], str, list[str]],
    keywords: tuple[str, str, str, str, str, list[str]],
) -> None:
    nested = f"{keywords[0]} dbname={_libpq_value(url[0], True)}"  # libpq expands a dbname that is a DSN
    assert_no_secret(redact(nested), *url[5], *keywords[5])


@given(url_dsns())
def test_free_text_quoting_a_dsn_is_redacted(case: tuple[str, str, list[str], list[str], str, list[str]]) -> None:
    dsn, *_, passwords = case
    assume(not any(ch.isspace() or ch in "'\"" for p in passwords for ch in p))  # a URL in text ends at a space
    text = f"error: unrecognized arguments: {dsn} --json"
    assert_no_secret(redact_text(text), *passwords)


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://api:s3cr@t/x@db.internal:5432/coherence", "postgresql://api:***@db.internal:5432/coherence"),
        ("postgres://api:p%40ss@db:5432/c?sslmode=require", "postgres://api:***@db:5432/c?sslmode=require"),
        (
            "postgresql://api@db/c?password=x&PassWord=y&sslpassword=z",
            "postgresql://api@db/c?password=***&PassWord=***&sslpassword=***",
        ),
        ("postgresql://api@db/c?pass%77ord=x", "postgresql://api@db/c?pass%77ord=***"),
        ("postgresql://api:pw@h1:5432,h2:5433/c", "postgresql://api:***@h1:5432,h2:5433/c"),
        ("postgresql://:pw@db/c", "postgresql://:***@db/c"),
        ("postgresql://api@db/c", "postgresql://api@db/c"),
        ("postgresql://postgres@/postgres?host=/run/pg", "postgresql://postgres@/postgres?host=/run/pg"),
        ("host=db user=api password='a b\\'c' dbname=c", "host=db user=api password=*** dbname=c"),
        ("host=db password = secret dbname=c", "host=db password = *** dbname=c"),
        ("host=db password='never closed dbname=c", "host=db password=***"),
        ("host=db oops", "host=db ***"),
        ("", ""),
    ],
)
def test_each_form_keeps_what_tells_the_server(dsn: str, expected: str) -> None:
    assert redact(dsn) == expected


def test_an_at_sign_in_a_query_value_hides_more_never_less() -> None:
    # A pasted password may hold any of @ / : ? # =, so the userinfo runs to the last `@`.
    assert redact("postgresql://h:5432/db?application_name=a@b") == "postgresql://h:***@b"
    assert redact("postgresql://u:pw@h/db?application_name=a@b") == "postgresql://u:***@b"
    assert redact("postgresql://u:a@b?x=y@host/db") == "postgresql://u:***@host/db"
    assert redact("postgresql://u@h/db?password=se@cret") == "postgresql://u@h/db?password=***"


def test_migration_settings_never_show_the_password() -> None:
    settings = CutoverSettings(dual_write=True, database_url="postgresql://api:Zq9secret@db:5432/c?sslpassword=Yk")
    for shown in (repr(settings), str(settings), f"{settings}"):
        assert "Zq9secret" not in shown
        assert "Yk" not in shown
        assert "postgresql://api:***@db:5432/c?sslpassword=***" in shown
    assert settings.database_url == "postgresql://api:Zq9secret@db:5432/c?sslpassword=Yk"  # only the display changes
    assert "database_url=None" in repr(CutoverSettings())


def test_failure_messages_withhold_what_quotes_a_password() -> None:
    dsn = "postgresql://u:pa?ss@127.0.0.1:1/db"
    parse_error = ValueError("bad query field: 'ss@127.0.0.1:1/db'")  # asyncpg's, on this DSN
    shown = failure_message(parse_error, str(parse_error), dsn)
    assert "ss@" not in shown
    assert "percent-encode" in shown
    refused = ConnectionRefusedError("Connect call failed ('127.0.0.1', 1)")
    assert failure_message(refused, str(refused), dsn) == str(refused)
    echoed = OSError("cannot resolve pa?ss")
    assert "pa?ss" not in failure_message(echoed, str(echoed), dsn)
    no_password = "postgresql://u@127.0.0.1:1/db"
    assert failure_message(parse_error, str(parse_error), no_password) == str(parse_error)
    assert scrub("pw is pa?ss", dsn) == f"pw is {MASK}"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:pa?ss@127.0.0.1:1/db",  # asyncpg quotes the tail of the password
        "postgresql://u:pa/ss@127.0.0.1:1/db",  # asyncpg reads `pa` as the port
        "postgresql://u:Zq9w@127.0.0.1:1/db?sslmode=bogus&password=Zq9w",
        "postgresql://u:Zq9w@127.0.0.1:notaport/db",
        "postgresql://u:Zq9w@[::1/db",
    ],
)
def test_connect_errors_never_quote_the_password(dsn: str) -> None:
    with pytest.raises(DatabaseUnavailableError) as caught:
        asyncio.run(connect(dsn))
    message = str(caught.value)
    for secret in ("pa?ss", "pa/ss", "ss@", "Zq9w"):
        assert secret not in message
    assert message.startswith("cannot connect to postgresql://u:***@")
