"""The local authorization server (``pkjwt serve``): validates assertions exactly as the rule
table and the profiles say, for development and CI.

The names below are imported on first use, so that the framework-free parts (the dialects, the
replay stores, the config) can be used without loading the ASGI stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import ClientConfig, ServerConfig, load_config

__all__ = ["ClientConfig", "ServerConfig", "create_app", "load_config"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("ClientConfig", "ServerConfig", "load_config"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'pkjwt.server' has no attribute {name!r}")
