"""The parts TokenManager composes: single-flight, the refresh policy and the flow drivers."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Generator
from typing import Any

import pytest

from pkjwt.flow import Call, arun, run
from pkjwt.refresh import RefreshPolicy
from pkjwt.single_flight import Flight, SingleFlight
from pkjwt.tokens import Token

T0 = 1_750_000_000.0


def _token(lifetime: float = 600.0) -> Token:
    return Token(access_token="at", token_type="Bearer", expires_at=T0 + lifetime, obtained_at=T0)


def test_join_owner_then_joiners_then_ready() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    first = flights.join("k", lambda: None)
    second = flights.join("k", lambda: None)
    assert first.owner
    assert not second.owner
    assert first.flight is second.flight is not None
    assert flights.started == 1
    assert flights.lead("k", lambda: True) is None  # one flight per key
    flights.land("k", first.flight, "v", None, lambda: None)
    assert second.flight.wait() == "v"
    assert flights.join("k", lambda: "cached") == ("cached", None, False)


def test_a_failure_is_shared_and_the_next_call_starts_afresh() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    claim = flights.join("k", lambda: None)
    assert claim.flight is not None
    flights.land("k", claim.flight, None, ValueError("down"), lambda: None)
    with pytest.raises(ValueError, match="down"):
        claim.flight.wait()
    assert flights.join("k", lambda: None).owner


def test_flight_wakes_threads_and_tasks_on_two_loops() -> None:
    flight: Flight[str] = Flight()
    results: list[str] = []
    waiting = threading.Barrier(4)

    def in_thread() -> None:
        waiting.wait(5)
        results.append(flight.wait())

    def in_loop() -> None:
        async def main() -> str:
            task = asyncio.ensure_future(flight.wait_async())
            await asyncio.sleep(0)  # registered before the barrier releases
            waiting.wait(5)
            return await task

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=t) for t in (in_thread, in_thread, in_loop)]
    for t in threads:
        t.start()
    waiting.wait(5)
    flight.finish("v", None)
    for t in threads:
        t.join(5)
    assert results == ["v", "v", "v"]


def test_refresh_policy_schedule() -> None:
    policy = RefreshPolicy(rng=random.Random(7))
    entry = policy.entry(_token(600))
    assert T0 + 420 <= entry.refresh_at <= T0 + 510  # 70-85% of the lifetime
    assert entry.usable_until == T0 + 600 - 30
    short = policy.entry(_token(100))
    assert short.usable_until == T0 + 90  # the leeway is at most 10% of the lifetime
    assert short.refresh_at <= short.usable_until


def _store_like() -> Generator[Any, Any, list[Any]]:
    got = [(yield Call(lambda: "a")), (yield Call(lambda x: x * 2, 21))]
    try:
        yield Call(_boom)
    except KeyError as exc:
        got.append(str(exc))
    return got


def _boom() -> None:
    raise KeyError("thrown back in")


def test_one_flow_two_drivers() -> None:
    def perform(action: Call) -> Any:
        return action.fn(*action.args)

    async def aperform(action: Call) -> Any:
        return await asyncio.to_thread(action.fn, *action.args)

    expected = ["a", 42, "'thrown back in'"]
    assert run(_store_like(), perform) == expected
    assert asyncio.run(arun(_store_like(), aperform)) == expected
