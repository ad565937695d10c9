"""Benchmarks for pkjwt (informational, never CI-gating).

Run them all, or some by name::

    uv run python -m benchmarks                      # every bench_* module
    uv run python -m benchmarks assertion --quick    # smoke run
    uv run python -m benchmarks --json benchmarks/results/assertion.json

Each ``bench_*`` module exposes ``run(quick: bool) -> dict`` (prints its own table, returns a
JSON-serialisable result) and ``main(argv) -> int`` for standalone use. Results written with
``--json`` are not meant to be committed (``benchmarks/results/`` is git-ignored).

Layout: ``bench_assertion``, ``bench_client``, ``bench_server`` and ``bench_memory`` are the
benchmarks (each a driver: scenarios in, tables and JSON out); the parts of the larger ones live
in the ``client/``, ``server/`` and ``memory/`` subpackages (one module per job); ``common``
holds what they share (interleaved timing, tables, versions, JSON); ``loadgen`` (wrk) and
``tokenserver`` (a loopback token server) are the load generator and the server the client
benchmark talks to; ``profile_server`` explains ``bench_server``'s numbers and is not a
benchmark.
"""
