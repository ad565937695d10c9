"""Dialects: how the token endpoint reads a request and answers it, selected by the profile.

The request pipeline is one (:mod:`pkjwt.server.endpoints`): read the request, authenticate
the client (decode, rules, replay), check the grant, issue. A dialect only says what differs
between servers that follow RFC 6749 and the NHS England API Platform:

* how strictly the request is read (the ``Content-Type`` as a literal, a form that cannot be
  parsed, whether client secrets are a method at all, whether a body ``client_id`` counts);
* when the ``jti`` is recorded (after every check, or, as the platform does, after its claim
  checks, so a later failure still uses the ``jti`` up);
* which of several failures answers, with what status, ``error`` and wording;
* the shape of a success.

:data:`STANDARD` answers RFC 6749 5.2 errors whose ``error_description`` names the rule;
:data:`NHS` answers the platform's rows (:mod:`pkjwt.nhs`), in its order, with its strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import nhs
from ..profiles import Profile
from ..rules import Finding
from .failures import Failure, safe_description
from .http import JSON, NO_STORE, Reply, dumps, http_date
from .issuing import IssuedToken

__all__ = ["DIALECTS", "NHS", "STANDARD", "Answer", "Dialect", "dialect_for"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A refusal as sent (``reply``) and as logged (``error``, ``description``, and the
    ``rule`` of the failure that answers, for the log and the metrics)."""

    reply: Reply
    error: str
    description: str
    rule: str


class Dialect:
    """RFC 6749 5.2: the first failure in rule order answers; assertion failures are 400
    ``invalid_client`` (401 only with a Basic challenge to go with it)."""

    name: ClassVar[str] = "standard"
    #: compare ``Content-Type`` as a literal string (a ``; charset=`` fails) instead of a type
    exact_content_type: ClassVar[bool] = False
    #: a body that is not a valid form reads as an empty one instead of failing R1
    lenient_form: ClassVar[bool] = False
    #: fields that may repeat (RFC 8707 2: several ``resource`` parameters); others fail R1
    repeatable_fields: ClassVar[frozenset[str]] = frozenset({"resource"})
    #: any field may repeat and its first value counts (a gateway reading forms that way)
    first_value_wins: ClassVar[bool] = False
    #: client_secret_basic / client_secret_post are methods at the token endpoint
    secret_methods: ClassVar[bool] = True
    #: a body ``client_id`` must name the assertion's client (R7)
    body_client_id: ClassVar[bool] = True
    #: ``scope`` and ``resource`` are checked (R20) and granted; the NHS platform ignores them
    honours_scope: ClassVar[bool] = True
    #: how ``expires_in`` is typed in a success (the OpenAPI document says so too)
    expires_in_type: ClassVar[str] = "integer"

    def public_answer(self, finding: Finding) -> str:
        """How a server of this dialect answers when ``finding`` fails (the doctor says it)."""
        return f"a server answers {finding.error}"

    def lifetime(self, form: Mapping[str, str], default: int) -> int:
        """The issued token's lifetime in seconds."""
        return default

    def may_record_jti(self, failures: Sequence[Failure]) -> bool:
        """Whether the replay check (R19) runs given the failures so far: only when none."""
        return not failures

    def refusal(self, failures: Sequence[Failure]) -> Answer | None:
        """The answer to a refused request, or None when no failure counts here."""
        return self._answer(failures[0]) if failures else None

    @staticmethod
    def _answer(failure: Failure) -> Answer:
        headers = [*NO_STORE, ("date", http_date()), JSON]
        status = failure.status
        if status == 401 and failure.basic:
            headers.append(("www-authenticate", 'Basic realm="pkjwt"'))
        elif status == 401:
            # a 401 must carry a challenge; assertion failures answer 400 (RFC 6749 5.2)
            status = 400
        description = safe_description(failure.description)
        body = {"error": failure.error, "error_description": description}
        reply = Reply(status, tuple(headers), dumps(body))
        return Answer(reply, failure.error, description, failure.rule)

    def success(self, access_token: str, issued: IssuedToken, lifetime: int) -> Reply:
        payload: dict[str, Any] = {
            "access_token": access_token,
            "token_type": issued.token_type,
            "expires_in": lifetime,
        }
        if issued.scope:
            payload["scope"] = issued.scope
        return Reply(200, (*NO_STORE, ("date", http_date()), JSON), dumps(payload))


_REQUEST_ROWS = {
    code: row for row in (nhs.CONTENT_TYPE, *nhs.NHS_REQUEST_ERRORS) for code in row.codes
}
_MALFORMED = next(r for r in nhs.NHS_REQUEST_ERRORS if "jws.compact" in r.codes)
_RECORD_AT = nhs.NHS_ASSERTION_ERRORS.index(None)
#: the platform's claim checks: the jti is recorded only when none of them failed
_BEFORE_RECORDING = frozenset(
    code for row in nhs.NHS_ASSERTION_ERRORS[:_RECORD_AT] if row for code in row.codes
)
_ASSERTION_ROWS = tuple(row for row in nhs.NHS_ASSERTION_ERRORS if row is not None)
#: findings the platform does not check (the spec: iat is optional and unchecked)
_UNCHECKED = frozenset({"iat.future", "iat.type"})


class NhsDialect(Dialect):
    """The NHS England API Platform: its checks' order, statuses, ``error`` codes and exact
    strings (shared/spec/nhs-signed-jwt.md), a ``message_id`` on every error, and string values
    with ``issued_at`` in milliseconds on success."""

    name: ClassVar[str] = "nhs"
    exact_content_type: ClassVar[bool] = True
    lenient_form: ClassVar[bool] = True
    first_value_wins: ClassVar[bool] = True
    secret_methods: ClassVar[bool] = False
    body_client_id: ClassVar[bool] = False
    honours_scope: ClassVar[bool] = False
    expires_in_type: ClassVar[str] = "string"

    def public_answer(self, finding: Finding) -> str:
        row = nhs.row_for(finding.code)
        if row is None:
            return super().public_answer(finding)
        return f"the NHS platform answers {row.status} {row.error}: {row.description}"

    def may_record_jti(self, failures: Sequence[Failure]) -> bool:
        # the platform records the jti after its claim checks, before the checks that
        # answer 401: a failed attempt still uses up its jti
        return not any(f.code in _BEFORE_RECORDING or f.rule in ("R5", "R6") for f in failures)

    def refusal(self, failures: Sequence[Failure]) -> Answer | None:
        codes = {f.code for f in failures}
        for failure in failures:
            row = _REQUEST_ROWS.get(failure.code)
            if row is None and failure.rule in ("R5", "R6"):
                row = _MALFORMED  # every decoding failure reads as one malformed JWT
            if row is not None:
                return self._nhs_answer(row.status, row.error, row.description, failure.rule)
        for row in _ASSERTION_ROWS:
            if codes.intersection(row.codes):
                rule = next(f.rule for f in failures if f.code in row.codes)
                return self._nhs_answer(row.status, row.error, row.description, rule)
        # a failure no NHS row names (nbf in the future, a registered-alg mismatch) still
        # refuses: unknown is never accepted
        for failure in failures:
            if failure.code not in _UNCHECKED:
                return self._nhs_answer(400, "invalid_request", failure.description, failure.rule)
        return None

    @staticmethod
    def _nhs_answer(status: int, error: str, description: str, rule: str) -> Answer:
        body = {"error": error, "error_description": description, "message_id": str(uuid.uuid4())}
        reply = Reply(status, (*NO_STORE, ("date", http_date()), JSON), dumps(body))
        return Answer(reply, error, description, rule)

    def lifetime(self, form: Mapping[str, str], default: int) -> int:
        # the platform's own tests shorten a token with _access_token_expiry_ms (milliseconds):
        # only a value below the default counts; we also keep at least a second
        raw = form.get("_access_token_expiry_ms", "")
        digits = raw[1:] if raw.startswith("-") else raw
        if not digits.isdigit() or len(digits) > 15:
            return default
        wanted = int(raw)
        return max(1, wanted // 1000) if wanted < default * 1000 else default

    def success(self, access_token: str, issued: IssuedToken, lifetime: int) -> Reply:
        # the platform sends every value as a string, issued_at in milliseconds
        payload = {
            "access_token": access_token,
            "expires_in": str(lifetime),
            "token_type": "Bearer",
            "issued_at": str(issued.issued_at * 1000),
        }
        return Reply(200, (*NO_STORE, ("date", http_date()), JSON), dumps(payload))


STANDARD = Dialect()
NHS = NhsDialect()
DIALECTS: dict[str, Dialect] = {d.name: d for d in (STANDARD, NHS)}


def dialect_for(profile: Profile) -> Dialect:
    """The dialect a profile names (``Profile.dialect``)."""
    return DIALECTS[profile.dialect]
