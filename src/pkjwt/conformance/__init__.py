"""``pkjwt conformance``: does an authorization server really check client assertions?

The rule catalogue (:mod:`pkjwt.catalogue`) turned into attacks (:mod:`.cases`), sent to one
token endpoint (:mod:`.runner`) and reported (:mod:`.report`)."""

from .cases import CASES, Case, Expect, Severity
from .report import RunInfo, summarize
from .runner import CaseResult, Conformance

__all__ = [
    "CASES",
    "Case",
    "CaseResult",
    "Conformance",
    "Expect",
    "RunInfo",
    "Severity",
    "summarize",
]
