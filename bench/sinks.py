"""The SMTP servers the ingest benchmark compares, each run as a process of its own.

- ``BareSink``: bench.bare_server, aiosmtpd appending bytes to a list (the ceiling).
- ``MailroomSink``: bench.catcher_server, the real Mailroom catcher and store.
- ``MailDevSink``: MailDev 3 from the npm registry, installed into a temporary folder
  outside the repository (kept between runs), storing mail in a temporary
  ``--mail-directory``, both its ports bound to 127.0.0.1.

Each sink starts on a free loopback port, answers ``stored_count()`` (what it holds
durably, checked after a run) and stops cleanly.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    LOOPBACK,
    child_env,
    free_port,
    python_module_cmd,
    stop_process,
    wait_for_port,
    wait_until,
)

MAILDEV_SPEC = "maildev@3"
MAILDEV_DIR = Path(tempfile.gettempdir()) / "mailroom-bench-maildev"


class SinkUnavailable(Exception):
    """The sink cannot run on this machine (for example npm is missing); the text says why."""


class Sink:
    """A server under test, in its own process."""

    name = "sink"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.final_output = ""

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the SMTP listener."""
        return LOOPBACK, self.port

    def command(self) -> list[str]:
        """The command line that starts the server on self.port."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the process and wait until it accepts connections."""
        self.port = free_port()
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=child_env(), cwd=self.workdir,
        )
        wait_for_port(LOOPBACK, self.port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and keep what it printed."""
        if self.proc is not None:
            stop_process(self.proc)
            out = self.proc.stdout.read() if self.proc.stdout else ""
            if self.proc.stdout:
                self.proc.stdout.close()
            self.final_output = out or ""
            self.proc = None

    def stored_count(self) -> int:
        """How many messages the server holds (call after stop())."""
        raise NotImplementedError

    def __enter__(self) -> Sink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _count_from_output(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("messages "):
            return int(line.split()[1])
    raise RuntimeError(f"the server did not report its message count; it printed: {output!r}")


class BareSink(Sink):
    """aiosmtpd appending DATA to a list in memory."""

    name = "bare aiosmtpd"

    def command(self) -> list[str]:
        return python_module_cmd("bench.bare_server", "--port", str(self.port))

    def stored_count(self) -> int:
        return _count_from_output(self.final_output)


class MailroomSink(Sink):
    """The Mailroom catcher over its SQLite store."""

    name = "Mailroom catcher"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.data_dir = workdir / "mailroom-data"

    def command(self) -> list[str]:
        return python_module_cmd(
            "bench.catcher_server", "--data-dir", str(self.data_dir), "--port", str(self.port)
        )

    def stored_count(self) -> int:
        from mailcatcher.store import MessageStore

        with MessageStore(self.data_dir / "mail.db") as store:
            return store.count_messages()

    def search_count(self, word: str) -> int:
        """How many stored messages a full-text search for word finds."""
        from mailcatcher.store import MessageStore

        with MessageStore(self.data_dir / "mail.db") as store:
            return store.count_messages(search=word)


def maildev_binary() -> Path:
    """The maildev executable, installed from npm on first use; SinkUnavailable without npm."""
    binary = MAILDEV_DIR / "node_modules" / ".bin" / "maildev"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SinkUnavailable("npm/node not found: MailDev comparison skipped")
    MAILDEV_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(MAILDEV_DIR),
         MAILDEV_SPEC],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if proc.returncode != 0 or not binary.exists():
        raise SinkUnavailable(
            f"npm install {MAILDEV_SPEC} failed: {(proc.stderr or proc.stdout).strip()[:300]}"
        )
    return binary


def maildev_version() -> str:
    """The installed MailDev version, or an empty string."""
    import json

    pkg = MAILDEV_DIR / "node_modules" / "maildev" / "package.json"
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return ""


class MailDevSink(Sink):
    """MailDev 3 storing every message as a file in a temporary mail directory."""

    name = "MailDev 3"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.mail_dir = workdir / "maildev-mail"
        self.binary = maildev_binary()

    def command(self) -> list[str]:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        web_port = free_port()
        return [
            str(self.binary), "--ip", LOOPBACK, "--smtp", str(self.port),
            "--web-ip", LOOPBACK, "--web", str(web_port),
            "--mail-directory", str(self.mail_dir), "--silent",
        ]

    def _files(self) -> int:
        return sum(1 for p in self.mail_dir.iterdir() if p.suffix == ".eml")

    def stored_count(self) -> int:
        return self._files()

    def wait_stored(self, expected: int, timeout: float = 30.0) -> int:
        """Wait (bounded) until MailDev's directory holds expected files; return the count."""
        try:
            wait_until(lambda: self._files() >= expected, timeout, interval=0.1,
                       what="MailDev to write its files")
        except TimeoutError:
            pass
        return self._files()


SINKS: dict[str, type[Sink]] = {"bare": BareSink, "maildev": MailDevSink, "mailroom": MailroomSink}


def make_sink(kind: str, workdir: Path) -> Sink:
    """A new, not yet started sink of the given kind ("bare", "maildev", "mailroom")."""
    return SINKS[kind](workdir)


def describe(sink: Any) -> str:
    """The sink's display name."""
    return str(getattr(sink, "name", type(sink).__name__))
