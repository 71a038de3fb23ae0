"""Whether query and pool timings are recorded: one flag read on the hot path, switched at run time
(the overhead benchmark compares both states; users who do not want the timings turn them off)."""

from __future__ import annotations


class _Switch:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


SWITCH = _Switch()


def set_enabled(on: bool) -> None:
    """Record query and pool timings (True, the default) or not. Gauges read at scrape time
    (pool sizes, the cut-over, the server) are unaffected: they cost nothing until scraped."""
    SWITCH.on = bool(on)


def enabled() -> bool:
    """Whether query and pool timings are being recorded."""
    return SWITCH.on
