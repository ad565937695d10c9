"""Why a request is refused, as data: :class:`Failure`, built from the rule catalogue.

Every refusal the server makes (a malformed request, a rule of the table that fails, a key that
cannot be had, a grant the client may not use) becomes one ``Failure`` naming its rule and the
exact condition (``code``). How it is answered (status, ``error``, wording, order among several)
is the dialect's business (:mod:`pkjwt.server.dialects`), not the code that found it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalogue import rule
from ..decode import DecodeError
from ..rules import Finding

__all__ = ["Failure", "describe", "fail", "from_decode_error", "from_finding", "safe_description"]

_ALLOWED = {chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F))}


def safe_description(text: str, limit: int = 400) -> str:
    """Only the characters RFC 6749 5.2 allows in ``error_description`` (also what the request
    log prints, so nothing a client sends can forge a log line)."""
    cleaned = "".join(ch if ch in _ALLOWED else ("'" if ch == '"' else "?") for ch in text)
    return cleaned[:limit]


@dataclass(frozen=True, slots=True)
class Failure:
    """One refusal. ``status``/``error``/``description`` are the standard (RFC 6749 5.2) answer;
    ``basic`` marks a client that authenticated with HTTP Basic (only it gets a 401)."""

    rule: str
    code: str
    status: int
    error: str
    description: str
    basic: bool = False


def fail(
    rule_id: str,
    code: str,
    description: str,
    *,
    error: str | None = None,
    status: int | None = None,
    basic: bool = False,
) -> Failure:
    """A failure of ``rule_id``, answered with the catalogue's error and status unless the
    condition has its own (R3's ``unsupported_grant_type``, R20's ``invalid_scope``)."""
    info = rule(rule_id)
    return Failure(
        rule_id,
        code,
        info.status if status is None else status,
        info.error if error is None else error,
        description,
        basic,
    )


def describe(finding: Finding) -> str:
    """``R14 aud is the right audience: expected ...; got ...``, safe to send."""
    title = rule(finding.rule).title
    return safe_description(
        f"{finding.rule} {title}: expected {finding.expected}; got {finding.got}"
    )


def from_finding(finding: Finding) -> Failure:
    return fail(finding.rule, finding.code, describe(finding), error=finding.error)


def from_decode_error(exc: DecodeError) -> Failure:
    title = rule(exc.rule).title
    return fail(exc.rule, exc.code, safe_description(f"{exc.rule} {title}: {exc.message}"))
