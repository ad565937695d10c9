"""An HSM/KMS that fails is not the server refusing us (issue 13): a failure that may pass
(timeout, throttling) is retried with the client's backoff and a fresh assertion, one that
will not (denied, wrong PIN) is raised at once as ``SignerUnavailable``, and neither sends
anything to the token endpoint."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pkjwt import SignerUnavailable, TokenClient, load_key
from pkjwt.keys import jwks
from pkjwt.retry import RetryPolicy
from pkjwt.server.config import parse_config
from pkjwt.server.run import run_in_thread
from pkjwt.signers import RemoteSigner
from pkjwt.signing import LocalSigner

ISSUER = "http://pkjwt.test"


class _Flaky(RemoteSigner):
    """A key in a custodian that fails the first ``failures`` calls."""

    def __init__(self, failures: int, *, retryable: bool) -> None:
        self._local = load_key(ec.generate_private_key(ec.SECP256R1()), kid="hsm-1")
        super().__init__(self._local.public(), kid="hsm-1")
        self.failures, self.retryable, self.calls = failures, retryable, 0

    def _sign(self, alg: str, data: bytes) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise SignerUnavailable("hsm busy", retryable=self.retryable)
        return LocalSigner(self._local, alg).sign(data)


@pytest.fixture
def server_for():
    def start(signer: _Flaky):
        config = parse_config(
            {
                "issuer": ISSUER,
                "replay_store": "memory://",
                "clients": [{"client_id": "c1", "jwks": jwks([signer.public_key()])}],
            }
        )
        return run_in_thread(config)

    return start


def _client(server, signer: _Flaky) -> TokenClient:
    return TokenClient(
        token_url=server.base_url + "/oauth2/token", audience=ISSUER, client_id="c1",
        key=signer, profile="rfc7523bis", retry=RetryPolicy(base=0.01),
        sleep=lambda s: None,
    )  # fmt: skip


def test_a_failure_that_may_pass_is_retried_with_a_fresh_assertion(server_for) -> None:
    signer = _Flaky(2, retryable=True)
    with server_for(signer) as server:
        assert _client(server, signer).get_token().access_token
        assert signer.calls == 3
        assert len(server.state.log.requests) == 1  # the server saw only the good one


def test_a_refusal_by_the_custodian_is_raised_at_once_and_sends_nothing(server_for) -> None:
    signer = _Flaky(5, retryable=False)
    with server_for(signer) as server:
        with pytest.raises(SignerUnavailable, match="hsm busy"):
            _client(server, signer).get_token()
        assert signer.calls == 1
        assert len(server.state.log.requests) == 0
