"""Prometheus metrics of the package, in a registry of its own (names: docs/deployment.md "Metrics").

    from coherence_sql.metrics import metrics_app, register_cutover
    app.mount("/metrics", metrics_app())          # the API's ASGI app
    register_cutover(stores)                      # the cut-over's counters, read when scraped

Query latency and failures (every generated accessor) and the pool's waits are recorded as they
happen (`set_enabled(False)` stops that); everything else is read at scrape time.

- `registry`: REGISTRY, `exposition()`, `metrics_app()`; `switch`: `set_enabled()`, `enabled()`
- `queries`: the per-query timers the generated accessors bind; `pools`: the pool gauges and waits
- `cutover`: `register_cutover()`; `server`: `ServerCollector`, `register_server()`
- `verify`: the verify job's node_exporter textfile
"""

from __future__ import annotations

from coherence_sql.metrics.cutover import CutoverCollector, register_cutover
from coherence_sql.metrics.pools import track_pool

# After the registry: these register their families on import.
from coherence_sql.metrics.queries import QueryTimer
from coherence_sql.metrics.registry import LATENCY_BUCKETS, REGISTRY, exposition, metrics_app
from coherence_sql.metrics.server import ServerCollector, register_server
from coherence_sql.metrics.switch import enabled, set_enabled

__all__ = [
    "LATENCY_BUCKETS",
    "REGISTRY",
    "CutoverCollector",
    "QueryTimer",
    "ServerCollector",
    "enabled",
    "exposition",
    "metrics_app",
    "register_cutover",
    "register_server",
    "set_enabled",
    "track_pool",
]
