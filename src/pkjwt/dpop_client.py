"""The client side of DPoP (RFC 9449): one client's proof key and what servers told it.

:class:`DPoPSession` is what a :class:`~pkjwt.client.TokenClient` made with ``dpop=`` holds:
its :class:`~pkjwt.dpop.DPoPKey` (the one proof maker) and the latest ``DPoP-Nonce`` of each
server it talks to, the token endpoint's and the APIs' alike (kept by origin). The token flow
and the ``HttpxAuth`` / ``RequestsAuth`` integrations ask it for proofs and show it every
answer; they decide when to retry (a ``use_dpop_nonce`` refusal: once, with a new proof).

:func:`dpop_for` turns the ``dpop=`` argument into a session: True makes an ephemeral ES256
key (tokens bound to it die with the process, which is the point); a
:class:`~pkjwt.dpop.DPoPKey`, a :class:`~pkjwt.keys.Key`, a key file, PEM or JWK, a
:class:`~pkjwt.signing.Signer` that exposes ``public_key()`` (an HSM or KMS key) or a key URI
(``pkcs11:``, ``awskms:``, ...) name a key of your own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from .dpop import DPoPKey, Nonces
from .flow import Action, Flow, Sign, run
from .signers import is_key_uri, open_signer
from .tokens import Token

__all__ = ["USE_DPOP_NONCE", "DPoPSession", "dpop_for", "is_nonce_challenge"]

log = logging.getLogger("pkjwt.client")

#: the OAuth error (token endpoint) and WWW-Authenticate error (resource) asking for a nonce
USE_DPOP_NONCE = "use_dpop_nonce"
_DPOP_SCHEME = re.compile(r"(?:^|[\s,])dpop(?:\s|,|$)")
_NONCE_ERROR = re.compile(r'error\s*=\s*"?use_dpop_nonce\b')


class DPoPSession:
    """A client's DPoP key and each server's latest nonce (shared by the token flow and the
    integrations: an API and its token endpoint on one origin share one nonce)."""

    def __init__(self, key: DPoPKey) -> None:
        self.key = key
        self.nonces = Nonces()
        self._warned_bearer = False

    @property
    def jkt(self) -> str:
        """The key's RFC 7638 thumbprint: what a bound token's ``cnf.jkt`` holds."""
        return self.key.jkt

    def proof(
        self,
        htm: str,
        url: str,
        *,
        access_token: str | None = None,
        now: float | None = None,
    ) -> Flow[str]:
        """A fresh proof for ``htm url``, with the server's nonce when one is known and, at a
        resource, the hash of the ``access_token`` it accompanies: one ``Sign`` action."""
        nonce = self.nonces.get(url)
        return self.key.proof(htm, url, now=now, nonce=nonce, access_token=access_token)

    def proof_now(self, htm: str, url: str, *, access_token: str | None = None) -> str:
        """:meth:`proof` signed here, blocking (the ``requests`` integration)."""
        return run(self.proof(htm, url, access_token=access_token), _sign)

    def observe(self, url: str, headers: Mapping[str, str]) -> bool:
        """Keep the nonce an answer from ``url`` carries; True when it is a new one."""
        return self.nonces.observe(url, headers)

    def check_token(self, token: Token, where: str) -> None:
        """A server that answers a DPoP request with a bearer token has not bound it: say so
        once (the token is still used, as the bearer token it is)."""
        if not token.is_dpop and not self._warned_bearer:
            self._warned_bearer = True
            log.warning(
                "%s answered a DPoP token request with token_type %r: the token is not bound "
                "to the DPoP key and is sent as a bearer token (enable DPoP for this client "
                "at the server)",
                where,
                token.token_type[:20],
            )

    def __repr__(self) -> str:
        return f"<DPoPSession {self.key!r}>"


def _sign(action: Action) -> bytes:
    assert isinstance(action, Sign)  # a proof asks for one signature, nothing else
    return action.signer.sign(action.data)


def dpop_for(setting: bool | DPoPKey | Any) -> DPoPSession | None:
    """The session for a ``dpop=`` argument (see the module docstring); None for off."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return DPoPSession(DPoPKey())
    if isinstance(setting, DPoPSession):
        return setting
    if isinstance(setting, DPoPKey):
        return DPoPSession(setting)
    if is_key_uri(setting):  # a key that stays in its HSM/KMS: its signer, public key and all
        return DPoPSession(DPoPKey(open_signer(setting)))
    return DPoPSession(DPoPKey(setting))


def is_nonce_challenge(headers: Mapping[str, str]) -> bool:
    """Whether a resource's 401 asks for a DPoP nonce (RFC 9449 9): ``WWW-Authenticate: DPoP
    error="use_dpop_nonce"`` with a ``DPoP-Nonce`` header."""
    challenge = nonce = None
    for name, value in headers.items():
        lower = name.lower()
        if lower == "www-authenticate":
            challenge = value if challenge is None else f"{challenge}, {value}"
        elif lower == "dpop-nonce":
            nonce = value
    if not challenge or not nonce:
        return False
    return _asks_nonce(challenge)


def _asks_nonce(challenge: str) -> bool:
    # use_dpop_nonce is an error of the DPoP scheme alone (RFC 9449 12.2): with that scheme
    # among the challenges, the error is its own whatever other schemes stand beside it
    lower = challenge.lower()
    return bool(_DPOP_SCHEME.search(lower) and _NONCE_ERROR.search(lower))
