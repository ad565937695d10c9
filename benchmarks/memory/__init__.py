"""The parts of the memory benchmark (driven by :mod:`benchmarks.bench_memory`).

* :mod:`.baseline`: the structures the compact index replaced (the replay stores' ``ExpiringSet``
  and the token issuer's ``dict``), kept here as the measured baseline.
* :mod:`.child`: one measurement in a fresh process (RSS is per process): build a store, reload
  it, fill a token table; prints its result as JSON.
* :mod:`.peradd`: the cost of one replay-store add, old and new side by side.

Not named ``bench_*``: ``python -m benchmarks`` runs only the ``bench_*`` modules.
"""
