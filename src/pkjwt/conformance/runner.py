"""Run the attack catalogue against one token endpoint and judge each answer.

Only the given endpoint is contacted (and, with an issuer, its metadata document), at a bounded
rate (the NHS platform allows 300 token requests a minute per app), one request at a time. An
answer is *accepted* (200 with an ``access_token``), *refused* (400, 401 or 403 with an OAuth
error a refusal may carry) or *other* (anything else: a 500, an HTML page), and a case passes
when the server did what the case expects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from ..assertion import AssertionFactory
from ..client_auth import server_alg
from ..discovery import ServerMetadata, metadata_urls, parse_metadata
from ..errors import ConfigError
from ..keys import Key
from ..profiles import Profile
from ..tokens import parse_retry_after
from ..urls import endpoint_url
from .cases import CASES, Attempt, Case, CaseContext, Expect, Severity, Skip
from .dpop_cases import DPOP_CASES

__all__ = ["CaseResult", "Conformance"]

#: the errors a refusal may carry: RFC 6749's two, and the NHS platform's own
_REFUSAL_ERRORS = frozenset(
    {"invalid_client", "invalid_request", "public_key error", "unknown_error", "invalid_dpop_proof"}
)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case's outcome. ``status`` is ``pass``, ``fail``, ``skip`` or ``error`` (the case
    could not be sent: the endpoint unreachable)."""

    case: Case
    expect: Expect | None
    status: str
    http_status: int | None = None
    error: str | None = None
    description: str | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def severity(self) -> Severity | None:
        return self.expect.severity if self.expect is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "title": self.case.title,
            "rule": self.case.rule_id,
            "rule_title": self.case.rule.title,
            "source": self.case.source,
            "severity": self.severity.value if self.severity else None,
            "expected": self.expect.label if self.expect else None,
            "status": self.status,
            "http_status": self.http_status,
            "error": self.error,
            "error_description": self.description,
            "detail": self.detail,
            "passed": self.passed,
        }


class Conformance:
    """The catalogue for one client at one server, and the run of it."""

    def __init__(
        self,
        *,
        client_id: str,
        key: Key,
        profile: Profile,
        token_url: str | None = None,
        issuer: str | None = None,
        rate: float = 2.0,
        timeout: float = 15.0,
        http: httpx.Client | None = None,
        cases: Sequence[Case] = CASES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token_url and not issuer:
            raise ConfigError("give a token URL or an issuer")
        if not 0 < rate <= 50:
            raise ConfigError(f"rate must be more than 0 and at most 50 requests/s (got {rate})")
        self.client_id = client_id
        self.key = key
        self.profile = profile
        self.issuer = endpoint_url(issuer, "issuer") if issuer else None
        self.token_url = endpoint_url(token_url, "token URL") if token_url else None
        self.rate = rate
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self._own_http = http is None
        self._cases = cases
        self._sleep = sleep
        self._last_request = 0.0
        self._ctx: CaseContext | None = None
        self.metadata: ServerMetadata | None = None

    # -- what will be sent -------------------------------------------------------------------
    def discover(self) -> None:
        """Read the issuer's metadata (its token endpoint, the algorithms it takes)."""
        if self.issuer is None or self.metadata is not None:
            return
        for url in metadata_urls(self.issuer):
            try:
                response = self._http.get(url, headers={"Accept": "application/json"})
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                self.metadata = parse_metadata(self.issuer, response.content, url=url)
                self.token_url = self.token_url or self.metadata.token_endpoint
                return
        raise ConfigError(f"could not read the metadata of {self.issuer}")

    def context(self) -> CaseContext:
        assert self.token_url is not None
        alg = (
            server_alg(self.key, self.profile, self.metadata)
            or AssertionFactory(
                self.key,
                client_id=self.client_id,
                profile=self.profile,
                token_url=self.token_url,
                issuer=self.issuer,
                audience=self.issuer or self.token_url,  # only the alg is wanted here
            ).alg
        )
        return CaseContext(
            client_id=self.client_id,
            key=self.key,
            alg=alg,
            issuer=self.metadata.issuer if self.metadata else self.issuer,
            token_url=self.token_url,
            profile=self.profile,
        )

    @property
    def dpop(self) -> bool:
        """Whether the server takes DPoP proofs (its metadata says so): the D cases run."""
        return self.metadata is not None and bool(
            self.metadata.raw.get("dpop_signing_alg_values_supported")
        )

    def planned(self) -> list[tuple[Case, Expect]]:
        """The cases that apply to this profile (and the DPoP ones when the server takes
        proofs), with what each expects."""
        out = []
        for case in (*self._cases, *(DPOP_CASES if self.dpop else ())):
            expect = case.expect(self.profile)
            if expect is not None:
                out.append((case, expect))
        return out

    def request_count(self) -> int:
        # a replay case sends twice; discovery is one or two GETs more
        return sum(2 if case.id.endswith("replay") else 1 for case, _ in self.planned())

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> Iterator[CaseResult]:
        """Send every planned case in turn, yielding each result as it comes."""
        self.discover()
        ctx = self.context()
        self._ctx = ctx
        for case, expect in self.planned():
            yield self._one(case, expect, ctx)

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def _one(self, case: Case, expect: Expect, ctx: CaseContext) -> CaseResult:
        response: httpx.Response | None = None
        for _ in range(2):  # once more when the server hands out its DPoP nonce
            try:
                attempt = case.build(ctx)
            except Skip as why:
                return CaseResult(case, expect, "skip", detail=str(why))
            try:
                if attempt.first is not None:
                    first = self._post(Attempt(attempt.first, attempt.headers))
                    if first.status_code != 200 and not self._took_nonce(first, ctx):
                        return CaseResult(
                            case, expect, "error", first.status_code,
                            detail="the first (valid) use of the assertion was refused",
                        )  # fmt: skip
                    if first.status_code != 200:
                        continue
                response = self._post(attempt)
            except httpx.HTTPError as exc:
                detail = f"no answer ({type(exc).__name__})"
                return CaseResult(case, expect, "error", detail=detail)
            if not self._took_nonce(response, ctx):
                break
        if response is None:
            return CaseResult(case, expect, "error", detail="the server kept changing its nonce")
        return _judge(case, expect, response)

    @staticmethod
    def _took_nonce(response: httpx.Response, ctx: CaseContext) -> bool:
        """A ``use_dpop_nonce`` answer with a new nonce: kept for every later proof."""
        nonce = response.headers.get("dpop-nonce")
        if response.status_code not in (400, 401) or not nonce or nonce == ctx.dpop_nonce:
            return False
        if "use_dpop_nonce" not in response.text[:500]:
            return False
        ctx.dpop_nonce = nonce
        return True

    def _post(self, attempt: Attempt) -> httpx.Response:
        """One request at the configured rate; a 429 is waited out once (its Retry-After, at
        most a minute) rather than judged."""
        assert self.token_url is not None
        headers = {"Content-Type": "application/x-www-form-urlencoded", **attempt.headers}
        ctx = self._ctx
        if ctx is not None and self.profile.require_dpop and "DPoP" not in headers:
            # the profile wants sender-constrained tokens: every attack on the assertion comes
            # with a valid proof, so only the assertion is under test
            proof = ctx.dpop_key.sign_now("POST", self.token_url, nonce=ctx.dpop_nonce)
            headers["DPoP"] = proof
        content = urlencode(attempt.form)
        for _ in range(2):
            wait = self._last_request + 1 / self.rate - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            self._last_request = time.monotonic()
            response = self._http.post(self.token_url, content=content, headers=headers)
            if response.status_code != 429:
                break
            self._sleep(min(parse_retry_after(response.headers, time.time()) or 5.0, 60.0))
        return response


def _judge(case: Case, expect: Expect, response: httpx.Response) -> CaseResult:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    body = body if isinstance(body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), str) else None
    description = body.get("error_description")
    description = description[:300] if isinstance(description, str) else None
    status = response.status_code
    accepted = status == 200 and isinstance(body.get("access_token"), str)
    refused = status in (400, 401, 403) and error in _REFUSAL_ERRORS
    if expect.accept:
        verdict = "pass" if accepted else "fail"
        detail = "" if accepted else "a valid request was not given a token"
    else:
        verdict = "pass" if refused else "fail"
        detail = (
            "" if refused
            else "a token was issued" if accepted
            else f"not a refusal RFC 6749 5.2 describes (HTTP {status}, error {error!r})"
        )  # fmt: skip
    return CaseResult(case, expect, verdict, status, error, description, detail)
