"""What the server saw and decided: the request log line and the recorded requests.

``pkjwt serve`` logs one INFO line per decided request (outcome, failing rule, client; never a
secret); ``pkjwt.testing`` reads the recorded requests, each with the decoded assertion and every
rule's finding. Whether either happens is decided once, at start, so a server at
``--log-level warning`` with recording off pays nothing per request.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..rules import Finding
from .authentication import AuthOutcome
from .failures import safe_description

__all__ = ["RecordedRequest", "RequestLog"]

log = logging.getLogger("pkjwt.server")

#: form fields that hold a credential: recorded as ``<redacted>``
_SECRET_FIELDS = frozenset({"client_assertion", "client_secret"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What the server saw and decided, for tests (``pkjwt.testing``)."""

    at: float
    endpoint: str
    status: int
    error: str | None
    description: str | None
    client_id: str | None
    header: Mapping[str, Any] = field(default_factory=dict)
    claims: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    form: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


class RequestLog:
    """The last ``keep`` decided requests (0: none), and the one-line log of each."""

    def __init__(self, *, keep: int, clock: Callable[[], float]) -> None:
        self.requests: deque[RecordedRequest] = deque(maxlen=max(keep, 1))
        self.recording = keep > 0
        self.logging = log.isEnabledFor(logging.INFO)
        #: whether :meth:`record` does anything; callers skip building its arguments when not
        self.active = self.recording or self.logging
        self._clock = clock

    def record(
        self,
        endpoint: str,
        status: int,
        error: str | None,
        description: str | None,
        outcome: AuthOutcome | None,
        form: Mapping[str, str],
    ) -> None:
        client_id = outcome.client_id if outcome is not None else None
        if self.logging:
            # what was decided and why: never the assertion, a token or a secret
            what = safe_description(f"{error}: {description}", 300) if error else "issued"
            who = safe_description(client_id, 80).replace(" ", "?") if client_id else "-"
            log.info("%s %d client=%s %s", endpoint, status, who, what)
        if not self.recording:
            return
        jwt = outcome.jwt if outcome is not None else None
        report = outcome.report if outcome is not None else None
        self.requests.append(
            RecordedRequest(
                at=self._clock(),
                endpoint=endpoint,
                status=status,
                error=error,
                description=description,
                client_id=client_id,
                header=dict(jwt.header) if jwt else {},
                claims=dict(jwt.claims) if jwt else {},
                findings=report.findings if report else (),
                form={k: "<redacted>" if k in _SECRET_FIELDS else v for k, v in form.items()},
            )
        )
