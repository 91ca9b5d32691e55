"""The running product: engine, catcher, queue worker and HTTP port, wired together.

This is the one place where core and mailcatcher meet (besides SMTP): `mailroom serve`
and the desktop window both build a Runtime, start it, and stop it on the way out.
It holds no Qt: the window drives it from outside.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.engine import DEFAULT_WORKERS, Engine, Worker
from core.settings import Settings
from desktop.http_server import MailroomHTTPServer
from mailcatcher.server import CatcherServer
from mailcatcher.store import MessageStore

DEFAULT_SIZE_LIMIT = 50 * 1024 * 1024
# Queue worker threads when the window runs them in its own process: they share the
# interpreter lock with the window's thread, which must stay responsive while a bulk
# sign-up delivers; `serve` and `mailroom worker` run DEFAULT_WORKERS in a process of
# their own.
WINDOW_WORKERS = 4
# Where this data folder's activation links were last answered; read by `mailroom worker`
# and `mailroom register` so the links they write point at a running HTTP port.
HTTP_URL_FILE = "http.url"
# Where this data folder's catcher listens, for the same commands (host:port).
SMTP_ADDRESS_FILE = "smtp.address"


class StartupError(Exception):
    """A part of the runtime could not start; the message says which and why."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Which parts of the product this process runs."""

    run_catcher: bool = True
    run_worker: bool = True
    run_http: bool = True
    workers: int = DEFAULT_WORKERS
    smtp_bind_host: str | None = None  # default: the engine's smtp_host
    size_limit: int = DEFAULT_SIZE_LIMIT
    catcher_port: int | None = None  # default: the engine's smtp_port
    worker_process: bool = False  # the worker as a child process (`serve`) or threads here


def _check_port_free(what: str, host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                flag = what.lower()
                raise StartupError(
                    f"{what} port {host}:{port} is already in use (another Mailroom, Mailpit "
                    f"or MailHog?); choose another with --{flag}-port N or "
                    f"MAILROOM_{what}_PORT=N"
                ) from None
            raise StartupError(
                f"cannot listen for {what} on {host}:{port}: {exc.strerror}"
            ) from None


LOCK_FILE = "runtime.lock"


class FolderLock:
    """Says that one running catcher (`serve` or the window) owns a data folder.

    An advisory lock on a file in the folder (the OS drops it when the process ends, even
    killed); the file holds the owner's pid and addresses for the message a second one
    gets. Where there is no fcntl (Windows) it locks nothing.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._file: Any = None

    def acquire(self, describe: str) -> None:
        """Take the lock, or StartupError naming the running owner."""
        try:
            import fcntl
        except ImportError:
            return
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise StartupError(
                f"another Mailroom is running on the data folder {self.path.parent} "
                f"({owner}); stop it, or give this one another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, {describe}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None

    def held_elsewhere(self) -> bool:
        """True while another process (a running catcher) holds the lock."""
        try:
            import fcntl
        except ImportError:
            return False
        if self._file is not None or not self.path.exists():
            return False
        with open(self.path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


class WorkerProcess:
    """`mailroom worker` as a child process: an interpreter, a GIL and so a core of its own.

    `serve` runs its queue worker this way so that delivery and the catcher do not share
    one GIL (end to end about a quarter faster on two cores, see docs/benchmarks.md). The child
    stops when its standard input closes: when this process stops it, and also when
    this process dies, however it dies, so that no worker outlives its `serve`. If the
    child dies, `check()` starts another (the outbox's leases and sweeper recover what
    it was sending).
    """

    RESTART_DELAY = 1.0  # doubled after each child that dies within a minute, up to a minute
    MAX_RESTART_DELAY = 60.0

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self._died_at: float | None = None
        self._started_at = 0.0
        self.delay = self.RESTART_DELAY / 2  # the first early death waits RESTART_DELAY

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable, "-m", "desktop.cli", "worker", "--stop-when-stdin-closes",
            "--data-dir", str(s.data_dir), "--smtp-host", s.smtp_host,
            "--smtp-port", str(s.smtp_port), "--base-url", s.activation_base_url,
            "--workers", str(self.workers),
        ]

    def start(self) -> None:
        """Start the child; its errors go to this process's standard error."""
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()  # the pipe of a child that has died
        try:
            # A session of its own: Ctrl-C in the terminal reaches `serve` only, which then
            # stops the child itself (and does not mistake its exit for a crash).
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                env=os.environ.copy(), start_new_session=os.name == "posix",
            )
        except OSError as exc:
            raise StartupError(f"cannot start the worker process: {exc.strerror}") from None
        self._died_at = None
        self._started_at = time.monotonic()

    def check(self) -> str | None:
        """If the child has died, start another (after RESTART_DELAY); a line saying so."""
        if self.proc is None or self.proc.poll() is None:
            return None
        now = time.monotonic()
        if self._died_at is None:
            self._died_at = now
            # A child that keeps dying young (say it cannot import) is not restarted in a
            # tight loop: the wait doubles each time, and resets after a minute's life.
            lived = now - self._started_at
            self.delay = (self.RESTART_DELAY if lived >= self.MAX_RESTART_DELAY
                          else min(self.delay * 2, self.MAX_RESTART_DELAY))
            return (f"worker process {self.proc.pid} exited with code {self.proc.returncode}; "
                    f"starting another in {self.delay:g} s")
        if now - self._died_at < self.delay:
            return None
        self.start()
        return f"worker process {self.pid} started"

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the child to finish what it is sending and stop; kill it if it does not."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Runtime:
    """Engine + catcher + worker + HTTP port for one data folder."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_catcher: bool = True,
        run_worker: bool = True,
        run_http: bool = True,
        workers: int = DEFAULT_WORKERS,
        smtp_bind_host: str | None = None,
        catcher_port: int | None = None,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        worker_process: bool = False,
    ) -> None:
        self.settings = settings
        self.options = RuntimeOptions(
            run_catcher, run_worker, run_http, workers, smtp_bind_host, size_limit, catcher_port,
            worker_process,
        )
        self.engine = Engine(settings)
        self.store = MessageStore(settings.mail_db_path)
        self.catcher: CatcherServer | None = None
        self.http: MailroomHTTPServer | None = None
        self.worker: Worker | None = None
        self.worker_process: WorkerProcess | None = None
        self._remembered: dict[str, str] = {}
        self._lock = FolderLock(settings.data_dir)

    @property
    def smtp_address(self) -> tuple[str, int]:
        """Where the engine sends mail (the built-in catcher, unless it is off)."""
        return self.settings.smtp_host, self.settings.smtp_port

    @property
    def http_address(self) -> tuple[str, int] | None:
        return self.http.address if self.http else None

    @property
    def catcher_running(self) -> bool:
        return self.catcher is not None

    @property
    def worker_running(self) -> bool:
        return self.worker is not None or self.worker_process is not None

    def start(self) -> None:
        """Start every part that the options ask for; on failure, stop what started."""
        opts = self.options
        try:
            if opts.run_catcher:  # a window that only watches (--no-catcher) may join
                self._lock.acquire(self._describe())
            if opts.run_catcher:
                host = opts.smtp_bind_host or self.settings.smtp_host
                port = opts.catcher_port or self.settings.smtp_port
                _check_port_free("SMTP", host, port)
                self.catcher = CatcherServer(
                    self.store, host=host, port=port, size_limit=opts.size_limit
                )
                self.catcher.start()
                connect_host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(
                    host, host)
                self._remember(SMTP_ADDRESS_FILE, f"{connect_host}:{port}")
            if opts.run_http:
                host, port = self.settings.http_host, self.settings.http_port
                if self.catcher is not None and self.catcher.port == port:
                    raise StartupError(
                        f"the SMTP and HTTP ports must differ (both are {port}); "
                        "choose another with --http-port N or MAILROOM_HTTP_PORT=N"
                    )
                _check_port_free("HTTP", host, port)
                self.http = MailroomHTTPServer(self.engine, self.store, host, port)
                self.http.start()
                # The folder's links point where its catcher's process answers: a window
                # that only watches beside `serve` must not take them over.
                if opts.run_catcher or not self._lock.held_elsewhere():
                    self._remember(HTTP_URL_FILE, self.settings.activation_base_url)
            if opts.run_worker and opts.worker_process:
                self.worker_process = WorkerProcess(self.settings, opts.workers)
                self.worker_process.start()
            elif opts.run_worker:
                self.worker = self.engine.start_worker(opts.workers)
        except BaseException:
            self.stop()
            raise

    def _remember(self, name: str, value: str) -> None:
        """Write where a part listens into the data folder, for other commands to find."""
        try:
            (self.settings.data_dir / name).write_text(value + "\n", encoding="utf-8")
            self._remembered[name] = value
        except OSError:
            pass  # other processes then use the defaults; nothing else depends on it

    def _forget(self) -> None:
        """Remove what this runtime wrote, unless another process has written since."""
        for name, value in self._remembered.items():
            path = self.settings.data_dir / name
            try:
                if path.read_text(encoding="utf-8").strip() == value:
                    path.unlink()
            except OSError:
                pass
        self._remembered.clear()

    def stop(self) -> None:
        """Stop the parts in reverse order; safe to call twice."""
        if self.worker_process is not None:
            self.worker_process.stop()
            self.worker_process = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.catcher is not None:
            self.catcher.stop()
            self.catcher = None
        self._forget()
        self._lock.release()

    def _describe(self) -> str:
        """The addresses this runtime listens on, for a second one's error message."""
        opts, s = self.options, self.settings
        parts = []
        if opts.run_catcher:
            host, port = opts.smtp_bind_host or s.smtp_host, opts.catcher_port or s.smtp_port
            parts.append(f"SMTP {host}:{port}")
        if opts.run_http:
            parts.append(f"HTTP {s.http_host}:{s.http_port}")
        return ", ".join(parts)

    def close(self) -> None:
        """Stop everything and close the databases."""
        self.stop()
        self.engine.close()
        self.store.close()

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
