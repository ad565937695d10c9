"""Helpers for the observability tests (metrics, the JSON request log, the inspector): a small
server config, token requests that pass or fail a chosen rule, and a parser for the Prometheus
text format."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from pkjwt.forge import sign
from pkjwt.keys import Key, jwks
from pkjwt.server.config import ServerConfig, parse_config

from .conftest import JWT_BEARER, apply

CLIENT = "c1"
SECRET_CLIENT = "s1"
#: a client secret the tests look for in logs and pages (it must never be there)
SECRET = "s3cret-never-logged-0123456789"


def config(key: Key, **extra: Any) -> ServerConfig:
    return parse_config(
        {
            "replay_store": "memory://",
            "clients": [
                {"client_id": CLIENT, "jwks": json.dumps(jwks([key.public()]))},
                {"client_id": SECRET_CLIENT, "client_secret": SECRET},
            ],
            **extra,
        }
    )


def assertion(key: Key, issuer: str, **overrides: Any) -> str:
    """A good rfc7523bis assertion for ``issuer``, or one with these claims changed."""
    now = int(time.time())
    claims = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": issuer,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": "client-authentication+jwt"}
    return sign(key, header, apply(claims, overrides))


def post_assertion(http: httpx.Client, issuer: str, signed: str) -> httpx.Response:
    return http.post(
        issuer + "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": signed,
        },
    )


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """Every sample of a text exposition (0.0.4): name, labels, value; fails on a bad line."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert not line or line.startswith(("# HELP ", "# TYPE ")), line
            continue
        match = _SAMPLE.match(line)
        assert match is not None, f"not a sample line: {line!r}"
        name, raw_labels, value = match.groups()
        labels: dict[str, str] = {}
        rest = raw_labels or ""
        while rest:
            label = _LABEL.match(rest)
            assert label is not None, f"bad labels in {line!r}"
            labels[label.group(1)] = label.group(2)
            rest = rest[label.end() :]
        yield name, labels, float(value)


def requests_total(text: str) -> dict[tuple[str, str, str, str], int]:
    """``pkjwt_server_requests_total`` by (endpoint, outcome, rule, error)."""
    out = {}
    for name, labels, value in samples(text):
        if name == "pkjwt_server_requests_total":
            key = (labels["endpoint"], labels["outcome"], labels["rule"], labels["error"])
            out[key] = int(value)
    return out
