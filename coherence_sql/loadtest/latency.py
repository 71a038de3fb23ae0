"""Latency recording: one HDR histogram per operation and one overall, in microseconds.

Percentiles come from HdrHistogram (3 significant digits, 1 µs to 1 hour), so p99.9 of a
ten-minute run is exact to 0.1% without keeping every sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hdrh.histogram import HdrHistogram

LOWEST_US: Final = 1
HIGHEST_US: Final = 3_600_000_000  # one hour: nothing a load test waits for is longer
SIGNIFICANT_DIGITS: Final = 3
PERCENTILES: Final = (50.0, 95.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_us(histogram: HdrHistogram, seconds: float) -> None:
    """Record `seconds` as whole microseconds, clamped into the histogram's range."""
    histogram.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6))))


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """What a histogram says, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, histogram: HdrHistogram) -> LatencySummary:
        count = histogram.get_total_count()
        if count == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        p50, p95, p99, p999 = (histogram.get_value_at_percentile(p) / 1000 for p in PERCENTILES)
        return cls(
            count=count,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            p999_ms=p999,
            max_ms=histogram.get_max_value() / 1000,
            mean_ms=histogram.get_mean_value() / 1000,
        )


class LatencyBook:
    """Histograms per operation name plus one overall."""

    def __init__(self) -> None:
        self.overall = new_histogram()
        self.by_operation: dict[str, HdrHistogram] = {}

    def record(self, operation: str, seconds: float) -> None:
        histogram = self.by_operation.get(operation)
        if histogram is None:
            histogram = self.by_operation[operation] = new_histogram()
        record_us(histogram, seconds)
        record_us(self.overall, seconds)

    def summary(self) -> LatencySummary:
        return LatencySummary.of(self.overall)

    def summaries(self) -> dict[str, LatencySummary]:
        return {name: LatencySummary.of(h) for name, h in sorted(self.by_operation.items())}
