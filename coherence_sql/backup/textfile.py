"""The backup job's outcome as a node_exporter textfile (`coherence-sql backup --metrics-file PATH`).

A daily job that stops running fails silently; this file lets Prometheus alert on it. The last
success is read from the backups themselves (the newest complete one's manifest), not from the
previous file, so it stays right after a failed run, a lost file or a restore from off-host copies.
prometheus_client writes it to a temporary name and renames it: node_exporter never reads half.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coherence_sql.backup.retention import list_backups
from coherence_sql.errors import BackupError
from coherence_sql.metrics.verify import write_job_textfile

__all__ = ["write_backup_textfile"]


class _BackupOutcome(Collector):
    def __init__(self, success: bool, when: float, directory: Path) -> None:
        self.success, self.when = success, when
        try:
            backups = list_backups(directory)
        except BackupError:  # the directory itself is missing: no backup to report
            backups = []
        self.newest = backups[-1][1] if backups else None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "coherence_sql_backup_success", "1 when the last backup run succeeded, 0 when it failed.", int(self.success)
        )
        yield GaugeMetricFamily(
            "coherence_sql_backup_last_run_timestamp_seconds", "When the last backup run ended (Unix time).", self.when
        )
        last = GaugeMetricFamily(
            "coherence_sql_backup_last_success_timestamp_seconds",
            "When the newest complete backup in the directory finished (Unix time).",
        )
        size = GaugeMetricFamily(
            "coherence_sql_backup_last_size_bytes", "The newest complete backup's files, in bytes."
        )
        if self.newest is not None:
            last.add_metric([], self.newest.finished_utc.timestamp())
            size.add_metric([], sum(file.bytes for file in self.newest.files))
        yield last
        yield size


def write_backup_textfile(path: Path, *, success: bool, directory: Path, when: float | None = None) -> None:
    """Write coherence_sql_backup_{success,last_run_timestamp_seconds,last_success_timestamp_seconds,
    last_size_bytes} to `path`; MetricsFileError when it cannot be written."""
    write_job_textfile(path, _BackupOutcome(success, time.time() if when is None else when, directory))
