"""Read an exposition the way Prometheus does (prometheus_client's parser), for assertions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from coherence_sql.metrics import REGISTRY, exposition

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[set[str], Samples]:
    """The family names (as in `# TYPE`, counters without `_total`) and every sample by name and labels."""
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return names, samples


def scrape(registry: CollectorRegistry = REGISTRY) -> tuple[set[str], Samples]:
    return parse(exposition(registry).decode("utf-8"))


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the exposition has no such sample."""
    return samples.get((name, tuple(sorted(labels.items()))))


def labelled(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of `name`, by its labels."""
    return {labels: v for (sample, labels), v in samples.items() if sample == name}
