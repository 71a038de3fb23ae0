"""Load-test results as plain data (the `--json` document; the text tables render the same)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from coherence_sql.loadtest.latency import LatencySummary
from coherence_sql.loadtest.scheduler import TIMELINE_INTERVAL_S, OpenLoopResult

# The service-time comparison: the run's first minute against its last.
GROWTH_WINDOW_S: Final = 60.0


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
        "service_ms_by_operation": {name: latency_dict(s) for name, s in result.service.summaries().items()},
        "dispatch_lag_ms": latency_dict(LatencySummary.of(result.dispatch_lag)),
        "start_lag_ms": latency_dict(LatencySummary.of(result.start_lag)),
        "warnings": result.warnings(),
        "timeline": [asdict(interval) for interval in result.timeline],
    }


@dataclass(frozen=True, slots=True)
class ServiceGrowth:
    """One operation's mean service time at the start of a run and at its end: the operation whose
    own cost grows is the one a run that falls behind is waiting for."""

    operation: str
    count: int
    first_mean_ms: float
    last_mean_ms: float

    @property
    def ratio(self) -> float:
        return self.last_mean_ms / self.first_mean_ms if self.first_mean_ms > 0 else 0.0


def service_growth(result: dict[str, Any]) -> list[ServiceGrowth]:
    """Per operation, the mean service time over the first and the last `GROWTH_WINDOW_S` of an
    open-loop result's timeline (its `--json` form), costliest growth first. A run shorter than two
    windows compares its first and last halves (of whole intervals)."""
    timeline: list[dict[str, Any]] = result.get("timeline", [])
    if not timeline:
        return []
    end = timeline[-1]["start_s"] + TIMELINE_INTERVAL_S
    # Whole intervals: at most the window, at most half the run, at least one (then first is last).
    spans = max(1, min(round(GROWTH_WINDOW_S / TIMELINE_INTERVAL_S), round(end / TIMELINE_INTERVAL_S) // 2))
    window = spans * TIMELINE_INTERVAL_S
    first = _means(i for i in timeline if i["start_s"] < window)
    last = _means(i for i in timeline if i["start_s"] >= end - window)
    growth = [
        ServiceGrowth(name, figures["count"], first.get(name, 0.0), last.get(name, 0.0))
        for name, figures in result.get("service_ms_by_operation", {}).items()
    ]
    return sorted(growth, key=lambda g: (-g.ratio, g.operation))


def _means(intervals: Any) -> dict[str, float]:
    """Count-weighted mean service time per operation over some timeline intervals."""
    totals: dict[str, list[float]] = {}
    for interval in intervals:
        for name, figures in interval["service_by_operation"].items():
            total = totals.setdefault(name, [0.0, 0.0])
            total[0] += figures["mean_ms"] * figures["count"]
            total[1] += figures["count"]
    return {name: round(ms / count, 3) for name, (ms, count) in totals.items() if count}
