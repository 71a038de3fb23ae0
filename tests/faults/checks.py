"""The promises every fault test checks, gathered into one list so a failure names all of them."""

from __future__ import annotations

from coherence_sql.cutover.service import CutoverStores
from tests.faults.traffic import BUDGET_S, MARGIN_S, Traffic, assert_nothing_lost, reconcile_until_complete


async def broken_promises(stores: CutoverStores, traffic: Traffic, verify_dsn: str) -> list[str]:
    """What went wrong, in words: caller failures, waits past the budget, a fault that never
    reached the stores, a journal that does not drain, lost writes. Empty when all held."""
    problems: list[str] = []
    log = traffic.log
    if log.failures:
        problems.append(f"{len(log.failures)} caller call(s) failed, e.g. {log.failures[:3]}")
    limit = BUDGET_S + MARGIN_S
    if late := log.over(limit):
        problems.append(f"{len(late)} call(s) waited past {limit:.1f} s, slowest {late[:3]}")
    if traffic.writes_during < 1:
        problems.append("no write was made while the fault was on")
    stats = stores.core.stats
    if stats.journaled == 0:
        problems.append(f"the fault never reached the stores: nothing journaled ({stats})")
    # A fault is never a verdict on the data: nothing may be dead-lettered, and the journal must
    # have taken every write (else PostgreSQL is marked diverged).
    status = (await stores.store_status()).model_dump()
    if stats.dead_lettered or status["dead_letters"]["count"]:
        problems.append(f"{stats.dead_lettered} write(s) dead-lettered: {status['dead_letters']['recent'][:3]}")
    if stats.journal_write_failures or status["diverged"]["since"] is not None:
        problems.append(f"journal writes failed ({stats.journal_write_failures}); diverged: {status['diverged']}")
    try:
        await reconcile_until_complete(stores)
    except AssertionError as exc:
        problems.append(str(exc))
        return problems  # what is still in the journal would show as lost writes: say it once
    try:
        await assert_nothing_lost(stores, traffic.workloads, verify_dsn)
    except AssertionError as exc:
        problems.append(f"writes lost (dead-lettered={stats.dead_lettered}, journaled={stats.journaled}): {exc}")
    return problems
