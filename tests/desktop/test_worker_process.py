"""serve's worker process: a child that keeps dying young is restarted ever more slowly."""

from __future__ import annotations

import sys
from pathlib import Path

from core.settings import Settings
from desktop.runtime import WorkerProcess
from tests.waiting import wait_until


class _Failing(WorkerProcess):
    """A worker process whose child exits at once with status 3."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", "import sys; sys.exit(3)"]


def _next_news(child: WorkerProcess) -> str:
    found: list[str] = []

    def news() -> bool:
        line = child.check()
        if line:
            found.append(line)
        return bool(found)

    wait_until(news, 20, "news from the worker process")
    return found[0]


def test_a_child_that_dies_young_is_restarted_after_a_doubling_wait(tmp_path: Path) -> None:
    """Each early death is reported with the wait before the next start: 1 s, then 2 s."""
    child = _Failing(Settings(data_dir=tmp_path), workers=1)
    child.start()
    try:
        assert _next_news(child).endswith("exited with code 3; starting another in 1 s")
        assert _next_news(child).endswith("started")
        assert _next_news(child).endswith("exited with code 3; starting another in 2 s")
    finally:
        child.stop()
