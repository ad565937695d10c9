"""The local authorization server (``pkjwt serve``): validates assertions exactly as the rule
table and the profiles say, for development and CI."""

from .app import create_app
from .config import ClientConfig, ServerConfig, load_config

__all__ = ["ClientConfig", "ServerConfig", "create_app", "load_config"]
