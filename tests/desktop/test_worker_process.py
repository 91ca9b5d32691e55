"""serve's worker process: a child that keeps dying young is restarted ever more slowly."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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


def test_one_catcher_per_data_folder_but_a_watcher_may_join(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """A second runtime that would catch on the same folder is refused, naming the first;
    one that only watches (no catcher, no worker) starts beside it."""
    from desktop.runtime import Runtime, StartupError

    def settings() -> Settings:
        return Settings(data_dir=tmp_path, smtp_port=free_port(), http_port=free_port())

    first = Runtime(settings(), run_worker=False)
    first.start()
    try:
        second = Runtime(settings(), run_worker=False)
        with pytest.raises(StartupError, match=str(first.settings.smtp_port)):
            second.start()
        second.close()
        watcher = Runtime(settings(), run_catcher=False, run_worker=False)
        watcher.start()
        watcher.close()
    finally:
        first.close()


def test_a_watcher_leaves_the_folder_s_activation_links_to_its_catcher(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """A window that only watches beside `serve` answers links on its own port but does not
    write (nor, when it stops, remove) the address other commands put in new links."""
    from desktop.runtime import HTTP_URL_FILE, Runtime

    def settings() -> Settings:
        return Settings(data_dir=tmp_path, smtp_port=free_port(), http_port=free_port())

    serve = Runtime(settings(), run_worker=False)
    serve.start()
    try:
        links = (tmp_path / HTTP_URL_FILE).read_text().strip()
        assert links == serve.settings.activation_base_url
        watcher = Runtime(settings(), run_catcher=False, run_worker=False)
        watcher.start()
        assert (tmp_path / HTTP_URL_FILE).read_text().strip() == links
        watcher.close()
        assert (tmp_path / HTTP_URL_FILE).read_text().strip() == links
    finally:
        serve.close()
    alone = Runtime(settings(), run_catcher=False, run_worker=False)  # no catcher running
    alone.start()
    try:
        assert (tmp_path / HTTP_URL_FILE).read_text().strip() == alone.settings.activation_base_url
    finally:
        alone.close()
