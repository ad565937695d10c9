"""The server's state: everything the endpoints share, built once at start."""

from __future__ import annotations

import importlib.metadata
import logging
from collections import deque
from collections.abc import Callable

from ..keys import Key
from .authentication import ClientAuthenticator
from .config import ServerConfig
from .dialects import Dialect, dialect_for
from .dpop import DPoPGate
from .issuing import TokenIssuer
from .jwks_fetch import JwksFetcher
from .jwks_files import JwksFiles
from .metrics import Metrics
from .recording import RecordedRequest, RequestLog
from .replay import ReplayGuard, ReplayStore, parse_replay_url

__all__ = ["TOKEN_PATH", "ServerState"]

TOKEN_PATH = "/oauth2/token"

log = logging.getLogger("pkjwt.server")


def _version() -> str:
    try:
        return importlib.metadata.version("pkjwt")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


class ServerState:
    """One server's parts, composed from its config: the dialect its profile names, the JWKS
    fetcher, the client authenticator (with the replay store), the token issuer, the request
    log and the metrics (None when off). Endpoints read ``request.app.state.pkjwt``; nothing
    here is global."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        issuer: str,
        replay: ReplayStore,
        clock: Callable[[], float],
        record: int,
        signing_key: Key | None = None,
        metrics: bool = False,
        bounded_record: bool = False,
    ) -> None:
        self.config = config
        self.issuer = issuer
        self.token_endpoint = issuer + TOKEN_PATH
        self.clock = clock
        self.replay = replay
        self.replay_guard = ReplayGuard(replay, timeout=config.replay_timeout)
        self.dialect: Dialect = dialect_for(config.profile)
        self.fetcher = JwksFetcher(
            allow_private=config.allow_private_jwks_uri,
            timeout=config.jwks_timeout,
            max_bytes=config.jwks_max_bytes,
            cache_bounds=config.jwks_cache_seconds,
        )
        self.jwks_files = JwksFiles(interval=config.jwks_file_check_seconds)
        for client in config.clients:  # all of them, so SIGHUP re-reads every file
            files = [(client.jwks_file, client.keys)]
            files += [(trust.jwks_file, trust.keys) for trust in client.federated]
            for path, keys in files:
                if path is not None and keys is not None:
                    self.jwks_files.watch(path, keys)
        self.auth = ClientAuthenticator(
            config,
            issuer=issuer,
            token_endpoint=self.token_endpoint,
            replay=self.replay_guard,
            fetcher=self.fetcher,
            jwks_files=self.jwks_files,
            clock=clock,
        )
        self.tokens = TokenIssuer(
            issuer=issuer,
            lifetime=config.token_lifetime,
            token_format=config.token_format,
            signing_alg=config.signing_alg,
            key=signing_key,
            clock=clock,
        )
        self.dpop = DPoPGate(config, replay=self.replay_guard, clock=clock)
        self.log = RequestLog(keep=record, clock=clock, bounded=bounded_record)
        self.metrics: Metrics | None = None
        if metrics:
            info = {
                "profile": config.profile.name,
                "replay_store": parse_replay_url(config.replay_store)[0],
                "version": _version(),
            }
            self.metrics = Metrics(replay=self.replay_guard, info=info)
        for client in config.clients:
            for name, why in client.keys.ignored if client.keys is not None else ():
                log.warning("client %s: JWKS member %s ignored (%s)", client.client_id, name, why)

    @property
    def requests(self) -> deque[RecordedRequest]:
        """The recorded requests, oldest first (``pkjwt.testing`` reads them)."""
        return self.log.requests

    async def aclose(self) -> None:
        await self.fetcher.aclose()
        await self.replay_guard.aclose()
