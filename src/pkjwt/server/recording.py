"""What the server saw and decided: the request log line and the recorded requests.

``pkjwt serve`` logs one INFO line per decided request (outcome, failing rule, client; never a
secret), as text or as one JSON object (:class:`JsonLines`); ``pkjwt.testing`` and the
inspector page read the recorded requests, each with the decoded assertion and every rule's
finding. Whether either happens is decided once, at start, so a server at ``--log-level
warning`` with recording off pays nothing per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..rules import Finding
from .authentication import AuthOutcome
from .failures import safe_description

__all__ = ["JsonLines", "RecordedRequest", "RequestLog", "bounded_members"]

log = logging.getLogger("pkjwt.server")

#: form fields that hold a credential: recorded as ``<redacted>``
_SECRET_FIELDS = frozenset({"client_assertion", "client_secret"})
#: what a bounded record keeps of a decoded header or claims set (the inspector's, kept for a
#: long-running server): its first members, each name and value cut to a length
MAX_MEMBERS = 32
MAX_NAME = 64
MAX_VALUE = 256
#: a JWS whose header and claims together are at most this many base64url characters (about
#: 770 of JSON, less than a bounded copy may hold) is kept as decoded
_KEPT_WHOLE = 1024
#: the attribute of a log record holding the request's fields (for :class:`JsonLines`)
FIELDS = "pkjwt_request"


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
    #: the rule that refused the request (None: issued)
    rule: str | None = None
    #: its place in the log (1, 2, ...): newer requests have larger numbers
    seq: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more)"


def bounded_members(members: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a decoded header or claims set held to a bounded size: its first
    :data:`MAX_MEMBERS` members, long names cut, and any value longer than :data:`MAX_VALUE`
    characters (as JSON) replaced by its cut JSON text. Claims are the caller's to choose."""
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(members.items()):
        if i == MAX_MEMBERS:
            out["..."] = f"{len(members) - MAX_MEMBERS} more members not kept"
            break
        if isinstance(value, int) and value.bit_length() > 64:
            value = str(value)  # a number thousands of digits long is text to cut
        if not (value is None or isinstance(value, bool | int | float)) and (
            not isinstance(value, str) or len(value) > MAX_VALUE
        ):
            text = value if isinstance(value, str) else json.dumps(value)
            value = value if len(text) <= MAX_VALUE else _cut(text, MAX_VALUE)
        out[_cut(name, MAX_NAME)] = value
    return out


class RequestLog:
    """The last ``keep`` decided requests (0: none), and the one-line log of each.

    ``bounded`` records keep each request at a bounded size (:func:`bounded_members`, no
    form): for a server that runs for days with the inspector on, where a client may send
    claims as long as the assertion limit allows. Unbounded ones keep the decoded parts whole,
    for tests that read them."""

    def __init__(self, *, keep: int, clock: Callable[[], float], bounded: bool = False) -> None:
        self.requests: deque[RecordedRequest] = deque(maxlen=max(keep, 1))
        self.recording = keep > 0
        self.logging = log.isEnabledFor(logging.INFO)
        #: whether :meth:`record` does anything; callers skip building its arguments when not
        self.active = self.recording or self.logging
        self.bounded = bounded
        #: requests recorded so far (the last one's ``seq``)
        self.seq = 0
        self._clock = clock

    def record(
        self,
        endpoint: str,
        status: int,
        error: str | None,
        description: str | None,
        outcome: AuthOutcome | None,
        form: Mapping[str, str],
        rule: str | None = None,
    ) -> None:
        client_id = outcome.client_id if outcome is not None else None
        if self.logging:
            self._log(endpoint, status, error, description, client_id, rule)
        if not self.recording:
            return
        jwt = outcome.jwt if outcome is not None else None
        report = outcome.report if outcome is not None else None
        bounded = self.bounded
        if jwt is None:
            header: Mapping[str, Any] = {}
            claims: Mapping[str, Any] = {}
        elif bounded and len(jwt.signing_input) <= _KEPT_WHOLE:
            # small enough to keep as decoded (no copy: nothing changes them), which spares
            # the common request the copying (measured: half of what recording costs)
            header, claims = jwt.header, jwt.claims
        elif bounded:
            header, claims = bounded_members(jwt.header), bounded_members(jwt.claims)
        else:
            header, claims = dict(jwt.header), dict(jwt.claims)
        if bounded and client_id is not None:
            client_id = _cut(client_id, MAX_VALUE)
        self.seq += 1
        self.requests.append(
            RecordedRequest(
                at=self._clock(),
                endpoint=endpoint,
                status=status,
                error=error,
                description=description,
                client_id=client_id,
                header=header,
                claims=claims,
                findings=report.findings if report else (),
                form={}
                if bounded
                else {k: "<redacted>" if k in _SECRET_FIELDS else v for k, v in form.items()},
                rule=rule,
                seq=self.seq,
            )
        )

    @staticmethod
    def _log(
        endpoint: str,
        status: int,
        error: str | None,
        description: str | None,
        client_id: str | None,
        rule: str | None,
    ) -> None:
        # what was decided and why: never the assertion, a token or a secret; every string a
        # client chose passes safe_description, so no line can be forged
        who = safe_description(client_id, 80).replace(" ", "?") if client_id else None
        said = safe_description(description, 300) if description else None
        what = safe_description(f"{error}: {said}", 300) if error else "issued"
        if rule and not (said or "").startswith(rule + " "):
            what += f" (rule {rule})"  # the NHS wording does not name the rule
        fields = {
            "endpoint": endpoint,
            "status": status,
            "client": who,
            "error": error,
            "description": said,
            "rule": rule,
        }
        log.info("%s %d client=%s %s", endpoint, status, who or "-", what, extra={FIELDS: fields})


class JsonLines(logging.Formatter):
    """``--log-format json``: each record as one JSON object on one line. A decided request
    has the text line's fields (time, endpoint, status, client, error, description, rule);
    any other record has its level and message."""

    def format(self, record: logging.LogRecord) -> str:
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{at}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=True, separators=(",", ":"))
