"""Benchmarks for pkjwt (informational, never CI-gating).

Run them all, or some by name::

    uv run python -m benchmarks                      # every bench_* module
    uv run python -m benchmarks assertion --quick    # smoke run
    uv run python -m benchmarks --json benchmarks/results/assertion.json

Each ``bench_*`` module exposes ``run(quick: bool) -> dict`` (prints its own table, returns a
JSON-serialisable result) and ``main(argv) -> int`` for standalone use. Results written with
``--json`` are not meant to be committed (``benchmarks/results/`` is git-ignored).
"""
