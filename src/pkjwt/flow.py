"""Flows: protocol logic written once as generators, run by a sync or an async driver.

A flow yields actions (send this request, sign these bytes, sleep this long, make this blocking
call) and receives each one's result, or has its error thrown in at the ``yield``. It never does
I/O itself, so the same flow serves ``httpx.Client`` and ``httpx.AsyncClient``, threads and
event loops (the pattern of httpx's ``Auth.auth_flow``). :func:`run` and :func:`arun` are the two
generic drivers; :mod:`pkjwt.transport` and :mod:`pkjwt.manager` say how each action is done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # flows stay free of key handling: a signer is only carried, never called
    from .signing import Signer

__all__ = [
    "Action",
    "Call",
    "Flow",
    "Reply",
    "Send",
    "Sign",
    "Sleep",
    "advance",
    "arun",
    "ready",
    "run",
]

T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Send:
    """Send an HTTP request; the flow receives a :class:`Reply` (or a ``TransportError``)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    #: seconds the whole exchange may take, response body included (None: the transport's)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response, with the local times the request left and the answer came back
    (their midpoint is when the server's ``Date`` header was written)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    sent_at: float
    received_at: float


@dataclass(frozen=True, slots=True)
class Sign:
    """Sign ``data``; the flow receives the signature. Async drivers await an async signer
    (a KMS, an HSM) instead of blocking the event loop."""

    signer: Signer
    data: bytes


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before the next attempt (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


@dataclass(frozen=True, slots=True, init=False)
class Call:
    """Make a blocking call (file or network I/O outside HTTP: a token store, a file lock);
    async drivers run it in a worker thread so the event loop keeps serving."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "args", args)


Action = Send | Sign | Sleep | Call
Flow = Generator[Action, Any, T]


def ready(value: T) -> Generator[Any, Any, T]:
    """A flow that needs no action and finishes at once with ``value``."""
    return value
    yield  # unreachable: makes this a generator


def advance(
    flow: Generator[A, Any, T], value: Any = None, error: BaseException | None = None
) -> tuple[A | None, T | None]:
    """Step a flow: send it ``value`` (or throw ``error`` in). Returns the next action, or
    ``(None, result)`` when the flow has finished."""
    try:
        return (flow.throw(error) if error is not None else flow.send(value)), None
    except StopIteration as stop:
        return None, stop.value


def run(flow: Generator[A, Any, T], perform: Callable[[A], Any]) -> T:
    """Run ``flow`` to its result, doing each action with the blocking ``perform``."""
    action, result = advance(flow)
    while action is not None:
        action, result = advance(flow, *_outcome(perform, action))
    return result  # type: ignore[return-value]  # a finished flow's value


async def arun(flow: Generator[A, Any, T], perform: Callable[[A], Awaitable[Any]]) -> T:
    """Run ``flow`` to its result, awaiting ``perform`` for each action."""
    action, result = advance(flow)
    while action is not None:
        action, result = advance(flow, *await _aoutcome(perform, action))
    return result  # type: ignore[return-value]


def _outcome(perform: Callable[[A], Any], action: A) -> tuple[Any, BaseException | None]:
    # every error goes back into the flow: its except and finally clauses decide
    try:
        return perform(action), None
    except BaseException as exc:
        return None, exc


async def _aoutcome(
    perform: Callable[[A], Awaitable[Any]], action: A
) -> tuple[Any, BaseException | None]:
    try:
        return await perform(action), None
    except BaseException as exc:  # cancellation too: the flow's finally clauses must run
        return None, exc
