"""pkjwt serve: the local authorization server."""

from __future__ import annotations

import logging

import click

from ..server.config import load_config


@click.command("serve")
@click.option("--config", "config_path", required=True, help="Server config (TOML).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port (0: any free).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug", "trace"]),
    default="info",
    show_default=True,
    help="info: one line per token request with its outcome; warning: quiet.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes on one port (they need a shared replay store: SQLite commit_interval=0 or "
    "Redis).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (time, endpoint, status, client, error, description, "
    "rule); never an assertion, token or secret.",
)
@click.option(
    "--metrics/--no-metrics",
    default=None,
    help="Serve Prometheus metrics at /metrics (default: on, or the config's metrics = ...).",
)
@click.option(
    "--inspector/--no-inspector",
    default=None,
    help="Serve /_inspect: recent token requests with their claims and each rule's verdict. "
    "Default: on only when bound to a loopback address; another bind needs --inspector, "
    "because the page shows the claims clients send to anyone who can reach the port.",
)
def command(
    config_path: str,
    host: str,
    port: int,
    log_level: str,
    workers: int,
    log_format: str,
    metrics: bool | None,
    inspector: bool | None,
) -> None:
    """Run a local authorization server that validates assertions like the real ones.

    Binds loopback by default. Token endpoint at /oauth2/token; metadata at
    /.well-known/oauth-authorization-server; also /jwks, /introspect, /revoke, /echo (a
    protected test API), /health, /openapi.json, /metrics (Prometheus) and /_inspect (the
    recent token requests, rule by rule; loopback only unless --inspector).

    \b
    Example server.toml (NHS mode):
      profile = "nhs"
      [[clients]]
      client_id = "my-api-key"
      jwks_file = "jwks.json"
    Then:
      pkjwt serve --config server.toml --port 9000
    """
    from ..server.inspector import PATH, inspector_enabled
    from ..server.run import serve_forever  # the ASGI stack: the 'server' extra

    _log_to_stderr(log_level, log_format)
    config = load_config(config_path)
    metrics = config.metrics if metrics is None else metrics
    inspect = inspector_enabled(host, inspector)
    if not config.clients:
        click.echo(
            click.style("warning: ", fg="yellow")
            + f"{config_path} registers no [[clients]]: every token request will fail",
            err=True,
        )
    if host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(
            click.style("warning: ", fg="yellow")
            + f"binding {host}: this is a development server, not for production",
            err=True,
        )

    def announce(issuer: str, replay_store: str) -> None:
        click.echo(
            f"pkjwt serve: profile {config.profile.name}, {len(config.clients)} client(s)\n"
            f"  replay store    {replay_store}\n"
            f"  issuer          {issuer}\n"
            f"  token endpoint  {issuer}/oauth2/token\n"
            f"  metadata        {issuer}/.well-known/oauth-authorization-server"
            + (f"\n  metrics         {issuer}/metrics" if metrics else "")
            + (f"\n  inspector       {issuer}{PATH}" if inspect else ""),
            err=True,
        )

    serve_forever(
        config,
        host=host,
        port=port,
        log_level=log_level,
        announce=announce,
        workers=workers,
        metrics=metrics,
        inspect=inspect,
    )


def _log_to_stderr(level: str, log_format: str = "text") -> None:
    """One line per decided request at ``info`` (the default): in uvicorn's format, or as
    JSON."""
    logger = logging.getLogger("pkjwt")
    for old in [h for h in logger.handlers if h.get_name() == "pkjwt-serve"]:
        logger.removeHandler(old)  # a second run in one process (tests) replaces it
    handler = logging.StreamHandler()
    handler.set_name("pkjwt-serve")
    if log_format == "json":
        from ..server.recording import JsonLines

        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if level == "trace" else level.upper())
    logger.propagate = False
