"""The plan's load tests (`coherence-sql loadtest`): open-loop load over a realistic data set.

Modules, one job each: `scheduler` (the open-loop arrival process and its accounting), `latency`
(HDR histograms per operation), `operations` (the API's calls as named operations and the mix),
`dataset` (the sample data set, loaded once by the backfill), `targets` (the PostgreSQL, in-memory
and cut-over stores), `runners` (agent runners and their lost-update check), `bulk_index` (the
indexer's batches), `report` (results as plain data), `run` (one load test end to end).
"""

from __future__ import annotations

from coherence_sql.loadtest.run import SCENARIOS, Leg, LoadTestPlan, run_loadtest
from coherence_sql.loadtest.scheduler import OpenLoopResult, OpenLoopSettings, run_open_loop

__all__ = ["SCENARIOS", "Leg", "LoadTestPlan", "OpenLoopResult", "OpenLoopSettings", "run_loadtest", "run_open_loop"]
