"""Argument types more than one command takes: a bad value is a usage error (exit 2) that says
what the value must be, never a traceback or a misleading answer later."""

from __future__ import annotations

import argparse


def positive_seconds(text: str) -> float:
    """A timeout in seconds. 0 or less would be reported later as "PostgreSQL does not answer":
    refused here as the input it is."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return seconds
