"""Reading a request at the token, introspection and revocation endpoints: rules R1-R4.

Bytes and headers in; the form and the client's credentials out, or the :class:`Failure` that
says why not. Nothing here looks at a key, a registration or the clock: that is client
authentication's job (:mod:`pkjwt.server.client_auth`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from ..profiles import JWT_BEARER
from .dialects import Dialect
from .failures import Failure, fail, safe_description
from .http import FORM, MAX_BODY, Form, parse_form

__all__ = [
    "AssertionCredentials",
    "Credentials",
    "SecretCredentials",
    "read_credentials",
    "read_form",
    "read_grant",
]

_CC = "expected client_credentials"


@dataclass(frozen=True, slots=True)
class AssertionCredentials:
    """private_key_jwt: the assertion, and the body ``client_id`` when one counts (R7)."""

    assertion: str = field(repr=False)
    client_id: str | None


@dataclass(frozen=True, slots=True)
class SecretCredentials:
    """client_secret_basic or client_secret_post."""

    client_id: str
    secret: str = field(repr=False)
    method: str
    basic: bool = False


Credentials = AssertionCredentials | SecretCredentials


def read_form(headers: Mapping[str, str], body: bytes, dialect: Dialect) -> Form | Failure:
    """R1: a bounded, form-encoded body with no parameter repeated."""
    if len(body) > MAX_BODY:
        return fail("R1", "request.too_large", "R1 request body too large")
    content_type = headers.get("content-type")
    if dialect.exact_content_type:
        if content_type != FORM:
            return fail("R1", "request.content_type", f"R1 Content-Type: expected {FORM}")
    else:
        mime = (content_type or "").split(";")[0].strip().lower()
        if mime != FORM:
            got = mime or "(absent)"
            return fail(
                "R1", "request.content_type", f"R1 Content-Type: expected {FORM}; got {got}"
            )
    form = parse_form(
        body, repeatable=dialect.repeatable_fields, first_wins=dialect.first_value_wins
    )
    if isinstance(form, str):
        return Form() if dialect.lenient_form else fail("R1", "request.form", f"R1 {form}")
    return form


def read_grant(form: Mapping[str, str]) -> Failure | None:
    """R3: ``grant_type`` present and ``client_credentials``."""
    grant = form.get("grant_type")
    if not grant:
        return fail("R3", "request.grant_type_missing", f"R3 grant_type: {_CC}; got (absent)")
    if grant != "client_credentials":
        return fail(
            "R3",
            "request.grant_type_invalid",
            f"R3 grant_type: {_CC}; got {grant[:60]}",
            error="unsupported_grant_type",
        )
    return None


def _basic(headers: Mapping[str, str]) -> tuple[str, str] | bool | None:
    """The HTTP Basic pair (RFC 6749 2.3.1: each part form-encoded), False when malformed,
    None when there is no ``Authorization`` header."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # ValueError: non-ASCII input, bad UTF-8
        return False
    user, sep, password = decoded.partition(":")
    if not sep:
        return False
    return unquote(user), unquote(password)


def read_credentials(
    form: Mapping[str, str], headers: Mapping[str, str], dialect: Dialect
) -> Credentials | Failure:
    """R2 (exactly one mechanism, where secrets are a method) and R4 (the assertion's type and
    presence)."""
    if dialect.secret_methods:
        basic = _basic(headers)
        has_assertion = "client_assertion" in form or "client_assertion_type" in form
        has_post = "client_secret" in form
        mechanisms = sum((has_assertion, has_post, basic is not None))
        if mechanisms > 1:
            return fail(
                "R2",
                "auth.multiple",
                "R2 exactly one client authentication mechanism: got several "
                "(assertion, Basic, client_secret)",
            )
        if mechanisms == 0:
            return fail(
                "R4",
                "auth.none",
                "R4 client authentication required: no client_assertion",
                error="invalid_client",
                status=401,
            )
        if basic is False:
            return fail(
                "R2",
                "auth.basic",
                "malformed HTTP Basic credentials",
                error="invalid_client",
                status=401,
                basic=True,
            )
        if isinstance(basic, tuple):
            return SecretCredentials(basic[0], basic[1], "client_secret_basic", basic=True)
        if has_post:
            return SecretCredentials(
                form.get("client_id", ""), form["client_secret"], "client_secret_post"
            )
    if form.get("client_assertion_type") != JWT_BEARER:
        return fail(
            "R4",
            "request.assertion_type",
            safe_description(
                f"R4 client_assertion_type: expected {JWT_BEARER}; got "
                f"{form.get('client_assertion_type', '(absent)')[:100]}"
            ),
        )
    assertion = form.get("client_assertion")
    if not assertion:
        return fail(
            "R4", "request.assertion_missing", "R4 client_assertion: expected a JWT; got (absent)"
        )
    # RFC 6749 3.2: a parameter sent without a value is treated as omitted
    client_id = (form.get("client_id") or None) if dialect.body_client_id else None
    return AssertionCredentials(assertion, client_id)
