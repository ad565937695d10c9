"""pkjwt call: an API request with the token attached (curl-like)."""

from __future__ import annotations

import sys
from typing import Any

import click
import httpx

from ..errors import TransportError
from ..integrations.httpx import HttpxAuth
from .client_options import build_client, client_options, settings_from


@click.command("call")
@click.argument("method")
@click.argument("url")
@client_options
@click.option("-d", "--data", help="Request body (use @FILE to read a file, @- for stdin).")
@click.option("-H", "--header", "headers", multiple=True, help="Extra header 'Name: value'.")
@click.option("-i", "--include", is_flag=True, help="Print the status line and headers.")
def command(
    method: str,
    url: str,
    data: str | None,
    headers: tuple[str, ...],
    include: bool,
    no_cache: bool,
    **kwargs: Any,
) -> None:
    """Call METHOD URL with a token (bearer, or DPoP-bound with --dpop); print the response body.

    Exit code 0 for 2xx/3xx responses, 1 otherwise. On a 401 the token is renewed once.
    With --dpop the token is DPoP-bound and every request carries a proof (resent once with
    the API's nonce when it asks for one).

    \b
    Example:
      pkjwt call GET https://int.api.service.nhs.uk/hello-world/hello/application -s int
      pkjwt call POST https://api.example.com/things -s dev -d @thing.json \\
          -H 'Content-Type: application/json'
    """
    settings = settings_from(kwargs)
    client = build_client(settings, cache=not no_cache)
    extra: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.UsageError(f"header {header!r} is not 'Name: value'")
        extra[name.strip()] = value.strip()
    body: bytes | None = None
    if data is not None:
        if data == "@-":
            body = sys.stdin.buffer.read()
        elif data.startswith("@"):
            try:
                with open(data[1:], "rb") as fh:
                    body = fh.read()
            except OSError as exc:
                raise click.UsageError(f"cannot read {data[1:]}: {exc.strerror}") from None
        else:
            body = data.encode()
    try:
        with httpx.Client(auth=HttpxAuth(client), timeout=settings.timeout or 30.0) as http:
            response = http.request(method.upper(), url, headers=extra, content=body)
    except httpx.ConnectError:
        raise TransportError(
            f"cannot connect to {url}", hint="check the URL, and that the API is running"
        ) from None
    except httpx.HTTPError as exc:
        raise TransportError(f"request to {url} failed: {type(exc).__name__}") from None
    finally:
        client.close()
    if include:
        click.echo(f"HTTP/1.1 {response.status_code} {response.reason_phrase}")
        for name, value in response.headers.items():
            click.echo(f"{name}: {value}")
        click.echo("")
    sys.stdout.buffer.write(response.content)
    textual = response.headers.get("content-type", "").startswith(("application/json", "text/"))
    if response.content and not response.content.endswith(b"\n") and textual:
        click.echo("")  # a shell prompt after JSON; binary bodies stay byte for byte
    sys.stdout.flush()
    if response.status_code >= 400:
        click.echo(f"HTTP {response.status_code} {response.reason_phrase}", err=True)
        sys.exit(1)
