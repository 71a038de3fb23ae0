"""The plan's trigger keeps assets.total_cost equal to the sum of its contributions under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from coherence_sql.db import Connection, connect

ASSET = uuid.UUID("00000000-0000-0000-0000-00000000a55e")
WRITERS = 20
PER_WRITER = 5


def amount(writer: int, n: int) -> Decimal:
    # Distinct amounts with cents, from 0.01 up to the thousands: a float sum would drift.
    return Decimal(f"{writer * 137 + n * 911}.{(writer * 7 + n * 31) % 100:02d}") + Decimal("0.01")


async def write_contributions(dsn: str, contributor: uuid.UUID, writer: int, start: asyncio.Barrier) -> None:
    conn = await connect(dsn)
    try:
        await start.wait()  # every writer is connected before the first insert
        for n in range(PER_WRITER):
            await conn.execute(
                "INSERT INTO contributions (id, contributor_id, asset_id, cost_amount, coherence_score) "
                "VALUES ($1, $2, $3, $4, $5)",
                uuid.uuid4(),
                contributor,
                ASSET,
                amount(writer, n),
                Decimal("0.50"),
            )
    finally:
        await conn.close()


async def test_concurrent_contributions_leave_total_cost_equal_to_their_exact_sum(
    conn: Connection, clean_dsn: str
) -> None:
    contributor = uuid.uuid4()
    await conn.execute(
        "INSERT INTO contributors (id, name, email, email_key, type) "
        "VALUES ($1, 'Ada', 'ada@example.com', 'ada@example.com', 'HUMAN')",
        contributor,
    )
    await conn.execute(
        "INSERT INTO assets (id, name, description, asset_type) VALUES ($1, 'lib', 'a library', 'CODE')", ASSET
    )
    start = asyncio.Barrier(WRITERS)
    writers = [write_contributions(clean_dsn, contributor, w, start) for w in range(WRITERS)]
    await asyncio.wait_for(asyncio.gather(*writers), timeout=60)

    expected = sum((amount(w, n) for w in range(WRITERS) for n in range(PER_WRITER)), Decimal("0"))
    total = await conn.fetchval("SELECT total_cost FROM assets WHERE id = $1", ASSET)
    stored_sum = await conn.fetchval("SELECT sum(cost_amount) FROM contributions WHERE asset_id = $1", ASSET)
    count = await conn.fetchval("SELECT count(*) FROM contributions WHERE asset_id = $1", ASSET)

    assert count == WRITERS * PER_WRITER
    assert isinstance(total, Decimal)
    assert stored_sum == expected
    assert total == expected
    assert total.as_tuple().exponent == -2  # DECIMAL(15,2): cents, never float
