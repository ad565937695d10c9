"""Attach tokens to HTTP clients: httpx (and httpx2 where installed) and requests."""
