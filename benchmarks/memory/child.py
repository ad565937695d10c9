"""One memory measurement in a fresh process: ``python -m benchmarks.memory.child MODE ARGS``.

RSS is per process, and a process keeps the memory it once held, so every figure comes from a
process that did only that one thing: its RSS before and after (``/proc/self/statm``), the
structure's own accounting beside it, and timings. The result is the last line of stdout, as
JSON. Modes:

* ``store PATH N``: the default store (SQLite, writing behind) filled with N jtis through
  ``add``, as requests do (30-day NHS expiry), written every 8,192 as the flusher thread does
  at a server's pace; then ``close`` (the last flush, the snapshot).
* ``reload PATH N``: open the store on those files (a restart); a sample of the jtis must be
  refused and new ones accepted.
* ``old-set N``: the old index (``ExpiringSet``) with N jtis, added as the old store did.
* ``old-reload PATH``: the old store's start on the same log (every row into ``ExpiringSet``).
* ``tokens N`` / ``old-tokens N``: N live opaque tokens in the issuer, new and old.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pkjwt.server.issuing import TokenIssuer
from pkjwt.server.replay import SqliteReplayStore
from pkjwt.server.replay.base import blob, replay_key
from pkjwt.server.replay.compact import fingerprint

from .baseline import ExpiringSet, OldIssuedToken, OldTokenTable, old_add, old_reload

CLIENT = "nhs-api-key-0123456789abcdef"
#: the NHS dialect keeps a jti for the assertion's exp plus 30 days
WINDOW = 30 * 24 * 3600 + 300
#: a fixed start, so that a reload in another process sees the same jtis live
T0 = 1_900_000_000.0


def jti(i: int) -> str:
    """A UUID-shaped jti, as clients send them."""
    return f"{i:08x}-7a1c-4b2e-9f3d-{i:012x}"


def rss() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _settled() -> int:
    gc.collect()
    return rss()


def store(path: str, n: int) -> dict[str, Any]:
    clock = _Clock()
    before = _settled()
    started = time.perf_counter()
    replay = SqliteReplayStore(path, clock)
    add = replay.add
    for i in range(n):
        add(CLIENT, jti(i), T0 + WINDOW)
        if not i & 0x1FFF:
            clock.tick(i)
            # jtis come here ~30x faster than any server takes them: the flusher thread would
            # fall behind and the queue of unwritten jtis (~200 B each) would be measured,
            # not the store. At a server's pace it writes them every 50 ms; so here
            replay._flush()
    built = time.perf_counter() - started
    replay._flush()
    after = _settled()
    nbytes = replay._seen.nbytes()
    started = time.perf_counter()
    replay.close()  # the last flush and the snapshot a restart will load
    return {
        "n": n,
        "rss_before": before,
        "rss_after": after,
        "index_nbytes": nbytes,
        "build_s": built,
        "close_s": time.perf_counter() - started,
        "db_bytes": _size(path, "", "-wal"),
        "snapshot_bytes": _size(path, ".index"),
    }


def reload(path: str, n: int) -> dict[str, Any]:
    before = _settled()
    started = time.perf_counter()
    replay = SqliteReplayStore(path, _Clock())
    opened = time.perf_counter() - started
    after = _settled()
    now = T0 + 60
    step = max(1, n // 1000)
    refused = sum(replay._seen.live(_fp(jti(i)), now) for i in range(0, n, step))
    fresh = sum(not replay._seen.live(_fp(jti(n + i)), now) for i in range(1000))
    return {
        "n": n,
        "open_s": opened,
        "rss_before": before,
        "rss_after": after,
        "tail_rows": replay._snapshots.tail,
        "sample_refused": f"{refused}/{len(range(0, n, step))}",
        "new_accepted": f"{fresh}/1000",
    }


def old_set(n: int) -> dict[str, Any]:
    before = _settled()
    seen, lock = ExpiringSet(), threading.Lock()
    started = time.perf_counter()
    for i in range(n):
        old_add(seen, lock, CLIENT, jti(i), T0 + WINDOW, T0)
    built = time.perf_counter() - started
    return {"n": n, "rss_before": before, "rss_after": _settled(), "build_s": built}


def old_store_reload(path: str) -> dict[str, Any]:
    before = _settled()
    started = time.perf_counter()
    seen = old_reload(path, T0 + 60)
    opened = time.perf_counter() - started
    return {"n": len(seen), "open_s": opened, "rss_before": before, "rss_after": _settled()}


def tokens(n: int) -> dict[str, Any]:
    issuer = TokenIssuer(issuer="https://as.test", lifetime=3600)
    before = _settled()
    for i in range(n):
        issuer.issue(f"client-{i % 8}", _scope(), None)
    after = _settled()
    nbytes = issuer._live.nbytes() + sys.getsizeof(issuer._grants._ids)
    return {"n": n, "rss_before": before, "rss_after": after, "index_nbytes": nbytes}


def old_tokens(n: int) -> dict[str, Any]:
    from pkjwt.decode import b64url

    table = OldTokenTable()
    before = _settled()
    now = int(time.time())
    for i in range(n):
        # as the old issue() did: 48 random bytes, the token from 32, the jti from 16
        random = os.urandom(48)
        client, jti_ = f"client-{i % 8}", random[32:].hex()
        record = OldIssuedToken(client, _scope(), None, now, now + 3600, jti_)
        table.remember(b64url(random[:32]), record, now)
    return {"n": n, "rss_before": before, "rss_after": _settled()}


def _scope() -> str:
    # a new string per request, as a parsed form makes it
    return b"api:read".decode()


def _fp(jti_: str) -> bytes:
    return fingerprint(blob(replay_key(CLIENT, jti_)))


def _size(path: str, *suffixes: str) -> int:
    return sum(Path(path + s).stat().st_size for s in suffixes if Path(path + s).exists())


class _Clock:
    """Time as the jtis were added: a few seconds per 65,536 (their expiries stay in order)."""

    def __init__(self) -> None:
        self.now = T0

    def tick(self, i: int) -> None:
        self.now = T0 + i / 1_000_000

    def __call__(self) -> float:
        return self.now


MODES: dict[str, Callable[..., dict[str, Any]]] = {
    "store": lambda path, n: store(path, int(n)),
    "reload": lambda path, n: reload(path, int(n)),
    "old-set": lambda n: old_set(int(n)),
    "old-reload": old_store_reload,
    "tokens": lambda n: tokens(int(n)),
    "old-tokens": lambda n: old_tokens(int(n)),
}


def main(argv: list[str]) -> int:
    result = MODES[argv[0]](*argv[1:])
    print(json.dumps(result), flush=True)
    os._exit(0)  # no close: a reloaded store must not write a snapshot on the way out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
