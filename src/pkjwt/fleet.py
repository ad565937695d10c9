"""What a fleet sharing one token store shares besides tokens: a cooldown.

When the server tells one process to wait (a 429 with ``Retry-After``, a 503), every process
sharing the store waits too, instead of each making its own burst of requests against a quota
the whole fleet shares (the NHS platform counts 300 token requests a minute per app). The
cooldown is a note in the store, keyed by a digest of the cache key, expiring with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Hashable
from typing import Any

from .errors import OAuthError, RateLimited, oauth_error_class

__all__ = ["fleet_cooldown", "share_cooldown"]

log = logging.getLogger("pkjwt.manager")


def _note(key: tuple[Hashable, ...]) -> str:
    return "cooldown " + hashlib.sha256(json.dumps([str(k) for k in key]).encode()).hexdigest()


def fleet_cooldown(store: Any, key: tuple[Hashable, ...]) -> None:
    """Raise the failure another process sharing ``store`` was told to wait out, if its wait
    is not over (a store without notes, or one that fails, shares nothing)."""
    get_note = getattr(store, "get_note", None)
    if get_note is None:
        return
    try:
        raw = get_note(_note(key))
        note = json.loads(raw) if raw else None
    except Exception:
        return
    if not isinstance(note, dict) or not isinstance(note.get("until"), int | float):
        return
    left = float(note["until"]) - time.time()
    if left <= 0:
        return
    code = str(note.get("error"))
    status = note.get("status")
    cls = RateLimited if status == 429 else oauth_error_class(code)
    raise cls(
        str(note.get("description") or "the server asked the fleet to wait"),
        error=code,
        status=status if isinstance(status, int) else None,
        retry_after=left,
        hint=f"another process sharing the token store was told to wait; {left:.0f} s left",
    )


def share_cooldown(store: Any, key: tuple[Hashable, ...], error: OAuthError, wait: float) -> None:
    """Tell every process sharing ``store`` to wait ``wait`` seconds, as ``error`` asked."""
    set_note = getattr(store, "set_note", None)
    if set_note is None:
        return
    note = json.dumps(
        {
            "until": time.time() + wait,
            "error": error.error,
            "status": error.status,
            "description": (error.description or "")[:200],
        }
    )
    try:
        try:
            set_note(_note(key), note, ttl=wait)
        except TypeError:  # a store whose notes do not expire: the until inside still holds
            set_note(_note(key), note)
    except Exception:
        log.debug("token store: cooldown not shared", exc_info=True)
