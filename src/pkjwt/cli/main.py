"""Entry point: the command group and the one place errors become one clear line."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click

from .. import __version__
from ..errors import PkjwtError

_COMMANDS = (
    "keygen",
    "jwks",
    "rotate",
    "assertion",
    "doctor",
    "token",
    "call",
    "conformance",
    "serve",
    "demo",
)


class _Group(click.Group):
    """Loads commands lazily and turns every failure into one line on stderr, never a trace."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module = __import__(f"pkjwt.cli.{cmd_name}", fromlist=["command"])
        command: click.Command = module.command
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PkjwtError as exc:
            _error(exc.message, exc.hint)
            ctx.exit(2)
        except click.UsageError as exc:  # bad flags or arguments: the same format, exit 2
            sub = exc.ctx.command.name if exc.ctx is not None and exc.ctx.parent else None
            where = f"pkjwt {sub}" if sub else "pkjwt"
            _error(exc.format_message(), f"{where} --help shows the options")
            ctx.exit(2)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as exc:  # one error format, one exit code for every command
            _error(exc.format_message(), None)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            if os.environ.get("PKJWT_DEBUG"):
                raise
            click.echo(
                click.style("internal error: ", fg="red", bold=True)
                + f"{type(exc).__name__} (rerun with PKJWT_DEBUG=1 for details, and please "
                "report it)",
                err=True,
            )
            ctx.exit(70)


def _error(message: str, hint: str | None) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    if hint:
        click.echo(click.style("hint: ", fg="yellow") + hint, err=True)


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    click.echo(click.style("warning: ", fg="yellow") + str(message), err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pkjwt")
def cli() -> None:
    """pkjwt: OAuth 2.0 tokens with signed-JWT client authentication (private_key_jwt).

    \b
    Examples:
      pkjwt demo                                   # everything, end to end, offline
      pkjwt keygen --kid test-1 --out key.pem --jwks jwks.json
      pkjwt doctor "$JWT" --profile nhs --token-url https://int.api.service.nhs.uk/oauth2/token
    """
    warnings.showwarning = _show_warning


def main() -> None:
    cli(prog_name="pkjwt")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())  # type: ignore[func-returns-value]
