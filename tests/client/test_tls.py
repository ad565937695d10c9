"""TLS trust, as it fails at NHS suppliers: a certificate the client does not trust (a
self-signed development server, a TLS-inspecting proxy) is named as such, not "cannot
connect", and a CA bundle makes it work. A real HTTPS server on loopback."""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from certs import self_signed_loopback
from pkjwt import TokenClient, generate_key
from pkjwt.cli.main import cli
from pkjwt.errors import ConfigError, TransportError


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    return self_signed_loopback(tmp)


@pytest.fixture(scope="module")
def https_token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"access_token": "tls-ok", "token_type": "Bearer", "expires_in": 60})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/oauth2/token", cert
    server.shutdown()
    server.server_close()


KEY = generate_key("ES256", kid="k1")


def test_an_untrusted_certificate_is_named(https_token_server: tuple[str, Path]) -> None:
    url, _ = https_token_server
    client = TokenClient(token_url=url, client_id="c", key=KEY, profile="legacy")
    with pytest.raises(TransportError) as err:
        client.fetch_token()
    assert "certificate of 127.0.0.1 is not trusted" in err.value.message
    assert "self-signed" in err.value.message or "self signed" in err.value.message
    assert "--ca-bundle" in (err.value.hint or "")


def test_a_ca_bundle_makes_it_trusted(https_token_server: tuple[str, Path]) -> None:
    url, cert = https_token_server
    client = TokenClient(token_url=url, client_id="c", key=KEY, profile="legacy", ca_bundle=cert)
    assert client.fetch_token().access_token == "tls-ok"


def test_a_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        TokenClient(token_url="https://127.0.0.1/t", client_id="c", key=KEY,
                    ca_bundle=tmp_path / "nope.pem")  # fmt: skip
    assert "nope.pem" in err.value.message


def test_the_cli_takes_a_ca_bundle(
    https_token_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = https_token_server
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(KEY.private_pem())
    key_file.chmod(0o600)
    monkeypatch.setenv("PKJWT_CONFIG", str(tmp_path / "none.toml"))
    args = ["token", "--token-url", url, "--client-id", "c", "--key", str(key_file),
            "--profile", "legacy", "--no-cache"]  # fmt: skip
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2
    assert "is not trusted" in refused.stderr
    trusted = CliRunner().invoke(cli, [*args, "--ca-bundle", str(cert)])
    assert trusted.exit_code == 0, trusted.stderr
    assert trusted.stdout.strip() == "tls-ok"
