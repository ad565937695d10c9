"""The attacks reuse the server tests' fixtures (running servers, keys, request helpers)."""

from server.conftest import *  # noqa: F403
