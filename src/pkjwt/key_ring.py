"""A key ring: several keys for one client, one active at a time, for rotation without an
outage.

A rotation has a dangerous minute: the client switches to the new key while the server still
has the old JWKS cached (an hour on the NHS platform), so the new key's assertions are
refused. With a ring, the switch is a time written in advance (``active_from``), and a
credentials refusal soon after a switch (within ``grace`` seconds) is retried once with the
key that was active before, with a warning saying why; the next fetch tries the new key again.
Outside the grace period a refusal is what it is: no key is tried blindly.

>>> ring = KeyRing(
...     RingKey(load_key("int-1.pem", kid="int-1")),
...     RingKey(load_key("int-2.pem", kid="int-2"), active_from=datetime(2026, 12, 1, tzinfo=UTC)),
... )
>>> client = TokenClient(token_url=..., client_id=..., key=ring, profile="nhs")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from .assertion import AssertionFactory
from .client_auth import AuthContext, Credentials, PrivateKeyJwt
from .errors import ConfigError, CredentialsRejected, OAuthError
from .flow import Flow
from .keys import Key, KeySet
from .signing import Signer

__all__ = ["KeyRing", "RingKey"]

log = logging.getLogger("pkjwt")


@dataclass(frozen=True, slots=True)
class RingKey:
    """One key of a ring: a key (anything ``key=`` takes: a path, a Key, a Signer, a key URI)
    and when it becomes the active one (None: from the start). ``kid`` and ``alg`` as for
    ``TokenClient``."""

    key: Key | Signer | Any
    active_from: datetime | None = None
    kid: str | None = None
    alg: str | None = None


class KeyRing:
    """``private_key_jwt`` with the ring's active key (see the module docstring).

    The active key is the last one (in the order given) whose ``active_from`` has passed;
    ``grace`` (seconds, default an hour: the NHS platform's JWKS cache) is how long after its
    switch a refusal is retried once with the previous key. A key without ``active_from``
    after the first switched when the ring was made.
    """

    name: ClassVar[str] = "private_key_jwt"

    def __init__(
        self, *keys: RingKey, grace: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        if not keys:
            raise ConfigError("a key ring needs at least one key")
        self._clock = clock
        self.grace = grace
        made = clock()
        self._methods = [PrivateKeyJwt(k.key, kid=k.kid, alg=k.alg) for k in keys]
        # the first key without a time is active from always; a later one from now
        self._from = [
            _epoch(k.active_from) if k.active_from else (float("-inf") if i == 0 else made)
            for i, k in enumerate(keys)
        ]
        kids = [m.kid or "" for m in self._methods]
        if len(set(kids)) != len(kids) or "" in kids:
            raise ConfigError(
                f"key ring: every key needs a kid of its own (got {', '.join(map(repr, kids))})",
                hint="the server tells the keys apart by kid: give each RingKey a distinct kid",
            )
        self._kids = kids
        # the cache key names every key: another ring is another credential
        self.identity = "ring:" + ",".join(m.identity for m in self._methods)

    # -- which key --------------------------------------------------------------------------
    def _active_index(self, now: float) -> int:
        active = 0
        for i, since in enumerate(self._from):
            if since <= now:
                active = i
        return active

    def _method(self, ctx: AuthContext) -> PrivateKeyJwt:
        active = self._active_index(self._clock())
        if ctx.previous_key and active > 0:
            return self._methods[active - 1]
        return self._methods[active]

    @property
    def active_kid(self) -> str:
        """The kid of the key that signs now: the ring's last whose ``active_from`` has passed."""
        return self._kids[self._active_index(self._clock())]

    def step_back(self, exc: OAuthError) -> bool:
        """Whether to retry ``exc`` once with the previous key: a refusal of our credentials
        within ``grace`` of the switch to the active key (saying so in the log)."""
        now = self._clock()
        active = self._active_index(now)
        since = now - self._from[active]
        if active == 0 or not isinstance(exc, CredentialsRejected) or since > self.grace:
            return False
        new, old = self._kids[active], self._kids[active - 1]
        log.warning(
            "the server refused key %s (active for %.0f s): retrying once with %s. Is %s in the "
            "JWKS the server has, and has its cache (up to %.0f s) seen it?",
            new, since, old, new, self.grace,
        )  # fmt: skip
        return True

    # -- the method protocols (delegated to the chosen key's method) ------------------------
    def credentials(self, ctx: AuthContext) -> Flow[Credentials]:
        """The credentials flow of the active key's authentication method."""
        return self._method(ctx).credentials(ctx)

    def factory(self, ctx: AuthContext) -> AssertionFactory:
        """The assertion factory of the active key."""
        return self._method(ctx).factory(ctx)

    def assertion(self, ctx: AuthContext) -> Flow[str]:
        """A flow that makes one assertion with the active key."""
        return self._method(ctx).assertion(ctx)

    def public_keys(self) -> KeySet | None:
        """Every local key's public half: what the JWKS you publish must hold."""
        found = [k for m in self._methods if (ks := m.public_keys()) for k in ks.keys]
        return KeySet(tuple(found)) if found else None

    def __repr__(self) -> str:
        return f"<KeyRing [{', '.join(self._kids)}] active={self.active_kid}>"


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ConfigError(
            f"active_from {moment.isoformat()} has no time zone",
            hint="give an aware datetime, e.g. datetime(2026, 12, 1, tzinfo=timezone.utc)",
        )
    return moment.timestamp()
