"""Work run on the window's thread pool reuses its threads' database connections.

A Qt pool thread gets a new Python thread state for every job it runs, so anything kept
in a threading.local is new for every job: connections kept that way piled up, one or
two per query or sign-up (the window grew by gigabytes over a few thousand sign-ups).
"""

from __future__ import annotations

from typing import Any

from desktop.tasks import TaskRunner
from tests.desktop.conftest import PASSWORD


def _run_jobs(qtbot: Any, runner: TaskRunner, jobs: list[Any]) -> None:
    done: list[object] = []
    for job in jobs:
        runner.submit(job, done.append)
    qtbot.waitUntil(lambda: len(done) == len(jobs), timeout=30000)


def test_pool_jobs_reuse_their_threads_connections(qtbot: Any, runtime: Any) -> None:
    """200 store queries and 40 sign-ups on a 4-thread pool open a connection per thread,
    not one per job."""
    runner = TaskRunner(max_threads=4)
    try:
        store, engine = runtime.store, runtime.engine
        _run_jobs(qtbot, runner, [store.count_messages for _ in range(200)])
        _run_jobs(qtbot, runner, [
            lambda i=i: engine.register(f"pool{i}@example.com", PASSWORD) for i in range(40)
        ])
        assert len(store._conns) <= 4 + 4  # the pool's, and the runtime's own threads
        assert len(engine.db._fast_conns) <= 4 + 4
    finally:
        runner.shutdown()
