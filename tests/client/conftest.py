"""Fixtures for the token client tests: a scripted token server on loopback, a fake clock,
recorded sleeps, and session-scoped keys.

The scripted server is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1:0. Token requests (any
POST outside ``/api`` and ``/.well-known``) are answered from ``server.script`` in order, then
with fresh tokens; every request is recorded with its form body and decoded assertion. It also
serves RFC 8414 metadata (``server.metadata``) and a protected ``/api`` that checks bearer
tokens it issued (401 for revoked or unknown ones).

DPoP (RFC 9449): a request's ``DPoP`` proof is judged by :func:`pkjwt.dpop.check_proof` and
kept in ``Recorded.dpop``; a token request with a sound proof gets a ``DPoP`` token bound to
its key, and ``/api`` then wants ``Authorization: DPoP`` with a proof by that key for that
token. ``token_nonce`` / ``api_nonce`` make either side demand its nonce (RFC 9449 8 and 9).
"""

from __future__ import annotations

import email.utils
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pkjwt import Key, TokenClient, load_key
from pkjwt.decode import DecodedJWT, decode_compact
from pkjwt.dpop import ProofCheck, check_proof
from pkjwt.errors import JWTFormatError

#: a fixed, whole-second epoch for the fake clock (whole seconds keep Date-header skew at 0.5 s)
T0 = 1_750_000_000.0
CLIENT_ID = "api-key-0123456789"

Response = tuple[int, Mapping[str, str], Any]
ScriptItem = Response | Callable[["Recorded"], Response]


# -- clock and sleeps ----------------------------------------------------------------------------


class FakeClock:
    """An injectable epoch clock that only moves when told to."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def set(self, when: float) -> None:
        with self._lock:
            self.now = when


class Sleeps:
    """Records requested sleeps instead of sleeping (sync and async)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self(seconds)


# -- the scripted server -------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    form: dict[str, list[str]]
    server_time: float
    assertion: DecodedJWT | None = None
    raw_assertion: str | None = None
    #: the DPoP proof, judged (None: no DPoP header)
    dpop: ProofCheck | None = None

    @property
    def jwt_header(self) -> dict[str, Any]:
        assert self.assertion is not None, "no client_assertion in this request"
        return self.assertion.header

    @property
    def claims(self) -> dict[str, Any]:
        assert self.assertion is not None, "no client_assertion in this request"
        return self.assertion.claims


@dataclass
class _State:
    token_requests: list[Recorded] = field(default_factory=list)
    api_requests: list[Recorded] = field(default_factory=list)
    meta_requests: list[Recorded] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    #: DPoP-bound tokens: access token -> the key thumbprint it is bound to
    bound: dict[str, str] = field(default_factory=dict)


class ScriptedServer:
    """A token endpoint whose answers follow a script. See the module docstring."""

    def __init__(self, clock: Callable[[], float]) -> None:
        #: responses for the next token requests, consumed in order
        self.script: list[ScriptItem] = []
        #: expires_in of the default (unscripted) token response
        self.default_expires_in: Any = 600
        #: what the Date header says: date_clock() + date_offset
        self.date_clock: Callable[[], float] = clock
        self.date_offset = 0.0
        #: served at /.well-known/oauth-authorization-server (None: 404)
        self.metadata: dict[str, Any] | None = None
        #: tokens the API rejects
        self.revoked: set[str] = set()
        #: answer every API call with 401
        self.api_always_401 = False
        #: when set, token requests (api_nonce: API requests) must carry this DPoP nonce;
        #: every answer of that side carries it in DPoP-Nonce
        self.token_nonce: str | None = None
        self.api_nonce: str | None = None
        #: when set, token responses wait for it (up to 20 s) before they are sent
        self.gate: threading.Event | None = None
        #: set at teardown: ends every hold() early
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._state = _State()
        self._n = 0
        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self.gate is not None:
            self.gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- addresses -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth2/token"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/hello"

    # -- what happened ---------------------------------------------------------------------------
    @property
    def token_requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._state.token_requests)

    @property
    def token_count(self) -> int:
        with self._lock:
            return len(self._state.token_requests)

    @property
    def api_requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._state.api_requests)

    @property
    def meta_requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._state.meta_requests)

    @property
    def issued(self) -> list[str]:
        with self._lock:
            return list(self._state.issued)

    def wait_for_token_requests(self, count: int, timeout: float = 10.0) -> None:
        """Bounded wait until the server has seen ``count`` token requests."""
        deadline = time.monotonic() + timeout
        while self.token_count < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} token requests, saw {self.token_count} in {timeout} s"
                )
            time.sleep(0.01)

    # -- scripting helpers -----------------------------------------------------------------------
    def now(self) -> float:
        return self.date_clock() + self.date_offset

    def hold(self, seconds: float) -> None:
        """Delay a response (ends early at teardown)."""
        self.released.wait(seconds)

    def next_token_value(self) -> str:
        with self._lock:
            self._n += 1
            n = self._n
        return f"at-{n}-{secrets.token_urlsafe(18)}"

    @staticmethod
    def token(
        access_token: str | None = None, *, expires_in: Any = 600, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": access_token or "", "token_type": "Bearer"}
        if expires_in is not None:
            body["expires_in"] = expires_in
        body.update(extra)
        return body

    def ok(self, *, expires_in: Any = 600, headers: Mapping[str, str] | None = None, **extra: Any):
        """A script item: 200 with a fresh token."""

        def reply(_: Recorded) -> Response:
            body = self.token(self.next_token_value(), expires_in=expires_in, **extra)
            return 200, dict(headers or {}), body

        return reply

    @staticmethod
    def error(
        status: int,
        error: str,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        body: dict[str, Any] = {"error": error, "message_id": "rrt-0000-test"}
        if description is not None:
            body["error_description"] = description
        return status, dict(headers or {}), body

    # -- handling (called from handler threads) --------------------------------------------------
    def _default_token(self, rec: Recorded) -> Response:
        body = self.token(self.next_token_value(), expires_in=self.default_expires_in)
        if rec.dpop is not None and rec.dpop.ok:
            body["token_type"] = "DPoP"
        return 200, {}, body

    @property
    def bound(self) -> dict[str, str]:
        """DPoP-bound tokens issued: access token -> key thumbprint."""
        with self._lock:
            return dict(self._state.bound)

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes) -> Recorded:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        form: dict[str, list[str]] = {}
        if body:
            try:
                form = parse_qs(body.decode("ascii"), keep_blank_values=True)
            except (UnicodeDecodeError, ValueError):
                form = {}
        rec = Recorded(
            method=handler.command,
            path=urlsplit(handler.path).path,
            headers=headers,
            body=body,
            form=form,
            server_time=self.now(),
        )
        if "dpop" in headers:
            rec.dpop = check_proof(
                headers["dpop"],
                method=rec.method,
                url=self.base_url + rec.path,
                # the token flow signs with the client's (fake) clock, an API call with the
                # real one
                now=time.time() if rec.path.startswith("/api") else self.now(),
            )
        raw = form.get("client_assertion", [None])[0]
        if raw:
            rec.raw_assertion = raw
            try:
                rec.assertion = decode_compact(raw)
            except JWTFormatError:
                rec.assertion = None
        return rec

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> Response:
        rec = self._record(handler, body)
        path = rec.path
        if path.startswith("/.well-known/"):
            with self._lock:
                self._state.meta_requests.append(rec)
            if path == "/.well-known/oauth-authorization-server" and self.metadata is not None:
                return 200, {}, self.metadata
            return 404, {}, {"error": "not_found"}
        if path.startswith("/api"):
            return self._api(rec)
        if rec.method != "POST":
            return 405, {"Allow": "POST"}, b""
        with self._lock:
            self._state.token_requests.append(rec)
            nonce = self.token_nonce
            if nonce is not None and not _has_nonce(rec, nonce):
                item: ScriptItem = self.error(400, "use_dpop_nonce", "nonce", {})
            else:
                item = self.script.pop(0) if self.script else self._default_token
        response = _with_nonce(item(rec) if callable(item) else item, nonce)
        gate = self.gate
        if gate is not None:
            gate.wait(20)
        status, _, payload = response
        if status == 200 and isinstance(payload, dict):
            at = payload.get("access_token")
            if isinstance(at, str) and at:
                with self._lock:
                    self._state.issued.append(at)
                    if rec.dpop is not None and rec.dpop.ok and rec.dpop.jkt:
                        self._state.bound[at] = rec.dpop.jkt
        return response

    def _api(self, rec: Recorded) -> Response:
        with self._lock:
            self._state.api_requests.append(rec)
            issued = set(self._state.issued)
            jkt = self._state.bound.get(rec.headers.get("authorization", "").partition(" ")[2])
        auth = rec.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        if jkt is not None:
            refused = self._dpop_refusal(rec, scheme, token, jkt)
            if refused is not None:
                return refused
        elif scheme != "Bearer":
            return 401, challenge, {"error": "invalid_token"}
        if self.api_always_401 or token not in issued or token in self.revoked:
            return 401, challenge, {"error": "invalid_token"}
        if rec.path == "/api/missing":
            return 404, {}, {"error": "not found"}
        return 200, {}, {"hello": "world", "path": rec.path}

    def _dpop_refusal(self, rec: Recorded, scheme: str, token: str, jkt: str) -> Response | None:
        """RFC 9449 7.1: a bound token, its scheme, a sound proof by its key for this
        request and token, and (when demanded) the API's nonce."""
        proof = rec.headers.get("dpop")
        nonce = self.api_nonce
        headers = {"DPoP-Nonce": nonce} if nonce else {}
        if proof is not None and nonce is not None and not _has_nonce(rec, nonce):
            headers["WWW-Authenticate"] = 'DPoP error="use_dpop_nonce", algs="ES256"'
            return 401, headers, {"error": "use_dpop_nonce"}
        judged = check_proof(
            proof,
            method=rec.method,
            url=self.base_url + rec.path,
            now=time.time(),
            access_token=token,
            bound_jkt=jkt,
        )
        if scheme != "DPoP" or not judged.ok:
            headers["WWW-Authenticate"] = 'DPoP error="invalid_token", algs="ES256"'
            return 401, headers, {"error": "invalid_token"}
        return None


def _has_nonce(rec: Recorded, nonce: str) -> bool:
    return rec.dpop is not None and rec.dpop.claims.get("nonce") == nonce


def _with_nonce(response: Response, nonce: str | None) -> Response:
    if nonce is None:
        return response
    status, headers, payload = response
    return status, {**headers, "DPoP-Nonce": nonce}, payload


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # many concurrent clients connect at once in some tests

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that time out or go away mid-response are part of the tests
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        owner: ScriptedServer = self.server.owner  # type: ignore[attr-defined]
        return email.utils.formatdate(owner.now(), usegmt=True)

    def _serve(self) -> None:
        owner: ScriptedServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = owner.handle(self, body)
        headers = dict(headers)
        if isinstance(payload, dict | list):
            data = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = bytes(payload)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[ScriptedServer]:
    srv = ScriptedServer(clock).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def rsa_native() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def nhs_key(rsa_native: rsa.RSAPrivateKey) -> Key:
    """The NHS shape: RSA pinned to RS512, kid test-1."""
    return load_key(rsa_native, kid="test-1", alg="RS512")


@pytest.fixture(scope="session")
def rsa_key(rsa_native: rsa.RSAPrivateKey) -> Key:
    """The same RSA key, not pinned to an algorithm."""
    return load_key(rsa_native, kid="rsa-1")


@pytest.fixture
def make_client(
    server: ScriptedServer, clock: FakeClock, sleeps: Sleeps, nhs_key: Key
) -> Iterator[Callable[..., TokenClient]]:
    """TokenClient factory: NHS profile against the scripted server, fake clock, no real sleeps."""
    made: list[TokenClient] = []

    def make(**overrides: Any) -> TokenClient:
        kwargs: dict[str, Any] = {
            "token_url": server.token_url,
            "client_id": CLIENT_ID,
            "key": nhs_key,
            "profile": "nhs",
            "clock": clock,
            "sleep": sleeps,
            "asleep": sleeps.asleep,
        }
        kwargs.update(overrides)
        for name in [k for k, v in kwargs.items() if v is _DROP]:
            del kwargs[name]
        client = TokenClient(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


#: pass as a make_client override to leave that argument out
_DROP = _Drop()


@pytest.fixture
def drop() -> Any:
    return _DROP


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """Bounded polling for conditions reached by background threads."""

    def wait(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)

    return wait
