"""How far the server's clock is from ours, estimated from the ``Date`` header of its answers.

A token endpoint judges ``iat``/``exp`` (and a DPoP proof's ``iat``) by its own clock, so a
client whose clock drifts is refused for no fault of its credentials. Every answer's ``Date``
(1 s resolution, written between the request leaving and the answer coming back) gives an
estimate; small differences are noise and very large ones are not believed.
"""

from __future__ import annotations

import email.utils
import logging

from .flow import Reply

__all__ = ["MAX_SKEW_CORRECTION", "ClockSkew"]

log = logging.getLogger("pkjwt.client")

#: clock offsets smaller than this are Date-header noise (1 s resolution), not skew
_SKEW_THRESHOLD = 2.0
#: an offset this large is corrected but also logged as a warning: the clock needs fixing
_SKEW_WARNING = 30.0
#: the largest offset corrected: beyond it the Date header is not believed (a server clock
#: gone wrong, or a hostile Date) and our exp stays honest
MAX_SKEW_CORRECTION = 600


class ClockSkew:
    """The seconds to add to the local clock (``offset``), updated from each answer."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._warned = False

    def observe(self, reply: Reply) -> bool:
        """Estimate the offset from the server's ``Date`` header; True when it changed."""
        date = next((v for k, v in reply.headers.items() if k.lower() == "date"), None)
        if not date:
            return False
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        local = (reply.sent_at + reply.received_at) / 2
        offset = server - local
        if abs(offset) > MAX_SKEW_CORRECTION:
            # a Date in year 9999 (or a broken server clock) must not move our exp with it
            self._warn_once(
                "the server's Date is %.0f s from our clock, beyond the %d s pkjwt corrects: "
                "ignoring it (check this machine's clock and the server's)",
                offset,
            )
            return False
        new = offset if abs(offset) >= _SKEW_THRESHOLD else 0.0
        changed = abs(new - self.offset) >= _SKEW_THRESHOLD
        if changed:
            if abs(new) >= _SKEW_WARNING:
                self._warn_once(
                    "this machine's clock is %.0f s off the server's (of at most %d s corrected): "
                    "iat/exp are corrected, but fix the clock (NTP)",
                    new,
                )
            else:
                log.info("server clock differs from ours by %.1f s; correcting iat/exp", offset)
            self.offset = new
        return changed

    def _warn_once(self, message: str, offset: float) -> None:
        if not self._warned:
            self._warned = True
            log.warning(message, offset, MAX_SKEW_CORRECTION)
