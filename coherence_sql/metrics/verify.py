"""The verify job's outcome as a node_exporter textfile (`coherence-sql verify --metrics-file PATH`).

A batch job has no process to scrape: node_exporter's textfile collector reads the file instead
(`--collector.textfile.directory`). prometheus_client writes it to a temporary file and renames it,
so node_exporter never reads half a file.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coherence_sql.errors import MetricsFileError


class _VerifyOutcome(Collector):
    def __init__(self, passed: bool, differences: int | None, when: float) -> None:
        self.passed, self.differences, self.when = passed, differences, when

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "coherence_sql_verify_success", "1 when the last verify passed, 0 when it failed.", 1 if self.passed else 0
        )
        found = GaugeMetricFamily(
            "coherence_sql_verify_differences", "Differences the last verify listed (records, totals, references)."
        )
        if self.differences is not None:
            found.add_metric([], self.differences)
        yield found
        yield GaugeMetricFamily(
            "coherence_sql_verify_last_run_timestamp_seconds", "When the last verify finished (Unix time).", self.when
        )


def textfile_argument(text: str) -> Path:
    """`--metrics-file PATH`, refused at once unless it ends in `.prom`: node_exporter's textfile
    collector reads only those, so any other name would be written after every run and never seen
    (and the alert on verify not running would not know the job exists)."""
    path = Path(text)
    if path.suffix != ".prom":
        raise argparse.ArgumentTypeError(
            f"must end in .prom (node_exporter's textfile collector reads nothing else), got {text!r}"
        )
    return path


def write_verify_textfile(path: Path, *, passed: bool, differences: int | None, when: float | None = None) -> None:
    """Write coherence_sql_verify_{success,differences,last_run_timestamp_seconds} to `path`.

    `differences` None: the run did not get as far as comparing (it failed), so that gauge has no
    sample rather than a made-up 0. MetricsFileError when the file cannot be written."""
    write_job_textfile(path, _VerifyOutcome(passed, differences, time.time() if when is None else when))


def write_job_textfile(path: Path, outcome: Collector) -> None:
    """Write one batch job's outcome (a collector of its gauges) to `path`, atomically;
    MetricsFileError when the file cannot be written."""
    registry = CollectorRegistry()
    registry.register(outcome)
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise MetricsFileError(f"cannot write the metrics file {path}: {exc.strerror or exc}") from None
