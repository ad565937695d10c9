"""When a cached token is renewed, and when it stops being handed out.

Timeline of a token with lifetime L obtained at t0::

    t0 ........ refresh_at (t0 + L*U(0.70, 0.85)) ........ usable_until (exp - leeway) .. exp
       served as is     | served as is; one background refresh   | callers wait for a fetch

The refresh point is jittered so that many processes started together (a deployment, a cron
minute) do not all renew in the same second; the leeway (30 s, at most 10% of the lifetime)
keeps a token from reaching an API as it expires. A failed background refresh waits
``backoff`` seconds before the next attempt, so a sick server is not hammered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .tokens import Token

__all__ = ["Entry", "RefreshPolicy", "failure_cooldown"]


@dataclass(slots=True)
class Entry:
    """A cached token and its schedule, on the manager's schedule clock (monotonic, so a wall
    clock stepped back cannot keep an expired token in service). ``retry_at`` is set after a
    failed background refresh: no new one starts before it."""

    token: Token
    refresh_at: float
    usable_until: float
    retry_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """The schedule of every cached token: ``window`` is the jittered fraction of the lifetime
    after which a background refresh starts, ``leeway`` how long before ``exp`` a token stops
    being handed out (at most 10% of its lifetime), ``backoff`` the pause after a failed
    background refresh; ``rng`` draws the jitter (inject a seeded one in tests)."""

    window: tuple[float, float] = (0.70, 0.85)
    leeway: float = 30.0
    backoff: float = 5.0
    #: after a fetch failed for a reason that may pass (the server down, a 5xx, a 429), how
    #: long callers get that failure at once instead of each starting a new burst of retries
    failure_cooldown: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def entry(
        self, token: Token, wall: float | None = None, schedule: float | None = None
    ) -> Entry:
        """The cache entry for a token just obtained (or read from a shared store). ``wall``
        is the epoch time now and ``schedule`` the schedule clock's reading at the same moment
        (omitted: both epoch time, the token's own clock)."""
        lifetime = max(0.0, token.expires_at - token.obtained_at)
        leeway = min(self.leeway, lifetime * 0.1)
        usable_until = token.expires_at - leeway
        refresh_at = token.obtained_at + lifetime * self.rng.uniform(*self.window)
        shift = 0.0 if wall is None or schedule is None else schedule - wall
        # the hot path relies on refresh_at <= usable_until: serving before refresh_at is safe
        return Entry(token, min(refresh_at, usable_until) + shift, usable_until + shift)


def failure_cooldown(policy: RefreshPolicy, error: BaseException) -> float:
    """How long a failure that may pass is answered from memory: the policy's cooldown, or
    the server's Retry-After when it asked for longer (bounded: a minute)."""
    retry_after = getattr(error, "retry_after", None)
    wait = policy.failure_cooldown
    if isinstance(retry_after, int | float) and retry_after > wait:
        wait = min(float(retry_after), 60.0)
    return wait
