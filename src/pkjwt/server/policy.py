"""Rule R20, the grant policy: may this authenticated client have this token?"""

from __future__ import annotations

from collections.abc import Mapping

from .config import ClientConfig
from .failures import Failure, fail
from .http import Form

__all__ = ["grant_policy"]


def grant_policy(
    client: ClientConfig, form: Mapping[str, str], *, honours_scope: bool = True
) -> Failure | None:
    """The grant is allowed for the client (``unauthorized_client``), and, where the dialect
    checks them, every scope (``invalid_scope``) and every resource (``invalid_target``: RFC 8707
    allows several)."""
    if "client_credentials" not in client.grant_types:
        return fail("R20", "grant.unauthorized", "R20 client is not allowed client_credentials")
    if not honours_scope:
        return None
    scope = form.get("scope")
    if scope:
        unknown = [s for s in scope.split() if s not in client.scopes]
        if unknown:
            return fail(
                "R20",
                "scope.not_allowed",
                f"R20 scope not allowed: {' '.join(unknown)[:100]}",
                error="invalid_scope",
            )
    resources = form.values_of("resource") if isinstance(form, Form) else []
    if any(r and r not in client.resources for r in resources):
        return fail(
            "R20",
            "resource.not_allowed",
            "R20 resource not allowed for this client",
            error="invalid_target",
        )
    return None
