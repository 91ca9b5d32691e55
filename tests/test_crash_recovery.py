"""Nothing is lost when the process that delivers mail is killed (issue: no lost email).

The real `mailroom serve` runs as a child process while it delivers a few hundred
activation emails; at random moments its worker process (which does the sending) is
killed with SIGKILL, alone (serve starts another) or together with serve itself (then
serve is started again). In the
end every user has exactly one `sent` activation email and at least one captured
message. A duplicate capture can only come from a kill between the catcher's 250 reply
and the `sent` write; the test reports how many there were and checks each is marked.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from core.engine import Engine
from core.settings import Settings
from mailcatcher.store import MessageStore
from tests.desktop.cli_helpers import MailroomProcess, wait_for

USERS = 300
KILLS = 4


def _cheap_settings(data_dir: Path, smtp: int, http: int) -> Settings:
    return Settings(data_dir=data_dir, smtp_port=smtp, http_port=http, argon2_time_cost=1,
                    argon2_memory_cost=1024, argon2_parallelism=1)


def _serve(data_dir: Path, smtp: int, http: int) -> MailroomProcess:
    proc = MailroomProcess(["serve", "--data-dir", str(data_dir), "--smtp-port", str(smtp),
                            "--http-port", str(http), "--workers", "2"])
    proc.wait_for_line("Ctrl-C stops.")
    return proc


def _worker_pid(serve: MailroomProcess) -> int:
    """The pid of the newest worker process serve started."""
    def newest() -> int | None:
        found = [m.group(1) or m.group(2) for line in serve.lines if (m := re.search(
            r"in process (\d+)$|worker process (\d+) started", line))]
        return int(found[-1]) if found else None

    return int(wait_for(newest, timeout=30, what="serve's worker process"))


@pytest.mark.slow
def test_sigkill_during_delivery_loses_no_email(
    data_dir: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """After repeated SIGKILLs mid-delivery, every user has exactly one sent activation email
    and at least one captured copy; any duplicate capture is marked as a duplicate."""
    smtp, http = free_port(), free_port()
    engine = Engine(_cheap_settings(data_dir, smtp, http))
    rng = random.Random(20261203)
    try:
        addresses = [f"crash{i}@example.com" for i in range(USERS)]
        for address in addresses:
            engine.register(address, "password-123", "")
        kills = 0
        proc = _serve(data_dir, smtp, http)
        try:
            while kills < KILLS:
                before = engine.queue_stats().by_status.get("sent", 0)
                if before >= USERS:
                    break
                # Kill at a random moment once delivery is visibly under way.
                wait_for(lambda b=before: engine.queue_stats().by_status.get("sent", 0) > b,
                         timeout=60, what="delivery progress")
                time.sleep(rng.uniform(0.0, 0.3))
                worker = _worker_pid(proc)
                os.kill(worker, signal.SIGKILL)
                kills += 1
                if kills % 2:  # the worker alone: serve notices and starts another
                    proc.wait_for_line(f"worker process {worker} exited")
                else:  # the whole product
                    proc.kill()
                    proc = _serve(data_dir, smtp, http)
            wait_for(lambda: engine.queue_stats().by_status.get("sent", 0) == USERS,
                     timeout=120, interval=0.2, what="every email sent after the kills")
        finally:
            proc.terminate()
        outbox = engine.list_outbox()
        per_user = Counter(o.user_id for o in outbox if o.kind == "activation")
        assert set(per_user.values()) == {1}
        assert {o.status for o in outbox} == {"sent"}
        assert len(per_user) == USERS
        store = MessageStore(data_dir / "mail.db")
        try:
            messages = store.list_messages(limit=USERS * 3)
        finally:
            store.close()
        captured = Counter(rcpt for m in messages for rcpt in m.rcpt_to)
        assert set(captured) == set(addresses)
        duplicates = [m for m in messages if m.duplicate_of is not None]
        assert len(duplicates) == sum(captured.values()) - USERS
        print(f"\n{kills} kills, {len(messages)} captures for {USERS} emails, "
              f"{len(duplicates)} duplicate(s), each marked")
    finally:
        engine.close()
