"""The one retry policy: which failures to retry, and how long to wait before the next try."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import OAuthError, PkjwtError, SignerUnavailable, TransportError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``.

    Retried: connection errors and timeouts, 5xx, 429 and ``temporarily_unavailable``. Never
    retried: ``invalid_client``, ``invalid_request``, ``unauthorized_client`` and every other
    4xx, since the same request would fail the same way. Each attempt carries a fresh ``jti``
    (the client builds a new assertion per attempt).
    """

    attempts: int = 3
    base: float = 0.5
    cap: float = 10.0
    #: the longest Retry-After honoured; a longer one ends the retries instead of blocking
    max_retry_after: float = 60.0

    def retryable(self, exc: PkjwtError) -> bool:
        """Whether ``exc`` may pass on another attempt (transport errors, 5xx, 429, a signer that
        timed out); never a refusal of the credentials."""
        if isinstance(exc, TransportError):
            return True
        # an HSM/KMS that timed out or throttled us may answer next time; one that denied us not
        return isinstance(exc, OAuthError | SignerUnavailable) and exc.retryable

    def delay(
        self, attempt: int, exc: PkjwtError, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based), or None to stop."""
        if attempt >= self.attempts or not self.retryable(exc):
            return None
        retry_after = exc.retry_after if isinstance(exc, OAuthError) else None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        backoff = (rng or random).uniform(0, ceiling)
        # Retry-After is a floor, not a licence: "0" (or a negative value, read as 0) must not
        # turn the retries into a burst
        return max(retry_after or 0.0, backoff)
