"""Replay stores: remember (client_id, jti) until the assertion can no longer be used (R19).

One backend per module: :mod:`.memory` (tests, benchmarks), :mod:`.sqlite` (the default, so a
restart does not reopen a replay window) and :mod:`.redis` (several servers, processes or
hosts, sharing one window). :func:`open_replay_store` picks one from a store URL. The first two
keep the pairs in :mod:`.compact` (20 bytes a fingerprint and expiry); the SQLite store saves
that index with :mod:`.snapshot`.
"""

from __future__ import annotations

from pathlib import Path

from ..._private import default_state_dir, private_dir
from ...errors import ConfigError
from ...store_url import parse_store_url
from .base import ReplayStore, ReplayStoreInUse, replay_key
from .compact import CompactIndex
from .guard import ReplayGuard
from .memory import MemoryReplayStore
from .redis import RedisReplayStore
from .sqlite import SqliteReplayStore

__all__ = [
    "CompactIndex",
    "MemoryReplayStore",
    "RedisReplayStore",
    "ReplayGuard",
    "ReplayStore",
    "ReplayStoreInUse",
    "SqliteReplayStore",
    "describe_store",
    "open_replay_store",
    "parse_replay_url",
    "replay_key",
]

_SHARED_DEFAULT = "pkjwt-replay.sqlite3"
_OPTIONS = frozenset({"commit_interval"})
_OPTION_HINT = "the one option is ?commit_interval=SECONDS (0: commit before answering)"


def describe_store(store: ReplayStore) -> str:
    """What the server announces at start: where the jtis go, and how durably."""
    describe = getattr(store, "describe", None)
    return describe() if callable(describe) else type(store).__name__


def parse_replay_url(url: str, *, what: str = "replay_store") -> tuple[str, str, float]:
    """Check a replay store URL: its kind, its SQLite path ("" for the default file) and its
    commit interval. The server's config validates with this at start."""
    parsed = parse_store_url(url, what=what, sqlite_options=_OPTIONS, option_hint=_OPTION_HINT)
    try:
        interval = float(parsed.options.get("commit_interval", 0.05))
    except ValueError:
        raise ConfigError(f"{what}: commit_interval must be seconds") from None
    return parsed.kind, parsed.path, interval


def open_replay_store(
    url: str, *, default_dir: Path | None = None, default_name: str = "replay-2.sqlite3"
) -> ReplayStore:
    """``memory://``, ``redis://HOST:PORT/DB`` or ``sqlite:///PATH[?commit_interval=S]``.
    ``sqlite:///`` alone: the file ``pkjwt-replay.sqlite3`` in ``default_dir``, or
    ``default_name`` there when another process holds that one."""
    kind, path, interval = parse_replay_url(url)
    if kind == "memory":
        return MemoryReplayStore()
    if kind == "redis":
        return RedisReplayStore(url)
    if path:
        return SqliteReplayStore(path, commit_interval=interval)
    base = private_dir(default_dir or default_state_dir())
    try:
        return SqliteReplayStore(base / _SHARED_DEFAULT, commit_interval=interval)
    except ReplayStoreInUse:
        # assertions name their issuer in aud, so only the same issuer can see a replay:
        # a second server falls back to a file of its own
        return SqliteReplayStore(base / default_name, commit_interval=interval)
