"""Load-test results as plain data (the `--json` document; the text tables render the same)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from coherence_sql.loadtest.latency import LatencySummary
from coherence_sql.loadtest.scheduler import OpenLoopResult


def latency_dict(summary: LatencySummary) -> dict[str, float]:
    return {
        "count": summary.count,
        "p50": summary.p50_ms,
        "p95": summary.p95_ms,
        "p99": summary.p99_ms,
        "p99.9": summary.p999_ms,
        "max": summary.max_ms,
        "mean": round(summary.mean_ms, 3),
    }


def open_loop_dict(result: OpenLoopResult) -> dict[str, Any]:
    settings = result.settings
    return {
        "settings": asdict(settings),
        "planned": settings.planned,
        "completed": result.completed,
        "target_rate": settings.rate,
        "achieved_rate": round(result.achieved_rate, 1),
        "elapsed_s": round(result.elapsed_s, 3),
        "delayed": result.delayed,
        "dropped": result.dropped,
        "unfinished": result.unfinished,
        "errors": dict(result.errors),
        "errors_by_operation": {name: dict(c) for name, c in sorted(result.errors_by_operation.items())},
        "error_examples": result.error_examples,
        "latency_ms": latency_dict(result.latency.summary()),
        "latency_ms_by_operation": {name: latency_dict(s) for name, s in result.latency.summaries().items()},
        "dispatch_lag_ms": latency_dict(LatencySummary.of(result.dispatch_lag)),
        "start_lag_ms": latency_dict(LatencySummary.of(result.start_lag)),
        "warnings": result.warnings(),
        "timeline": [asdict(interval) for interval in result.timeline],
    }
