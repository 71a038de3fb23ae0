"""The package's own Prometheus registry, its exposition text and the ASGI app that serves it.

A registry of our own (not prometheus_client's global default) so that the API decides what it
mounts, tests can scrape exactly the package's families, and two registrations never collide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest, make_asgi_app

REGISTRY: Final = CollectorRegistry(auto_describe=True)

# Resolves both 0.1 ms (a point lookup on a warm server) and 500 ms (the p95 alert's threshold).
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

AsgiApp = Callable[..., Any]


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The registry's families in Prometheus' text format, as a scrape would get them."""
    return generate_latest(registry)


def metrics_app(registry: CollectorRegistry = REGISTRY) -> AsgiApp:
    """prometheus_client's ASGI app over `registry`: `app.mount("/metrics", metrics_app())`."""
    app: AsgiApp = make_asgi_app(registry)
    return app
