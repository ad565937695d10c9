"""Federated trusts: whose identity tokens a client may present instead of its own assertion.

A server that accepts federated credentials (Entra ID's "federated identity credentials",
Okta's and Keycloak's equivalents) lets a registered client say: a token that ``issuer``
issued about ``subject``, addressed to ``audience``, authenticates me. The token is the
workload's (a Kubernetes service account's, a GitHub Actions job's), so the rule table judges
it with this trust instead of the client's own assertion rules:

* R7/R13: the client is named by the request's ``client_id``; ``iss`` and ``sub`` must be the
  trust's issuer and subject (a workload identity is never the client id);
* R14: ``aud`` (a string or an array) must name one of the trust's audiences;
* R12: ``typ`` absent or ``JWT``, whatever the server's profile asks of its own clients;
* R8/R9: any asymmetric algorithm the issuer's key can make; ``kid`` optional;
* R17: ``exp`` at most ``max_lifetime`` ahead (an hour-long projected token is normal);
* R18/R19: ``jti`` optional, and no replay memory: the same token is presented until it
  expires, by design (its short life and audience are what bound it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .keys import KeySet
from .profiles import ALL_SIGNING_ALGS, Profile, TypPolicy

__all__ = ["DEFAULT_MAX_LIFETIME", "FederatedTrust"]

#: a Kubernetes projected token lives an hour by default and may be asked for 48 h
DEFAULT_MAX_LIFETIME = 86_400


@dataclass(frozen=True, slots=True)
class FederatedTrust:
    """Tokens from ``issuer`` about ``subject``, addressed to one of ``audiences`` and signed
    by one of the issuer's keys (inline ``keys``, a ``jwks_file`` or the issuer's
    ``jwks_uri``), authenticate the client that holds this trust."""

    issuer: str
    subject: str
    audiences: tuple[str, ...]
    keys: KeySet | None = None
    jwks_uri: str | None = None
    #: where ``keys`` came from when a file: re-read when it changes
    jwks_file: Path | None = None
    max_lifetime: int = DEFAULT_MAX_LIFETIME
    _profiles: dict[str, Profile] = field(default_factory=dict, compare=False, repr=False)

    def profile(self, base: Profile) -> Profile:
        """``base`` with the limits an identity token is judged by (built once per base)."""
        found = self._profiles.get(base.name)
        if found is None:
            found = self._profiles[base.name] = base.with_overrides(
                algs=ALL_SIGNING_ALGS,
                preferred_alg=None,
                typ_policy=TypPolicy.LENIENT,
                kid_required=False,
                max_lifetime=self.max_lifetime,
                max_assertion_bytes=max(base.max_assertion_bytes, 16 * 1024),
            )
        return found

    def describe(self) -> str:
        return f"iss {self.issuer} sub {self.subject}"
