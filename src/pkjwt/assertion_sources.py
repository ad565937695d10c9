"""Federated assertions: a client assertion someone else issued, sent instead of one we sign.

Platforms that give a workload an identity (a Kubernetes projected service-account token, the
GitHub Actions OIDC token, a cloud's workload identity) let it authenticate with that token as
``client_assertion`` (Entra ID, Okta, Keycloak and others call it a federated credential). No
key is held at all. A source says where the token comes from; :class:`FederatedAssertion` is
the client authentication method that sends it.

=============================  ===========================================================
``file:PATH``                  a file rewritten by someone else (kubelet): re-read when its
                               identity or modification time changes (symlinks followed, so
                               a projected volume's atomic ``..data`` swap is seen)
``env:VAR``                    an environment variable, read at each request
``exec:COMMAND``               a program that prints the token (bare, or JSON with ``token``,
                               ``id_token`` or ``value``), like AWS ``credential_process``;
                               run with a deadline, its answer kept until shortly before exp
``github-actions[:AUDIENCE]``  the GitHub Actions OIDC endpoint (the job needs
                               ``permissions: id-token: write``)
=============================  ===========================================================

Each token's ``exp`` is read (not verified: the server does that) and respected: an expired
token is never sent, a program or endpoint is asked again, and a file that stopped being
refreshed is an :class:`~pkjwt.errors.AssertionSourceError` naming it. Sources do their I/O as
flow actions (:class:`~pkjwt.flow.Call`, :class:`~pkjwt.flow.Send`), so an async client never
blocks its event loop on them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable
from urllib.parse import quote

from .client_auth import AuthContext, Credentials
from .decode import DecodeError, decode_compact
from .errors import AssertionSourceError, ConfigError, TransportError
from .flow import Call, Flow, Reply, Send, ready
from .profiles import JWT_BEARER

__all__ = [
    "AssertionSource",
    "EnvSource",
    "ExecSource",
    "FederatedAssertion",
    "FileSource",
    "GithubActionsSource",
    "parse_assertion_source",
]

#: an identity token is a few KB; anything far larger is not one
MAX_TOKEN_BYTES = 64 * 1024
#: a token closer than this to its exp is not sent (it could expire on the way)
EXPIRY_MARGIN = 10.0
#: a program's or endpoint's token is asked for again this long before its exp
REFRESH_BEFORE = 60.0
EXEC_TIMEOUT = 10.0
_JWT_SHAPE = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")


@runtime_checkable
class AssertionSource(Protocol):
    """Where a federated assertion comes from. ``name`` says which source (``file:/path``)
    and never holds a token; :meth:`assertion` is a flow returning a token valid at ``now``."""

    @property
    def name(self) -> str: ...

    def assertion(self, now: float) -> Flow[str]: ...


@dataclass(frozen=True, slots=True)
class _Held:
    token: str
    exp: float | None


def _read_token(text: str, where: str) -> _Held:
    """A token as found in ``where``: a compact JWT whose ``exp`` (if any) is read."""
    token = text.strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise AssertionSourceError(
            f"{where} holds {len(token)} bytes, not an identity token (at most {MAX_TOKEN_BYTES})"
        )
    if not token:
        raise AssertionSourceError(f"{where} is empty", retryable=True)
    try:
        jwt = decode_compact(token, max_bytes=MAX_TOKEN_BYTES)
    except DecodeError as exc:  # the message describes the shape, never the token
        raise AssertionSourceError(
            f"{where} does not hold a JWT ({exc.message})",
            hint="a federated assertion is the identity token itself (three base64url parts)",
        ) from None
    exp = jwt.claims.get("exp")
    usable = isinstance(exp, int | float) and not isinstance(exp, bool)
    return _Held(token, float(exp) if usable else None)  # type: ignore[arg-type]


def _fresh(held: _Held, now: float, margin: float = EXPIRY_MARGIN) -> bool:
    return held.exp is None or held.exp - margin > now


def _expired(where: str, held: _Held, now: float, *, hint: str, retryable: bool) -> Exception:
    assert held.exp is not None
    ago = now - held.exp
    when = f"expired {ago:.0f} s ago" if ago >= 0 else f"expires in {-ago:.0f} s"
    return AssertionSourceError(f"the token from {where} {when}", hint=hint, retryable=retryable)


class FileSource:
    """A token file that someone else keeps fresh (kubelet rewrites a projected token at 80 %
    of its life). Looked at (one ``stat``) on every token request; read again only when the
    file it resolves to changed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = f"file:{self.path}"
        self._seen: tuple[int, int, int, int] | None = None
        self._held: _Held | None = None
        self._lock = threading.Lock()

    def _load(self) -> _Held:
        with self._lock:
            try:
                st = os.stat(self.path)  # follows symlinks: a swapped ..data link is a change
                seen = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
                if self._held is not None and seen == self._seen:
                    return self._held
                with open(self.path, "rb") as f:
                    raw = f.read(MAX_TOKEN_BYTES + 1)
            except FileNotFoundError:
                raise AssertionSourceError(
                    f"{self.name}: no such file",
                    hint="check the path (a Kubernetes projected token is mounted where the "
                    "pod spec's volumeMounts say)",
                    retryable=True,
                ) from None
            except OSError as exc:
                raise AssertionSourceError(f"{self.name}: {exc.strerror}") from None
            held = _read_token(raw.decode("utf-8", "replace"), self.name)
            self._seen, self._held = seen, held
            return held

    def assertion(self, now: float) -> Flow[str]:
        held: _Held = yield Call(self._load)
        if not _fresh(held, now):
            raise _expired(
                self.name,
                held,
                now,
                hint="whatever writes this file (kubelet, a sidecar) has stopped refreshing it",
                retryable=True,
            )
        return held.token

    def __repr__(self) -> str:
        return f"<FileSource {self.path}>"


class EnvSource:
    """A token in an environment variable (a CI system that exports one per job)."""

    def __init__(self, variable: str) -> None:
        if not variable:
            raise ConfigError("env: needs a variable name (env:VAR)")
        self.variable = variable
        self.name = f"env:{variable}"

    def assertion(self, now: float) -> Flow[str]:
        value = os.environ.get(self.variable)
        if not value:
            raise AssertionSourceError(
                f"${self.variable} is not set (the federated assertion source)",
                hint=f"export {self.variable}=<the identity token>",
            )
        held = _read_token(value, f"${self.variable}")
        if not _fresh(held, now):
            raise _expired(
                f"${self.variable}", held, now, hint="put a fresh token in it", retryable=False
            )
        return ready(held.token)

    def __repr__(self) -> str:
        return f"<EnvSource {self.variable}>"


class _Refetched:
    """A source asked again only when its token nears exp (a program, an endpoint)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._held: _Held | None = None

    def _cached(self, now: float) -> str | None:
        held = self._held
        if held is not None and held.exp is not None and _fresh(held, now, REFRESH_BEFORE):
            return held.token
        return None  # a token without exp is asked for every time: nothing says how long

    def _keep(self, held: _Held, now: float, hint: str) -> str:
        if not _fresh(held, now):
            raise _expired(self.name, held, now, hint=hint, retryable=False)
        self._held = held
        return held.token


class ExecSource(_Refetched):
    """A program that prints a token (``exec:get-token --audience x``), split like a shell
    would (no shell runs it), given :data:`EXEC_TIMEOUT` seconds and no input."""

    def __init__(self, command: str, *, timeout: float = EXEC_TIMEOUT) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigError(f"exec: cannot split the command ({exc})") from None
        if not self.argv:
            raise ConfigError("exec: needs a command (exec:COMMAND)")
        # arguments may hold secrets: the name shows the program and a digest of the rest
        digest = hashlib.sha256(command.encode()).hexdigest()[:12]
        super().__init__(f"exec:{os.path.basename(self.argv[0])}#{digest}")
        self.timeout = timeout

    def _run(self) -> str:
        try:
            done = subprocess.run(
                self.argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise AssertionSourceError(
                f"{self.name}: program {self.argv[0]!r} not found", hint="check PATH"
            ) from None
        except subprocess.TimeoutExpired:
            raise AssertionSourceError(
                f"{self.name}: no answer within {self.timeout:g} s", retryable=True
            ) from None
        except OSError as exc:
            raise AssertionSourceError(f"{self.name}: cannot run it ({exc.strerror})") from None
        if done.returncode != 0:
            last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            said = _JWT_SHAPE.sub("<token>", last[0])[:200] if last else "nothing on stderr"
            raise AssertionSourceError(
                f"{self.name} exited with {done.returncode}: {said}", retryable=True
            )
        return _token_from_output(done.stdout[: MAX_TOKEN_BYTES + 1], self.name)

    def assertion(self, now: float) -> Flow[str]:
        cached = self._cached(now)
        if cached is not None:
            return cached
        text: str = yield Call(self._run)
        return self._keep(_read_token(text, self.name), now, "the program printed an old token")

    def __repr__(self) -> str:
        return f"<ExecSource {self.name}>"


def _token_from_output(raw: bytes, where: str) -> str:
    """A bare token, or a JSON object holding it as ``token``, ``id_token`` or ``value``."""
    text = raw.decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        return text
    try:
        doc = json.loads(text)
    except ValueError:
        raise AssertionSourceError(f"{where} printed JSON that does not parse") from None
    for field in ("token", "id_token", "value"):
        value = doc.get(field) if isinstance(doc, dict) else None
        if isinstance(value, str):
            return value
    raise AssertionSourceError(
        f"{where} printed JSON without a token",
        hint="print the token alone, or JSON with a token, id_token or value member",
    )


class GithubActionsSource(_Refetched):
    """The GitHub Actions OIDC token, asked of the endpoint the runner names in
    ``ACTIONS_ID_TOKEN_REQUEST_URL`` with ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``, for ``audience``
    (the value the authorization server's federated credential expects; None: GitHub's
    default, the repository owner's URL)."""

    URL_VARIABLE: ClassVar[str] = "ACTIONS_ID_TOKEN_REQUEST_URL"
    TOKEN_VARIABLE: ClassVar[str] = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"

    def __init__(self, audience: str | None = None) -> None:
        super().__init__("github-actions" + (f":{audience}" if audience else ""))
        self.audience = audience

    def _request(self) -> Send:
        url = os.environ.get(self.URL_VARIABLE)
        bearer = os.environ.get(self.TOKEN_VARIABLE)
        if not url or not bearer:
            raise AssertionSourceError(
                f"{self.URL_VARIABLE} / {self.TOKEN_VARIABLE} are not set",
                hint="run inside a GitHub Actions job whose permissions include 'id-token: write'",
            )
        if self.audience:
            url += ("&" if "?" in url else "?") + "audience=" + quote(self.audience, safe="")
        headers = {"Authorization": f"bearer {bearer}", "Accept": "application/json"}
        return Send("GET", url, headers, None, 10.0)

    def assertion(self, now: float) -> Flow[str]:
        cached = self._cached(now)
        if cached is not None:
            return cached
        try:
            reply: Reply = yield self._request()
        except TransportError as exc:
            raise AssertionSourceError(
                f"{self.name}: the OIDC token endpoint did not answer ({exc.message})",
                retryable=True,
            ) from None
        if reply.status != 200:
            raise AssertionSourceError(
                f"{self.name}: the OIDC token endpoint answered HTTP {reply.status}",
                hint="check the job's 'id-token: write' permission",
                retryable=reply.status >= 500 or reply.status == 429,
            )
        text = _token_from_output(reply.body[: MAX_TOKEN_BYTES + 1], self.name)
        return self._keep(_read_token(text, self.name), now, "the endpoint gave an old token")

    def __repr__(self) -> str:
        return f"<GithubActionsSource {self.name}>"


_SCHEMES: dict[str, Callable[[str], AssertionSource]] = {
    "file": FileSource,
    "env": EnvSource,
    "exec": ExecSource,
    "github-actions": lambda audience: GithubActionsSource(audience or None),
}


def parse_assertion_source(spec: str | AssertionSource) -> AssertionSource:
    """A source from its spec: ``file:PATH``, ``env:VAR``, ``exec:COMMAND`` or
    ``github-actions[:AUDIENCE]`` (the CLI's ``--assertion-source``)."""
    if not isinstance(spec, str):
        return spec
    scheme, _, rest = spec.partition(":")
    make = _SCHEMES.get(scheme)
    if make is None or (not rest and scheme != "github-actions"):
        raise ConfigError(
            f"unknown assertion source {spec.split(' ')[0][:40]!r}",
            hint="use file:PATH, env:VAR, exec:COMMAND or github-actions[:AUDIENCE]",
        )
    return make(os.path.expanduser(rest) if scheme == "file" else rest)


class FederatedAssertion:
    """Client authentication with a federated assertion: ``client_id`` and the identity token
    as a JWT bearer ``client_assertion`` (RFC 7521 4.2). Its ``sub`` is the workload, not the
    client, so ``client_id`` always goes in the form. The token flow retries it like a signer
    that failed (when the source says waiting may help) and never reshapes it: its audience and
    times are the issuer's, not ours."""

    name: ClassVar[str] = "private_key_jwt"

    def __init__(
        self, source: AssertionSource | str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.source = parse_assertion_source(source)
        self.identity = f"federated:{self.source.name}"
        self._clock = clock

    def credentials(self, ctx: AuthContext) -> Flow[Credentials]:
        now = ctx.clock() if ctx.clock is not None else self._clock()
        token = yield from self.source.assertion(now)
        form = (
            ("client_id", ctx.client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", token),
        )
        return Credentials(form=form)

    def __repr__(self) -> str:
        return f"<FederatedAssertion {self.source.name}>"
