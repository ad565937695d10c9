"""An authorization server pkjwt did not write: Flask + Authlib's own RFC 7523 client auth.

``run_authlib_server(clients)`` starts, on a free 127.0.0.1 port in a background thread
(werkzeug ``make_server``), a Flask app whose token endpoint is Authlib's
``authlib.integrations.flask_oauth2.AuthorizationServer`` with the ``client_credentials``
grant, authenticating clients with ``private_key_jwt`` through a subclass of
``authlib.oauth2.rfc7523.JWTBearerClientAssertion``. It serves:

* ``POST /oauth/token``: opaque bearer tokens (Authlib's ``BearerTokenGenerator``, 300 s);
* ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata built with Authlib's
  ``AuthorizationServerMetadata`` and checked with its per-member validators (issuer,
  token_endpoint, ``token_endpoint_auth_methods_supported = ["private_key_jwt"]``,
  ``token_endpoint_auth_signing_alg_values_supported``);
* ``GET /api/whoami``: a route guarded by Authlib's Flask ``ResourceProtector`` with a
  ``BearerTokenValidator`` over the tokens it issued (answers the token's client_id).

What Authlib checks in the assertion (Authlib 1.9.10 as locked; ``get_audiences`` needs
>= 1.7; line numbers in ``authlib/oauth2/rfc7523/client.py``):

* ``aud``: ``verify_claims`` (line 83) builds joserfc's ``JWTClaimsRegistry`` with
  ``"aud": {"essential": True, "values": self.get_audiences()}``. Authlib itself accepts no
  audience by default: ``get_audiences`` (lines 104-118) raises ``NotImplementedError``
  unless the deprecated ``token_url=`` constructor argument was given, in which case it is
  ``[token_url]`` and nothing else (Authlib <= 1.6 had only that: ``"value": token_url``).
  Whatever the list holds is compared exactly, case- and slash-sensitive; an ``aud`` array
  passes when any element is in the list (joserfc ``_rfc7519/claims.py``,
  ``check_value``). Authlib's docs suggest ``[token URL, issuer]``. This peer's
  ``get_audiences`` is ``[token_endpoint]`` by default (the deployed, token-URL-only
  behaviour: an rfc7523bis ``aud = issuer`` is refused with ``invalid_client``), and
  ``[token_endpoint, issuer]`` with ``accept_issuer_audience=True``.
* ``iss == sub`` (line 94), ``exp`` essential with a 60 s leeway, and ``jti`` through
  ``validate_jti`` (lines 97-102, 162-173), which Authlib leaves to the developer: here a
  dict of used ``(sub, jti)`` pairs, so a replayed assertion is ``invalid_client``.
* the algorithm: ``process_assertion_claims`` (line 130) calls ``joserfc.jwt.decode``
  without ``algorithms``, so stock Authlib takes only joserfc's "recommended" algorithms
  (HS256, RS256, ES256) and refuses PS256 and RS512 with ``invalid_client``. This peer
  passes the list it advertises (``algorithms=``, default RS256, RS512, PS256, ES256);
  ``stock_algorithms=True`` keeps Authlib's own behaviour (and advertises RS256, ES256).
* the key: the client's registered public JWKS (``KeySet``), picked by the header's ``kid``;
  the ``typ`` header is not checked.

Every request and what Authlib made of it is recorded on the returned :class:`AuthlibPeer`.
Flask, werkzeug, Authlib (and its joserfc), httpx; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2 import current_token as authlib_current_token
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from werkzeug.serving import make_server

__all__ = [
    "DEFAULT_ALGORITHMS",
    "TOKEN_LIFETIME",
    "AuthlibPeer",
    "RegisteredClient",
    "TokenRequest",
    "run_authlib_server",
]

DEFAULT_ALGORITHMS = ("RS256", "RS512", "PS256", "ES256")
TOKEN_LIFETIME = 300
TOKEN_PATH = "/oauth/token"
STARTUP_TIMEOUT = 10.0


@dataclass
class RegisteredClient(ClientMixin):
    """A client as Authlib's ClientMixin sees it: a public JWKS and private_key_jwt."""

    client_id: str
    jwks: dict[str, Any]
    scope: str = ""
    token_endpoint_auth_method: str = "private_key_jwt"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass
class IssuedToken(TokenMixin):
    access_token: str
    client_id: str
    scope: str
    issued_at: float
    expires_in: int

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return False


@dataclass
class TokenRequest:
    """One POST to the token endpoint: the form, the assertion's header and claims as
    Authlib's ``extract_assertion`` parsed them, and the answer."""

    form: dict[str, str]
    header: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None
    status: int | None = None
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuthlibPeer:
    """A running server: its URLs, what it was asked and what it issued."""

    base_url: str
    algorithms: tuple[str, ...]
    accept_issuer_audience: bool
    clients: dict[str, RegisteredClient]
    token_requests: list[TokenRequest] = field(default_factory=list)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    #: (sub, jti) -> exp of every assertion Authlib accepted (validate_jti)
    used_jtis: dict[tuple[str, str], int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def token_endpoint(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def metadata_url(self) -> str:
        return self.base_url + "/.well-known/oauth-authorization-server"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/whoami"

    def audiences(self) -> list[str]:
        if self.accept_issuer_audience:
            return [self.token_endpoint, self.issuer]
        return [self.token_endpoint]

    def whoami(self, access_token: str) -> httpx.Response:
        """Call the protected route with a bearer token."""
        return httpx.get(
            self.api_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        )


def _assertion_auth(peer: AuthlibPeer, stock_algorithms: bool) -> JWTBearerClientAssertion:
    class PrivateKeyJWTAssertion(JWTBearerClientAssertion):
        """Authlib's RFC 7523 client authentication under its registered method name."""

        CLIENT_AUTH_METHOD = "private_key_jwt"

        def get_audiences(self) -> list[str]:
            return peer.audiences()

        def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
            return KeySet.import_key_set(client.jwks)

        def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
            key = (str(claims["sub"]), jti)
            with peer.lock:
                if key in peer.used_jtis:
                    return False
                peer.used_jtis[key] = int(claims["exp"])
                return True

        def extract_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
            headers, claims = super().extract_assertion(assertion)
            with peer.lock:
                if peer.token_requests:
                    peer.token_requests[-1].header = dict(headers)
                    peer.token_requests[-1].claims = dict(claims)
            return headers, claims

        if not stock_algorithms:

            def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
                # Authlib's own body (client.py lines 129-136) with the advertised algorithms
                # passed to joserfc; without them only HS256/RS256/ES256 would verify
                try:
                    token = jwt.decode(assertion, resolve_key, algorithms=list(peer.algorithms))
                except JoseError as e:
                    raise InvalidClientError(description=e.description) from e
                self.verify_claims(token.claims)
                return token.claims

    return PrivateKeyJWTAssertion()


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]


def _metadata(peer: AuthlibPeer) -> dict[str, Any]:
    """RFC 8414 metadata, checked with Authlib's own validators for each member it has (not
    ``validate()``, which also insists on ``response_types_supported``: this server has no
    authorization endpoint)."""
    meta = AuthorizationServerMetadata(
        {
            "issuer": peer.issuer,
            "token_endpoint": peer.token_endpoint,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(peer.algorithms),
        }
    )
    for name in list(meta):
        getattr(meta, f"validate_{name}")()
    return dict(meta)


def _app(peer: AuthlibPeer, stock_algorithms: bool) -> Flask:
    app = Flask("pkjwt-authlib-peer")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": TOKEN_LIFETIME}

    def query_client(client_id: str) -> RegisteredClient | None:
        return peer.clients.get(client_id)

    def save_token(token: dict[str, Any], req: Any) -> None:
        issued = IssuedToken(
            access_token=token["access_token"],
            client_id=req.client.get_client_id(),
            scope=token.get("scope", ""),
            issued_at=time.time(),
            expires_in=int(token["expires_in"]),
        )
        with peer.lock:
            peer.tokens[issued.access_token] = issued

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_client_auth_method("private_key_jwt", _assertion_auth(peer, stock_algorithms))
    server.register_grant(_ClientCredentials)

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string: str) -> IssuedToken | None:
            with peer.lock:
                return peer.tokens.get(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.before_request
    def _record() -> None:
        if request.method == "POST" and request.path == TOKEN_PATH:
            with peer.lock:
                peer.token_requests.append(TokenRequest(form=request.form.to_dict()))

    @app.after_request
    def _answer(response: Any) -> Any:
        if request.method == "POST" and request.path == TOKEN_PATH:
            with peer.lock:
                record = peer.token_requests[-1]
                record.status = response.status_code
                with contextlib.suppress(ValueError):
                    record.answer = json.loads(response.get_data(as_text=True))
        return response

    @app.post(TOKEN_PATH)
    def token() -> Any:
        return server.create_token_response()

    @app.get("/.well-known/oauth-authorization-server")
    def metadata() -> Any:
        return jsonify(peer.metadata)

    @app.get("/api/whoami")
    @protect()
    def whoami() -> Any:
        return jsonify({"client_id": authlib_current_token.client_id})

    return app


@contextlib.contextmanager
def run_authlib_server(
    clients: Sequence[RegisteredClient],
    *,
    algorithms: Sequence[str] | None = None,
    accept_issuer_audience: bool = False,
    stock_algorithms: bool = False,
) -> Iterator[AuthlibPeer]:
    """Serve the Authlib peer on 127.0.0.1 until the block ends.

    ``algorithms`` are advertised and the only ones verified (default
    :data:`DEFAULT_ALGORITHMS`). With ``stock_algorithms=True`` Authlib verifies as shipped
    and the metadata advertises what that takes: joserfc's recommended asymmetric algorithms.

    Requests are handled one at a time, in order (``threaded=False``): the recorded
    ``token_requests`` are then exactly what Authlib saw, in sequence.
    """
    if stock_algorithms:
        if algorithms is not None:
            raise ValueError("stock_algorithms verifies what joserfc recommends: no algorithms=")
        algorithms = [a for a in JWSRegistry.recommended if not a.startswith("HS")]
    peer = AuthlibPeer(
        base_url="",
        algorithms=tuple(algorithms or DEFAULT_ALGORITHMS),
        accept_issuer_audience=accept_issuer_audience,
        clients={c.client_id: c for c in clients},
    )
    app = _app(peer, stock_algorithms)
    httpd = make_server("127.0.0.1", 0, app, threaded=False)
    peer.base_url = f"http://127.0.0.1:{httpd.server_port}"
    peer.metadata = _metadata(peer)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        _wait_until_up(peer)
        yield peer
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _wait_until_up(peer: AuthlibPeer) -> None:
    """Poll the metadata URL (bounded) until the server answers."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(peer.metadata_url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.02)  # a bounded poll, not a synchronisation
    raise RuntimeError(f"the Authlib peer at {peer.base_url} did not start: {last!r}")
