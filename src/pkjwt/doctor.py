"""The doctor: explain an assertion against the rule table, without trusting it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .decode import DecodeError, decode_compact
from .keys import KeySet, load_jwks
from .profiles import Profile, get_profile
from .rules import RULE_TITLES, Finding, Report, RuleContext, Verdict, check

__all__ = ["Explanation", "diagnose", "diagnose_proof", "explain", "guess_profile", "is_dpop_proof"]

_NHS_HOST = "api.service.nhs.uk"


def guess_profile(token: str) -> Profile:
    """The profile an assertion most likely targets (used when none is given)."""
    try:
        jwt = decode_compact(token, max_bytes=1 << 30)
    except DecodeError:
        return get_profile("rfc7523bis")
    aud = jwt.claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if any(isinstance(a, str) and _NHS_HOST in a for a in auds):
        return get_profile("nhs")
    typ = jwt.header.get("typ")
    if isinstance(typ, str) and "client-authentication" in typ.lower():
        return get_profile("rfc7523bis")
    if any(isinstance(a, str) and a.rstrip("/").endswith("/token") for a in auds):
        return get_profile("legacy")
    return get_profile("rfc7523bis")


def diagnose(
    token: str,
    *,
    profile: str | Profile | None = None,
    token_url: str | None = None,
    issuer: str | None = None,
    jwks: KeySet | Mapping[str, Any] | str | None = None,
    client_id: str | None = None,
    now: float | None = None,
) -> Report:
    """Run every rule that can run here and return the findings.

    Without ``jwks`` the signature is not checked (R9 key selection and R11 are skipped);
    without ``token_url``/``issuer`` the audience is shown but not compared.
    """
    prof = get_profile(profile) if profile is not None else guess_profile(token)
    keys = jwks if isinstance(jwks, KeySet) or jwks is None else load_jwks(jwks)
    ctx = RuleContext(
        profile=prof,
        now=time.time() if now is None else now,
        issuer=issuer,
        token_endpoint=token_url,
        client_id=client_id,
        keys=keys,
    )
    return check(token, ctx)


def is_dpop_proof(token: str) -> bool:
    """Whether ``token`` says it is a DPoP proof (``typ: dpop+jwt``) rather than an assertion."""
    from .dpop import DPOP_TYP

    try:
        typ = decode_compact(token, max_bytes=1 << 20).header.get("typ")
    except DecodeError:
        return False
    return isinstance(typ, str) and typ.lower() == DPOP_TYP


def diagnose_proof(
    proof: str,
    *,
    htm: str | None = None,
    htu: str | None = None,
    access_token: str | None = None,
    now: float | None = None,
) -> Report:
    """Judge a DPoP proof by the rule table's D rows. Without ``htm``/``htu`` (the request it
    was made for) D6/D7 are not compared; with ``access_token``, D11 checks its ``ath``."""
    from .dpop import check_proof

    try:
        claims = decode_compact(proof, max_bytes=1 << 20).claims
    except DecodeError:
        claims = {}
    method = htm or str(claims.get("htm", "POST"))
    url = htu or str(claims.get("htu", "http://unknown/"))
    check = check_proof(
        proof,
        method=method,
        url=url,
        now=time.time() if now is None else now,
        access_token=access_token,
    )
    findings: list[Finding] = []
    for f in check.findings:
        if (f.rule == "D6" and htm is None) or (f.rule == "D7" and htu is None):
            why = "the request's method not given (--htm)" if f.rule == "D6" else "--htu not given"
            f = Finding(f.rule, Verdict.SKIP, f.code, "", why, f.source)
        findings.append(f)
    return Report(tuple(findings), dict(check.header), dict(check.claims))


class Explanation(NamedTuple):
    """One finding as the doctor shows it, whatever draws it (the terminal, the server's
    inspector page): the same words in the same places."""

    mark: str
    rule: str
    title: str
    #: beside the title: what came (a pass) or why the rule did not run (a skip)
    aside: str
    #: for a failure only: what was expected and what came, the fix, and where it is written
    expected: str
    got: str
    fix: str
    note: str

    @property
    def failed(self) -> bool:
        return self.mark == "FAIL"


_MARKS = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.SKIP: "skip"}


def explain(finding: Finding, public_answer: Callable[[Finding], str]) -> Explanation:
    """``finding`` in the doctor's words; ``public_answer`` says how a server answers its
    failure (a dialect's ``public_answer``), asked only when it failed."""
    title = RULE_TITLES.get(finding.rule, "")
    mark = _MARKS[finding.verdict]
    if finding.verdict is not Verdict.FAIL:
        return Explanation(mark, finding.rule, title, finding.got, "", "", "", "")
    note = f"{finding.source}; {public_answer(finding)}; code {finding.code}"
    return Explanation(
        mark, finding.rule, title, "", finding.expected, finding.got, finding.hint, note
    )
