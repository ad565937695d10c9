"""The OpenAPI document of the server's endpoints (a test holds it to the routes)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "message_id": {"type": "string"},
    },
}
_FORM_TOKEN = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_assertion_type": {
            "type": "string",
            "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
        },
        "client_assertion": {"type": "string", "description": "signed JWT (RFC 7523)"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
        "scope": {"type": "string"},
        "resource": {"type": "string", "format": "uri"},
    },
}
_FORM_TOKEN_PARAM = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string"},
        "token_type_hint": {"type": "string"},
        "client_assertion_type": {"type": "string"},
        "client_assertion": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    },
}


def _form(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": schema}},
    }


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def openapi_document(issuer: str, *, expires_in_type: str = "integer") -> dict[str, Any]:
    token_ok = {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string"},
            "expires_in": {"type": expires_in_type},
            "scope": {"type": "string"},
            "issued_at": {"type": "string"},
        },
    }
    error = _json("OAuth error", _ERROR)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pkjwt local authorization server",
            "version": "1",
            "description": "Client credentials with private_key_jwt (RFC 7523).",
        },
        "servers": [{"url": issuer}],
        "paths": {
            "/oauth2/token": {
                "post": {
                    "summary": "Token endpoint (RFC 6749 4.4, RFC 7523)",
                    "requestBody": _form(_FORM_TOKEN),
                    "responses": {
                        "200": _json("Access token", token_ok),
                        "400": error,
                        "401": error,
                        "403": error,
                        "415": error,
                    },
                }
            },
            "/.well-known/oauth-authorization-server": {
                "get": {"summary": "RFC 8414 metadata", "responses": {"200": _json("Metadata")}}
            },
            "/.well-known/openid-configuration": {
                "get": {"summary": "OIDC discovery", "responses": {"200": _json("Metadata")}}
            },
            "/jwks": {
                "get": {"summary": "The server's public keys", "responses": {"200": _json("JWKS")}}
            },
            "/introspect": {
                "post": {
                    "summary": "Token introspection (RFC 7662)",
                    "requestBody": _form(_FORM_TOKEN_PARAM),
                    "responses": {"200": _json("Introspection"), "400": error, "401": error},
                }
            },
            "/revoke": {
                "post": {
                    "summary": "Token revocation (RFC 7009)",
                    "requestBody": _form(_FORM_TOKEN_PARAM),
                    "responses": {"200": {"description": "Revoked"}, "400": error, "401": error},
                }
            },
            "/echo": {
                "get": {
                    "summary": "Protected echo API (needs a token from this server)",
                    "security": [{"bearer": []}],
                    "responses": {"200": _json("Echo"), "401": error},
                },
                "post": {
                    "summary": "Protected echo API (needs a token from this server)",
                    "security": [{"bearer": []}],
                    "responses": {"200": _json("Echo"), "401": error},
                },
            },
            "/health": {"get": {"summary": "Health", "responses": {"200": _json("Healthy")}}},
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": _json("OpenAPI")}}
            },
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _page(summary: str, media_type: str) -> dict[str, Any]:
    """A GET that answers a document that is not JSON."""
    content = {media_type: {"schema": {"type": "string"}}}
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": summary, "content": content}},
        }
    }


def observation_paths(*, metrics: bool, inspector: bool) -> dict[str, Any]:
    """The paths a server serves when its metrics and inspector are on."""
    paths: dict[str, Any] = {}
    if metrics:
        paths["/metrics"] = _page("Prometheus metrics of this process (0.0.4)", "text/plain")
    if inspector:
        paths["/_inspect"] = _page("Recent token requests, rule by rule", "text/html")
    return paths
