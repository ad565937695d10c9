"""The parts of the token-client benchmark (driven by :mod:`benchmarks.bench_client`).

* :mod:`.clients`: the key, pkjwt and Authlib configured as documented, the run sizes.
* :mod:`.cold`: (a) cold token fetch, new and reused client.
* :mod:`.overhead`: (b) per-request overhead of attaching a cached token.
* :mod:`.storm`: (c) token requests caused by a burst just after expiry.
* :mod:`.latency`: (d) request latency across token expiry.

Not named ``bench_*``: ``python -m benchmarks`` runs only the ``bench_*`` modules.
"""
