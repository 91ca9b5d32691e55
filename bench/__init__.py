"""Mailroom's benchmarks (issue 6): sign-up latency, delivery throughput, catcher ingest,
inbox at scale.

Each benchmark is a module with a ``run(config) -> dict`` function that prints a table and
returns a JSON-ready result; ``python -m bench.run_all`` runs them all (``--quick`` for a
tiny size) and writes one JSON file per benchmark.
"""
