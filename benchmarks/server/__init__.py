"""The parts of the token-endpoint benchmark (driven by :mod:`benchmarks.bench_server`).

* :mod:`.interpreter`: which CPython the pkjwt servers run on (a venv per interpreter).
* :mod:`.processes`: the servers under test as child processes (pkjwt serve, oidc-provider).
* :mod:`.assertions`: the unique pre-signed request bodies, and the sanity check per server.
* :mod:`.cpu`: CPU placement (wrk and the server on their own CPUs) and how busy they were.
* :mod:`.rounds`: one warmup + timed wrk run against one server, and its retries.
* :mod:`.report`: medians over rounds, the tables and the targets.

Not named ``bench_*``: ``python -m benchmarks`` runs only the ``bench_*`` modules.
"""
