"""Key rotation as a resumable sequence of steps (``pkjwt rotate``).

A rotation fails when a server sees a kid it does not know yet (its JWKS cache: an hour on the
NHS platform) or loses one a client still signs with. The safe order is always the same, and
each step waits on something outside this process, so the sequence is kept in a small state
file and every run does what is due, then says what comes next:

=============  =================================================================================
``new_key``    a new key of the same type and size as the current one, written 0600
``published``  the JWKS file written with both keys (the old one still verifies)
``seen``       the registered JWKS (its URL, or the file a server reads) lists the new kid
``waited``     the server's JWKS cache time has passed since then
``switched``   the config section signs with the new key (``key`` and ``kid`` rewritten)
``retired``    after ``retire_after`` seconds, the JWKS file without the old key
=============  =================================================================================

Nothing here talks to the user; :mod:`pkjwt.cli.rotate` does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._private import write_atomic
from .errors import ConfigError
from .keys import Key, KeySet, generate_key, jwks

__all__ = ["STEPS", "Rotation", "RotationState", "next_kid", "switch_config"]

STEPS = ("new_key", "published", "seen", "waited", "switched", "retired")


@dataclass
class RotationState:
    """What a rotation has done so far (the state file's content). Times are epoch seconds."""

    old_kid: str
    old_key: str
    new_kid: str
    new_key: str
    publish: str
    #: where the server reads the client's keys (a JWKS URL or file); "" = the publish file
    registered: str
    cache_seconds: float
    retire_after: float
    config: str = ""
    section: str = ""
    done: dict[str, float] = field(default_factory=dict)

    def next_step(self) -> str | None:
        return next((s for s in STEPS if s not in self.done), None)

    @classmethod
    def load(cls, path: Path) -> RotationState:
        try:
            data = json.loads(path.read_text("utf-8"))
            return cls(**{k: v for k, v in data.items() if k != "version"})
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"rotation state {path} is unreadable ({type(exc).__name__})",
                hint="fix or remove it (remove it only if no new key was published yet)",
            ) from None

    def save(self, path: Path) -> None:
        text = json.dumps({"version": 1, **asdict(self)}, indent=2) + "\n"
        write_atomic(path, text.encode(), mode=0o644)


@dataclass(frozen=True, slots=True)
class Pending:
    """Why a step cannot run yet: waiting for someone else, or for time. ``ready_at`` is when
    a timed wait ends (None: when someone publishes the file)."""

    step: str
    reason: str
    ready_at: float | None = None


class Rotation:
    """Runs the steps that are due. ``read_registered`` reads the JWKS the server sees;
    ``clock`` is injected so tests do not wait an hour."""

    def __init__(
        self,
        state: RotationState,
        state_path: Path,
        *,
        read_registered: Callable[[str], KeySet],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.state_path = state_path
        self._read_registered = read_registered
        self._clock = clock

    def advance(self, until: str | None = None) -> Pending | None:
        """Run every due step (stopping after ``until``); the first one that cannot run yet,
        or None when the rotation (or the part asked for) is complete."""
        steps: dict[str, Callable[[], Pending | None]] = {
            "new_key": self._new_key,
            "published": self._published,
            "seen": self._seen,
            "waited": self._waited,
            "switched": self._switched,
            "retired": self._retired,
        }
        while (step := self.state.next_step()) is not None:
            pending = steps[step]()
            if pending is not None:
                return pending
            self.state.done[step] = self._clock()
            self.state.save(self.state_path)
            if step == until:
                return None
        return None

    # -- the steps: each returns None when done, or what it waits for ---------------------------
    def _new_key(self) -> Pending | None:
        from .keys import load_key

        path = Path(self.state.new_key)
        if not path.exists():  # resumable: a key written by an interrupted run is kept
            old = load_key(Path(self.state.old_key))
            size = old.size if old.kty == "RSA" else None
            key = generate_key(old.alg, kid=self.state.new_kid, size=size)
            write_atomic(path, key.private_pem(), mode=0o600)
        return None

    def _published(self) -> Pending | None:
        from .keys import load_key

        old = load_key(Path(self.state.old_key), kid=self.state.old_kid)
        new = load_key(Path(self.state.new_key), kid=self.state.new_kid)
        write_jwks(Path(self.state.publish), add=(old, new), drop=())
        return None

    def _registered(self) -> str:
        return self.state.registered or self.state.publish

    def _seen(self) -> Pending | None:
        where = self._registered()
        try:
            keys = self._read_registered(where)
        except ConfigError as exc:  # not there yet, or the host is down: look again later
            return Pending("seen", f"{exc.message}: publish {self.state.publish} there")
        if keys.get(self.state.new_kid) is None:
            return Pending(
                "seen",
                f"{where} does not list kid {self.state.new_kid!r} yet: publish "
                f"{self.state.publish} there (both kids: {', '.join(_kids(self.state))})",
            )
        return None

    def _waited(self) -> Pending | None:
        ready_at = self.state.done["seen"] + self.state.cache_seconds
        if self._clock() < ready_at:
            return Pending(
                "waited",
                f"the server may still cache the JWKS without {self.state.new_kid!r} "
                f"({self.state.cache_seconds:g} s after it was seen)",
                ready_at,
            )
        return None

    def _switched(self) -> Pending | None:
        if not self.state.config:
            return Pending(
                "switched",
                f"switch by hand: sign with {self.state.new_key} as kid {self.state.new_kid!r} "
                "(PKJWT_KEY / PKJWT_KID, or key / kid in your config), then run again with "
                "--switched",
            )
        switch_config(
            Path(self.state.config), self.state.section, self.state.new_key, self.state.new_kid
        )
        return None

    def _retired(self) -> Pending | None:
        ready_at = self.state.done["switched"] + self.state.retire_after
        if self._clock() < ready_at:
            return Pending(
                "retired",
                f"{self.state.old_kid!r} stays published while clients that have not reloaded "
                f"their config may still sign with it ({self.state.retire_after:g} s)",
                ready_at,
            )
        write_jwks(Path(self.state.publish), add=(), drop=(self.state.old_kid,))
        return None

    def confirm_switched(self) -> None:
        """The user switched by hand (no config section to rewrite)."""
        if self.state.next_step() == "switched":
            self.state.done["switched"] = self._clock()
            self.state.save(self.state_path)


def _kids(state: RotationState) -> tuple[str, str]:
    return state.old_kid, state.new_kid


def write_jwks(path: Path, *, add: tuple[Key, ...], drop: tuple[str, ...]) -> None:
    """Rewrite a JWKS file atomically: members already there stay (other kids a team
    publishes), ``add`` replace theirs by kid, ``drop`` are removed."""
    members: list[dict[str, Any]] = []
    if path.exists():
        try:
            members = list(json.loads(path.read_text("utf-8")).get("keys", []))
        except (ValueError, AttributeError):
            raise ConfigError(f"{path} is not a JWKS; move it aside and run again") from None
    replaced = {k.kid for k in add} | set(drop)
    members = [m for m in members if not (isinstance(m, dict) and m.get("kid") in replaced)]
    members += jwks([k.public() for k in add])["keys"]
    write_atomic(path, (json.dumps({"keys": members}, indent=2) + "\n").encode(), mode=0o644)


def next_kid(kid: str) -> str:
    """The kid after ``kid``: a trailing number counts up (int-1 -> int-2), else ``-2``."""
    match = re.fullmatch(r"(.*?)(\d+)", kid)
    if match:
        return f"{match.group(1)}{int(match.group(2)) + 1}"
    return f"{kid}-2"


_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")


def switch_config(path: Path, section: str, key: str, kid: str) -> None:
    """Point ``[sections.NAME]`` (or ``[default]``) at the new key: its ``key`` and ``kid``
    lines rewritten in place (comments and everything else kept), atomically."""
    try:
        lines = path.read_text("utf-8").splitlines(keepends=True)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    names = (
        {f"sections.{section}", f"profiles.{section}"} if section else {"default"}
    )  # a section given by name, else the file's [default]
    start = next(
        (i for i, line in enumerate(lines) if (m := _TABLE.match(line)) and m[1].strip() in names),
        None,
    )
    if start is None:
        raise ConfigError(f"{path}: no [{'sections.' + section if section else 'default'}] table")
    end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])), len(lines))
    wanted = {"key": json.dumps(key), "kid": json.dumps(kid)}
    for i in range(start + 1, end):
        name = lines[i].split("=", 1)[0].strip()
        if name in wanted and "=" in lines[i]:
            lines[i] = f"{name} = {wanted.pop(name)}\n"
    lines[end:end] = [f"{name} = {value}\n" for name, value in wanted.items()]
    mode = path.stat().st_mode & 0o777  # the config may hold secrets' names: keep its mode
    write_atomic(path, "".join(lines).encode(), mode=mode)
