"""The ``nhs`` mode of the token endpoint: the platform's checks, order, codes and strings.

The rule table evaluates the assertion once; this module only picks which NHS row answers,
walking :data:`pkjwt.nhs.NHS_ASSERTION_ERRORS` in the platform's order and recording the
``jti`` (30-day memory) where the platform does: before the 401 checks, so a failed attempt
still uses up its ``jti``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from .. import nhs
from ..profiles import JWT_BEARER
from ..rules import Finding
from .auth import AuthResult, ClientAuthenticator, describe

__all__ = ["NhsOutcome", "nhs_authenticate", "nhs_error_body"]

_FORM = "application/x-www-form-urlencoded"
_ROW = {row.codes[0]: row for row in nhs.NHS_REQUEST_ERRORS}
_NON_UNIQUE = next(r for r in nhs.NHS_ASSERTION_ERRORS if r and "jti.replay" in r.codes)
_UNAUTHORIZED = next(r for r in nhs.NHS_ASSERTION_ERRORS if r and "grant.unauthorized" in r.codes)
_MALFORMED = _ROW["jws.size"] if "jws.size" in _ROW else nhs.NHS_REQUEST_ERRORS[-1]


#: findings the platform does not check (the spec: iat is optional and unchecked)
_NHS_UNCHECKED = frozenset({"iat.future", "iat.type"})


def _unmapped(finding: Finding) -> nhs.NhsError:
    return nhs.NhsError(
        400, "invalid_request", describe(finding), (finding.code,), (), finding.hint
    )


@dataclass(slots=True)
class NhsOutcome:
    error: nhs.NhsError | None
    result: AuthResult | None = None


def nhs_error_body(row: nhs.NhsError) -> bytes:
    return json.dumps(
        {"error": row.error, "error_description": row.description, "message_id": str(uuid.uuid4())}
    ).encode()


async def nhs_authenticate(
    auth: ClientAuthenticator, params: Mapping[str, str], content_type: str | None
) -> NhsOutcome:
    if content_type != _FORM:
        return NhsOutcome(nhs.CONTENT_TYPE)
    grant = params.get("grant_type")
    if not grant:
        return NhsOutcome(_ROW["request.grant_type_missing"])
    if grant != "client_credentials":
        return NhsOutcome(_ROW["request.grant_type_invalid"])
    if params.get("client_assertion_type") != JWT_BEARER:
        return NhsOutcome(_ROW["request.assertion_type"])
    assertion = params.get("client_assertion")
    if not assertion:
        return NhsOutcome(_ROW["request.assertion_missing"])
    result = await auth.evaluate(assertion, None, replay=False)
    if result.failure is not None:
        code = result.failure.code
        if code == "jwks.unregistered":
            return NhsOutcome(nhs.PUBLIC_KEY_MISSING, result)
        if code == "jwks.fetch":
            return NhsOutcome(nhs.JWKS_UNREACHABLE, result)
        return NhsOutcome(_MALFORMED, result)
    assert result.report is not None
    assert result.jwt is not None
    failures = result.report.failures
    failed = {f.code for f in failures}
    if failed.intersection(_MALFORMED.codes):
        return NhsOutcome(_MALFORMED, result)
    claims = result.jwt.claims
    for row in nhs.NHS_ASSERTION_ERRORS:
        if row is None:
            # the platform records the jti here, before the checks that answer 401
            sub = claims.get("sub")
            jti = claims.get("jti")
            now = auth.clock()
            if not auth.replay.add(str(sub), str(jti), now + auth.profile.jti_memory):
                return NhsOutcome(_NON_UNIQUE, result)
            continue
        if row is _NON_UNIQUE:
            continue
        if failed.intersection(row.codes):
            return NhsOutcome(row, result)
    # a failure no NHS row names (nbf in the future, a registered-alg mismatch) still refuses:
    # unknown is never accepted
    leftover = [f for f in failures if f.code not in _NHS_UNCHECKED]
    if leftover:
        return NhsOutcome(_unmapped(leftover[0]), result)
    client = result.client
    if client is None:  # R7 maps to the iss/sub row above; a guard only
        return NhsOutcome(_ROW["request.assertion_missing"], result)
    if "client_credentials" not in client.grant_types:
        return NhsOutcome(_UNAUTHORIZED, result)
    return NhsOutcome(None, result)
