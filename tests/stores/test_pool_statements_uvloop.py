"""The pool's lean paths (the statement path, the acquire fast path, the idle timer) under uvloop,
the event loop the API's server runs on when it is installed: its handles are not asyncio's (a
TimerHandle there has no `_callback`), so each scenario of test_pool_statements.py runs here on a
uvloop loop of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from tests.stores import test_pool_statements as scenarios

SCENARIOS: list[Callable[..., Coroutine[Any, Any, None]]] = [
    scenarios.test_each_statement_method_runs_on_the_idle_connection_without_a_proxy,
    scenarios.test_a_statement_error_gives_the_connection_back_usable,
    scenarios.test_a_connection_terminated_under_a_statement_is_replaced,
    scenarios.test_a_cancelled_statement_goes_back_through_asyncpg_s_release,
    scenarios.test_closing_the_pool_waits_for_a_statement_in_flight,
    scenarios.test_an_idle_connection_is_closed_after_its_lifetime_and_a_busy_one_never,
    scenarios.test_no_idle_timer_when_the_lifetime_is_off,
    scenarios.test_the_lean_and_asyncpg_s_paths_share_one_idle_timer,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__.removeprefix("test_"))
def test_on_uvloop(
    scenario: Callable[..., Coroutine[Any, Any, None]], clean_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments: dict[str, Any] = {"clean_dsn": clean_dsn}
    if "monkeypatch" in scenario.__code__.co_varnames[: scenario.__code__.co_argcount]:
        arguments["monkeypatch"] = monkeypatch
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        runner.run(scenario(**arguments))
