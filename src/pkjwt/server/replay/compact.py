"""A compact index of 128-bit fingerprints with an expiry (and, for tokens, a 64-bit payload).

Why not a ``dict``: a remembered jti cost 151-393 B of RSS in a ``dict[str, float]`` plus
per-second buckets (issue 10, item 15), and the NHS dialect remembers jtis for 30 days: 10
tokens/s is 26 M of them, 4-10 GB. Here an entry is 20 bytes in flat buffers: the first 16
bytes of SHA-256 of the key (:func:`fingerprint`) in a ``bytearray`` and the expiry as a uint32
of seconds in an ``array``. None of it is a Python object, so the garbage collector never walks
it; ``python -m benchmarks memory`` measures the bytes per entry, slack included.

A hash-based index can refuse a new key whose fingerprint equals a live one's: with ``n`` live
keys that is ``n / 2**128`` per new key, 8e-32 at 26 M, and 2e-24 summed over all the inserts
of a 26 M window. That is what "no false replays" means here. The other way, a replay taken for
new, cannot happen: equal keys have equal fingerprints. Forging a collision needs a second
preimage of SHA-256 truncated to 128 bits, and would win its forger nothing but a refusal.

Layout: extendible hashing over bucketed cuckoo tables ("shards") of up to 2,048 slots. The
first bits of a fingerprint pick a shard through a directory; inside it, an entry lives in one
of two buckets of 8 slots picked by other bits (the emptier one: two choices keep buckets from
filling up), packed at the front of its bucket, whose fill is one byte. A lookup is at most two
``bytearray.find`` calls over the filled part of a bucket (C speed). Cuckoo rather than linear
probing: an expired entry is reclaimed by moving the bucket's last entry into its slot, where a
probe run would need a tombstone, and tombstones crowd a table until it is rebuilt (measured in
steady state: linear probing with tombstones cost ~45% more per insert and 35 B a live entry
where this costs 29).

A full shard first reclaims its expired entries; if it is still mostly live it grows, and past
2,048 slots splits in two by the next fingerprint bit. So every pause is bounded (one shard's
entries move: at most ~1,900, 1-3 ms), memory grows a shard at a time, never all at once, and
shards start at spread loads so that they do not all grow at the same total (the bytes per
entry would swing by a third with it).

Expiries are whole seconds, rounded up: an entry lives up to one second longer, never shorter.
The methods expect their caller's lock: the stores call them under theirs.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Callable, Iterator
from hashlib import sha256
from itertools import compress, count

__all__ = ["NEVER", "CompactIndex", "Shard", "expiry_seconds", "fingerprint"]

#: bytes per fingerprint
SLOT = 16
_ZEROS_I = bytes(4)
_ZEROS_Q = bytes(8)
#: slots per bucket, and a bucket's bytes (two cache lines)
WAYS = 8
BUCKET = SLOT * WAYS
#: the largest expiry a uint32 holds (2106-02-07): later ones are kept until then
NEVER = 0xFFFFFFFF
#: a shard that would outgrow this many buckets (2,048 slots) splits in two instead
MAX_BUCKETS = 256
#: slots in use (live or expired) at which a shard reclaims its expired entries
LOAD_FULL = 0.93
#: live entries per slot at which a full shard grows (or splits) rather than only reclaim
LOAD_GROW = 0.85
#: the load a grown shard starts at (spread +-0.05 across shards: see _buckets_for)
LOAD_AFTER = 0.62
#: the load :meth:`CompactIndex.reserve` sizes shards for (room to spare below LOAD_GROW)
LOAD_RESERVED = 0.75
#: cuckoo moves before an insert gives up and grows the shard
MAX_KICKS = 32
MAX_DEPTH = 40

Entry = tuple[bytes, int, int]  # fingerprint, expiry, payload
Drop = Callable[[int], None]


def fingerprint(key: bytes) -> bytes:
    """The first 128 bits of SHA-256 of ``key``."""
    return sha256(key).digest()[:SLOT]


def expiry_seconds(expires_at: float) -> int:
    """``expires_at`` as the index stores it: whole seconds rounded up; 0 when already gone
    (zero or less); :data:`NEVER` beyond 2106 (and for NaN)."""
    if expires_at <= 0:
        return 0
    if expires_at < NEVER:  # False for NaN
        return math.ceil(expires_at)
    return NEVER


class Shard:
    """One bucketed cuckoo table: ``buckets`` x :data:`WAYS` slots, each a fingerprint in
    ``keys``, an expiry in ``exp`` and optionally a payload; bucket ``b`` holds ``fill[b]``
    entries in its first slots (the others have expiry 0). Its fingerprints all start with the
    ``depth`` bits of ``prefix``."""

    __slots__ = ("buckets", "depth", "exp", "fill", "full", "keys", "payload", "prefix", "used")

    def __init__(self, prefix: int, depth: int, buckets: int, *, payload: bool = False) -> None:
        self.prefix = prefix
        self.depth = depth
        self.buckets = buckets
        slots = buckets * WAYS
        self.keys = bytearray(SLOT * slots)
        self.exp: array[int] = array("I", _ZEROS_I) * slots
        self.payload: array[int] | None = array("Q", _ZEROS_Q) * slots if payload else None
        self.fill = bytearray(buckets)
        self.full = max(1, int(slots * LOAD_FULL))
        self.used = 0  # entries held, live or expired

    def nbytes(self) -> int:
        size = sys.getsizeof(self) + sys.getsizeof(self.keys) + sys.getsizeof(self.exp)
        size += sys.getsizeof(self.fill)
        return size + (sys.getsizeof(self.payload) if self.payload is not None else 0)

    def homes(self, fp: bytes) -> tuple[int, int]:
        """The two buckets ``fp`` may live in (as :meth:`CompactIndex.add` computes them)."""
        x = int.from_bytes(fp)
        return x % self.buckets, (x >> 64) % self.buckets

    def find(self, fp: bytes, bucket: int) -> int:
        """The slot holding ``fp`` in ``bucket``, or -1. ``find`` may match across two slots
        (it takes fingerprints that end and start just so: never seen, still handled)."""
        start = bucket << 7
        end = start + (self.fill[bucket] << 4)
        at = self.keys.find(fp, start, end)
        while at > 0 and at & 15:
            at = self.keys.find(fp, at + 1, end)
        return at >> 4 if at >= 0 else -1

    def append(self, bucket: int, fp: bytes, until: int, payload: int) -> None:
        """Add an entry to a bucket with room."""
        filled = self.fill[bucket]
        slot = (bucket << 3) + filled
        self.keys[slot << 4 : (slot << 4) + 16] = fp
        self.exp[slot] = until
        if self.payload is not None:
            self.payload[slot] = payload
        self.fill[bucket] = filled + 1
        self.used += 1


class CompactIndex:
    """Fingerprints with an expiry (and a payload when ``payload``): insert-if-absent, look up,
    reclaim. ``on_drop`` is called with the payload of each entry reclaimed after its expiry.
    ``max_buckets`` bounds a shard (tests make it tiny, to split often)."""

    def __init__(
        self, *, payload: bool = False, on_drop: Drop | None = None, max_buckets: int = 0
    ) -> None:
        self.with_payload = payload
        self._on_drop = on_drop
        self.max_buckets = max_buckets or MAX_BUCKETS
        self._dir = [Shard(0, 0, 1, payload=payload)]
        self._depth = 0
        self._shift = 64  # (first 64 bits) >> 64 is 0: one shard

    def __len__(self) -> int:
        """Entries held: live ones, and expired ones not yet reclaimed."""
        return sum(shard.used for shard in self.shards())

    # -- the hot path ----------------------------------------------------------------------
    def add(self, fp: bytes, until: int, now: float, payload: int = 0) -> bool:
        """Insert ``fp`` (live until ``until``) unless it is live: True if it was not."""
        x = int.from_bytes(fp)
        h = x >> 64
        shard = self._dir[h >> self._shift]
        keys, fill = shard.keys, shard.fill
        first = x % shard.buckets
        second = h % shard.buckets
        one, two = fill[first], fill[second]
        start = first << 7
        at = keys.find(fp, start, start + (one << 4)) if one else -1
        if at < 0 and two:
            start = second << 7
            at = keys.find(fp, start, start + (two << 4))
        if at > 0 and at & 15:  # a match across two slots: possible, never seen
            at = shard.find(fp, first) << 4
            if at < 0:
                at = shard.find(fp, second) << 4
        if at >= 0:  # seen: refused while live, else it lives again in its slot
            if shard.exp[at >> 4] > now:
                return False
            if until > now:
                self._overwrite(shard, at >> 4, fp, until, payload)
            return True
        if until <= now:  # already expired: nothing to remember
            return True
        if shard.used >= shard.full:
            self._make_room(shard, now)
            return self.add(fp, until, now, payload)
        if two < one:  # the emptier bucket
            first, one = second, two
        if one < WAYS:  # room: the common case, written inline
            slot = (first << 3) + one
            keys[slot << 4 : (slot << 4) + 16] = fp
            shard.exp[slot] = until
            if shard.payload is not None:
                shard.payload[slot] = payload
            fill[first] = one + 1
            shard.used += 1
            return True
        slot = _expired_slot(shard, first, second, now)  # both buckets full
        if slot >= 0:
            self._overwrite(shard, slot, fp, until, payload)
            return True
        left = _displace(shard, (fp, until, payload), first, now, self._on_drop)
        if left is not None:
            self._grow(shard, left)
        return True

    def _overwrite(self, shard: Shard, slot: int, fp: bytes, until: int, payload: int) -> None:
        """Put an entry in place of an expired one (whose payload drops)."""
        _overwrite(shard, slot, (fp, until, payload), self._on_drop)

    def _locate(self, fp: bytes) -> tuple[Shard, int]:
        """The shard ``fp`` belongs to and its slot there (-1: absent)."""
        shard = self._dir[int.from_bytes(fp[:8]) >> self._shift]
        first, second = shard.homes(fp)
        slot = shard.find(fp, first)
        return shard, (slot if slot >= 0 else shard.find(fp, second))

    def live(self, fp: bytes, now: float) -> bool:
        shard, slot = self._locate(fp)
        return slot >= 0 and shard.exp[slot] > now

    def get(self, fp: bytes, now: float) -> tuple[int, int] | None:
        """``(expiry, payload)`` of a live ``fp``, else None."""
        shard, slot = self._locate(fp)
        if slot < 0 or shard.exp[slot] <= now:
            return None
        return shard.exp[slot], (shard.payload[slot] if shard.payload is not None else 0)

    def set_payload(self, fp: bytes, payload: int) -> bool:
        shard, slot = self._locate(fp)
        if slot < 0 or shard.payload is None:
            return False
        shard.payload[slot] = payload
        return True

    # -- reclaiming and growing ------------------------------------------------------------
    def _make_room(self, shard: Shard, now: float) -> None:
        """A full shard: reclaim its expired entries; grow it if it is still mostly live."""
        _sweep(shard, now, self._on_drop)
        if shard.used >= min(shard.full, len(shard.exp) * LOAD_GROW):
            self._grow(shard)

    def purge(self, now: float) -> int:
        """Reclaim every expired entry now (tests, benchmarks; requests reclaim a shard at a
        time); how many there were."""
        return sum(_sweep(shard, now, self._on_drop) for shard in self.shards())

    def _grow(self, shard: Shard, extra: Entry | None = None) -> None:
        """Replace ``shard`` by a bigger one holding its entries and ``extra``; past
        ``max_buckets``, by two, split by the next fingerprint bit."""
        entries = shard.used + (extra is not None)
        depth = shard.depth
        least = shard.buckets + 1 if extra is not None else 1  # a cuckoo failure: more room
        buckets = max(least, _buckets_for(entries, shard.prefix, depth))
        upper = 0
        if buckets > self.max_buckets and depth < MAX_DEPTH:  # 2**40 shards: never
            upper = _upper(shard, 63 - depth) + (extra is not None and _bit(extra[0], depth))
        if not 0 < upper < entries:  # small enough (or keys that SHA-256 never makes)
            self._install(_rebuilt(shard, extra, ((shard.prefix, depth, buckets),))[0])
            return
        if depth == self._depth:
            self._dir = [s for s in self._dir for _ in (0, 1)]
            self._depth += 1
            self._shift -= 1
        halves = tuple(
            (prefix, depth + 1, _buckets_for(n, prefix, depth + 1))
            for prefix, n in (
                (shard.prefix << 1, entries - upper),
                ((shard.prefix << 1) | 1, upper),
            )
        )
        for new in _rebuilt(shard, extra, halves):
            self._install(new)

    def _install(self, new: Shard) -> None:
        span = 1 << (self._depth - new.depth)
        start = new.prefix * span
        self._dir[start : start + span] = [new] * span

    # -- whole-index views -----------------------------------------------------------------
    def shards(self) -> list[Shard]:
        """Each shard once, in directory order."""
        out: list[Shard] = []
        for shard in self._dir:
            if not out or out[-1] is not shard:
                out.append(shard)
        return out

    def reserve(self, entries: int) -> None:
        """Size an empty index for ``entries`` at once (a reload of the whole log): no shard
        then grows on the way, so each entry is placed once, not ~3 times."""
        per_shard = self.max_buckets * WAYS * LOAD_RESERVED
        if len(self) or entries <= per_shard:
            return
        depth = min(MAX_DEPTH, math.ceil(math.log2(entries / per_shard)))
        share, payload = entries >> depth, self.with_payload
        self._dir = [
            Shard(prefix, depth, _buckets_for(share, prefix, depth, LOAD_RESERVED), payload=payload)
            for prefix in range(1 << depth)
        ]
        self._depth, self._shift = depth, 64 - depth

    def shard_at(self, position: int) -> Shard:
        """The shard holding the fingerprints that start with the 64 bits ``position``."""
        return self._dir[position >> self._shift]

    @property
    def depth(self) -> int:
        return self._depth

    def expiries(self, now: float) -> Iterator[int]:
        """The expiry of every live entry (tests and reports)."""
        for shard in self.shards():
            yield from (e for e in shard.exp if e > now)

    def nbytes(self) -> int:
        """Every byte the index holds: buffers, shard objects and the directory."""
        return sum(s.nbytes() for s in self.shards()) + sys.getsizeof(self._dir)

    @classmethod
    def restore(
        cls, depth: int, shards: list[Shard], *, payload: bool = False, max_buckets: int = 0
    ) -> CompactIndex:
        """An index from shards that cover the fingerprint space exactly once (as a snapshot
        holds them); ValueError if they do not."""
        if not 0 <= depth <= MAX_DEPTH:
            raise ValueError("directory depth out of range")
        directory: list[Shard | None] = [None] * (1 << depth)
        for shard in shards:
            if shard.depth > depth or shard.prefix >> shard.depth:
                raise ValueError("a shard outside the directory")
            span = 1 << (depth - shard.depth)
            start = shard.prefix * span
            if any(s is not None for s in directory[start : start + span]):
                raise ValueError("two shards overlap")
            directory[start : start + span] = [shard] * span
        full = [s for s in directory if s is not None]
        if len(full) != len(directory):
            raise ValueError("the shards leave a gap")
        index = cls(payload=payload, max_buckets=max_buckets)
        index._dir = full
        index._depth = depth
        index._shift = 64 - depth
        return index


def _overwrite(shard: Shard, slot: int, entry: Entry, drop: Drop | None) -> None:
    """Put ``entry`` in place of the one in ``slot`` (expired: its payload drops)."""
    fp, until, payload = entry
    shard.keys[slot << 4 : (slot << 4) + 16] = fp
    shard.exp[slot] = until
    if shard.payload is not None:
        if drop is not None:
            drop(shard.payload[slot])
        shard.payload[slot] = payload


def _expired_slot(shard: Shard, first: int, second: int, now: float) -> int:
    """A slot of either (full) bucket whose entry has expired, or -1."""
    exp = shard.exp
    for bucket in (first, second):
        for slot in range(bucket << 3, (bucket << 3) + WAYS):
            if exp[slot] <= now:
                return slot
    return -1


def _displace(
    shard: Shard, entry: Entry, bucket: int, now: float, drop: Drop | None
) -> Entry | None:
    """Cuckoo: put ``entry`` in a slot of the full ``bucket``, move the entry it held to that
    entry's other bucket, and so on. None once every entry has a slot; after :data:`MAX_KICKS`
    moves, the entry still in hand (for the caller to place by growing the shard)."""
    keys, exp, payloads = shard.keys, shard.exp, shard.payload
    fp, until, payload = entry
    for _ in range(MAX_KICKS):
        slot = (bucket << 3) + fp[-1] % WAYS  # the entry in hand picks its victim
        at = slot << 4
        fp, keys[at : at + 16] = bytes(keys[at : at + 16]), fp
        until, exp[slot] = exp[slot], until
        if payloads is not None:
            payload, payloads[slot] = payloads[slot], payload
        first, second = shard.homes(fp)
        bucket = second if first == bucket else first
        if shard.fill[bucket] < WAYS:
            shard.append(bucket, fp, until, payload)
            return None
        slot = _expired_slot(shard, bucket, bucket, now)
        if slot >= 0:
            _overwrite(shard, slot, (fp, until, payload), drop)
            return None
    return fp, until, payload


def _sweep(shard: Shard, now: float, drop: Drop | None) -> int:
    """Remove the entries of ``shard`` that have expired: the last entry of the bucket moves
    into the slot (only the filled part of a bucket is ever read, so the slot it leaves keeps
    its bytes; its expiry is zeroed); how many there were. Runs once per insert in steady
    state, so it is written out."""
    keys, exp, payload, fill = shard.keys, shard.exp, shard.payload, shard.fill
    dead = list(compress(count(), map(range(1, math.floor(now) + 1).__contains__, exp)))
    for slot in reversed(dead):  # from the end: a bucket's last entry is never a dead one
        bucket = slot >> 3
        filled = fill[bucket] - 1
        last = (bucket << 3) + filled
        if payload is not None:
            if drop is not None:
                drop(payload[slot])
            payload[slot] = payload[last]
            payload[last] = 0
        if slot != last:
            keys[slot << 4 : (slot << 4) + 16] = keys[last << 4 : (last << 4) + 16]
            exp[slot] = exp[last]
        exp[last] = 0
        fill[bucket] = filled
    shard.used -= len(dead)
    return len(dead)


def _bit(fp: bytes, depth: int) -> int:
    """The fingerprint bit that splits a shard of ``depth`` in two."""
    return (int.from_bytes(fp[:8]) >> (63 - depth)) & 1


def _upper(shard: Shard, bit: int) -> int:
    """How many entries of ``shard`` have ``bit`` (of their first 64) set (at C speed)."""
    words = array("Q", shard.keys)
    if sys.byteorder == "little":
        words.byteswap()
    high = words[::2]
    live = compress(high, shard.exp)
    return sum(map((1 << bit).__and__, live)) >> bit


def _rebuilt(
    old: Shard, extra: Entry | None, shapes: tuple[tuple[int, int, int], ...]
) -> list[Shard]:
    """New shards of ``shapes`` (prefix, depth, buckets: one, or two split by the next bit)
    holding ``old``'s entries and ``extra``; a size up if they crowd one."""
    while True:
        news = [Shard(*shape, payload=old.payload is not None) for shape in shapes]
        if _moved(old, extra, news):
            return news
        shapes = tuple(
            (prefix, depth, buckets + buckets // 4 + 1) for prefix, depth, buckets in shapes
        )


def _moved(old: Shard, extra: Entry | None, news: list[Shard]) -> bool:
    """Copy the entries of ``old`` (and ``extra``) into ``news``; False if one is too crowded.
    The loop that moves every entry when a shard grows, written out: ~0.6 us an entry."""
    shift = 127 - news[-1].depth + 1  # (128-bit fingerprint) >> shift & mask: which new shard
    mask = len(news) - 1
    parts = [(n.keys, n.exp, n.payload, n.fill, n.buckets) for n in news]
    src, old_exp, old_payload = bytes(old.keys), old.exp, old.payload
    crowded: list[tuple[Shard, Entry]] = []
    for slot in compress(count(), old_exp):
        fp = src[slot << 4 : (slot << 4) + 16]
        x = int.from_bytes(fp)
        which = (x >> shift) & mask
        keys, exp, payload, fill, buckets = parts[which]
        first = x % buckets
        second = (x >> 64) % buckets
        if fill[second] < fill[first]:
            first = second
        filled = fill[first]
        if filled == WAYS:  # both buckets full: placed below, moving others
            value = old_payload[slot] if old_payload is not None else 0
            crowded.append((news[which], (fp, old_exp[slot], value)))
            continue
        at = (first << 3) + filled
        keys[at << 4 : (at << 4) + 16] = fp
        exp[at] = old_exp[slot]
        if payload is not None and old_payload is not None:
            payload[at] = old_payload[slot]
        fill[first] = filled + 1
    for new in news:
        new.used = sum(new.fill)
    if extra is not None:
        crowded.append((news[(int.from_bytes(extra[0]) >> shift) & mask], extra))
    for new, entry in crowded:
        first, second = new.homes(entry[0])
        bucket = first if new.fill[first] <= new.fill[second] else second
        if new.fill[bucket] < WAYS:
            new.append(bucket, *entry)
        elif _displace(new, entry, bucket, 0, None) is not None:
            return False
    return True


def _buckets_for(entries: int, prefix: int, depth: int, load: float = LOAD_AFTER) -> int:
    """Buckets for a shard that starts with ``entries``: a load of ``load`` +-0.05, fixed by
    its prefix. Shards fill at the same pace: starting at one load, they would all grow at
    about the same total, and the bytes per entry would swing with it; spread, they drift
    apart."""
    spread = ((prefix * 0x9E3779B97F4A7C15 + depth) >> 17) % 101
    return max(1, math.ceil(entries / (WAYS * (load - 0.05 + spread / 1000))))
