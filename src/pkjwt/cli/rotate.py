"""pkjwt rotate: replace the signing key without a failed token request, one step at a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click

from ..config import config_path, resolve_with_sources
from ..errors import ConfigError
from ..rotation import STEPS, Pending, Rotation, RotationState, next_kid
from ..signers import is_key_uri
from .common import echo_json, err, read_jwks

#: exit status while the rotation waits on someone or something (EX_TEMPFAIL: run again later)
WAITING = 75


@click.command("rotate")
@click.option("-s", "--section", help="The config section whose key rotates (default: [default]).")
@click.option("--new-kid", help="Key id of the new key (default: the old kid counted up).")
@click.option(
    "--publish",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JWKS file to write (default: the section's jwks file, else jwks.json by the key).",
)
@click.option(
    "--registered",
    metavar="URL|FILE",
    help="Where the server reads your keys (default: the section's jwks, else --publish).",
)
@click.option(
    "--cache-seconds",
    type=float,
    default=3600,
    show_default=True,
    help="How long the server may cache your JWKS (the NHS platform: an hour).",
)
@click.option(
    "--retire-after",
    type=float,
    default=3600,
    show_default=True,
    help="Seconds after the switch before the old kid leaves the JWKS.",
)
@click.option("--until", type=click.Choice(STEPS), help="Stop after this step.")
@click.option("--wait", is_flag=True, help="Wait through the timed steps instead of exiting 75.")
@click.option("--switched", is_flag=True, help="Say you switched the key by hand.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the state and the next step as JSON.")
def command(
    section: str | None,
    new_kid: str | None,
    publish: Path | None,
    registered: str | None,
    cache_seconds: float,
    retire_after: float,
    until: str | None,
    wait: bool,
    switched: bool,
    state_file: Path | None,
    as_json: bool,
) -> None:
    """Rotate the signing key of a config section, resumably.

    Each run does every step that is due and says what comes next; run it again (or pass
    --wait) until it reports the rotation complete. Exit status 75 means "waiting: run again".

    \b
    Steps: new_key, published (JWKS with both kids), seen (the registered JWKS lists the new
    kid), waited (the server's JWKS cache time), switched (the section signs with the new
    key), retired (the old kid leaves the JWKS).

    \b
    Example:
      pkjwt rotate -s int --registered https://example.org/jwks.json
    """
    settings, sources = resolve_with_sources({}, section)
    if not settings.key or is_key_uri(settings.key):
        raise ConfigError(
            "pkjwt rotate needs the section's key as a file",
            hint="for a key in an HSM/KMS, create the new key there, publish both with "
            "pkjwt jwks, then switch the URI",
        )
    old_key = Path(settings.key).resolve()
    path = state_file or old_key.with_name(old_key.name + ".rotation.json")
    if path.exists():
        state = RotationState.load(path)
    else:
        state = _start(settings.kid, old_key, new_kid, publish, sources, section)
        state.cache_seconds, state.retire_after = cache_seconds, retire_after  # new runs only
        # the section's jwks (what --explain compares with) is what the server reads
        state.registered = registered or settings.jwks or ""
        if publish is None and settings.jwks and "://" not in settings.jwks:
            state.publish = str(Path(settings.jwks).resolve())
    rotation = Rotation(
        state, path, read_registered=lambda where: read_jwks(where, settings, "registered JWKS")
    )
    if switched:
        rotation.confirm_switched()
    pending = rotation.advance(until)
    while wait and pending is not None and pending.step != "switched":
        _pause(pending, as_json)
        pending = rotation.advance(until)
    _report(state, path, pending, as_json, section)
    if pending is not None:
        raise SystemExit(WAITING)


def _start(
    kid: str | None,
    old_key: Path,
    new_kid: str | None,
    publish: Path | None,
    sources: dict[str, str],
    section: str | None,
) -> RotationState:
    if not kid:
        raise ConfigError("the section has no kid: pkjwt rotate needs the kid being replaced")
    new = new_kid or next_kid(kid)
    if new == kid:
        raise ConfigError("--new-kid must differ from the current kid")
    target = publish or old_key.with_name("jwks.json")
    # the key line is rewritten only where it came from: a config file table
    where = sources.get("key", "")
    config = str(config_path()) if where.startswith("[") else ""
    return RotationState(
        old_kid=kid,
        old_key=str(old_key),
        new_kid=new,
        new_key=str(old_key.with_name(f"{new}.pem")),
        publish=str(target.resolve()),
        registered="",
        cache_seconds=3600,
        retire_after=3600,
        config=config,
        section=(section or "") if where.startswith(("[sections.", "[profiles.")) else "",
    )


def _pause(pending: Pending, as_json: bool) -> None:
    if pending.ready_at is None:  # someone has to publish: look again shortly
        delay = 5.0
        what = f"waiting for the registered JWKS to list the new kid ({pending.reason})"
    else:
        delay = max(0.0, min(60.0, pending.ready_at - time.time()))
        left = max(0.0, pending.ready_at - time.time())
        what = f"{pending.step}: {left:.0f} s left ({pending.reason})"
    if not as_json:
        err(what)
    time.sleep(delay)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _report(
    state: RotationState, path: Path, pending: Pending | None, as_json: bool, section: str | None
) -> None:
    rerun = "pkjwt rotate" + (f" -s {section}" if section else "")
    if as_json:
        echo_json(
            {
                "old_kid": state.old_kid,
                "new_kid": state.new_kid,
                "new_key": state.new_key,
                "publish": state.publish,
                "registered": state.registered or state.publish,
                "state_file": str(path),
                "done": {step: _when(t) for step, t in state.done.items()},
                "next": None
                if pending is None
                else {
                    "step": pending.step,
                    "reason": pending.reason,
                    "ready_at": _when(pending.ready_at) if pending.ready_at else None,
                },
                "complete": state.next_step() is None,
            }
        )
        return
    click.echo(f"rotation {state.old_kid} -> {state.new_kid} (state: {path})")
    for step in STEPS:
        if step in state.done:
            click.echo(f"  done     {step:<10} {_when(state.done[step])}")
        elif pending is not None and step == pending.step:
            click.echo(f"  waiting  {step:<10} {pending.reason}")
        else:
            click.echo(f"  to do    {step}")
    if state.next_step() is None:
        click.echo(f"complete: {state.new_kid} signs; {state.old_kid} is no longer published")
        click.echo(f"the old key file {state.old_key} can be destroyed")
    elif pending is not None and pending.ready_at is not None:
        click.echo(f"next: run `{rerun}` after {_when(pending.ready_at)} (or pass --wait)")
    elif pending is not None:
        click.echo(f"next: do the above, then run `{rerun}` again")
    else:
        click.echo(f"stopped after --until; run `{rerun}` to go on")
