"""The Huey instance and its one task, `deliver(outbox_id)`.

Each Engine builds its own Huey on ``settings.queue_db_path`` (SqliteHuey, its own
file) and registers the task under a fixed name, so a task enqueued by one process
(the CLI, the GUI) is run by another (``mailroom worker``). Tasks carry only the
outbox id; the task body opens its own sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huey import Huey
from huey.storage import SqliteStorage

from core.settings import Settings

QUEUE_NAME = "mailroom"
DELIVER_TASK_NAME = "deliver"


class _QueueStorage(SqliteStorage):  # type: ignore[misc]
    """Huey's SQLite storage with synchronous=NORMAL (WAL): durable across a killed
    process, without an fsync on every enqueue and dequeue (FULL costs ~0.3 ms each)."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class _OutboxHuey(Huey):  # type: ignore[misc]
    """Huey without task revocation, which Mailroom never uses.

    Whether a delivery task does anything is decided by its outbox row (a task whose
    row is not claimable does nothing), so nothing ever revokes one. Huey would still
    look up two revocation keys before every task and delete one after it: a read and a
    write transaction of the queue database per email, about a fifth of the queue's
    cost per task. Revoking raises instead of being silently ignored.
    """

    def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> Any:
        if key.startswith("r:"):  # a task's revocation flag: never set, see above
            return None
        return super().delete(key)

    def revoke(self, *_args: Any, **_kwargs: Any) -> None:
        raise NotImplementedError(
            "Mailroom does not revoke delivery tasks; change the outbox row instead"
        )

    revoke_all = revoke_by_id = revoke


class DeliveryQueue:
    """The Huey queue of delivery tasks for one data directory."""

    def __init__(self, settings: Settings, deliver: Callable[[int], None]) -> None:
        settings.queue_db_path.parent.mkdir(parents=True, exist_ok=True)
        self.huey = _OutboxHuey(
            name=QUEUE_NAME,
            storage_class=_QueueStorage,
            filename=str(settings.queue_db_path),
            results=False,
            store_none=False,
            utc=True,
            timeout=5,
        )

        def deliver_task(outbox_id: int) -> None:
            deliver(outbox_id)

        deliver_task.__module__ = __name__
        deliver_task.__qualname__ = DELIVER_TASK_NAME
        self._task: Any = self.huey.task(name=DELIVER_TASK_NAME)(deliver_task)

    def enqueue(self, outbox_id: int) -> None:
        """Queue delivery of one outbox row now."""
        self._task(outbox_id)

    def schedule(self, outbox_id: int, delay: float) -> None:
        """Queue delivery of one outbox row after `delay` seconds."""
        self._task.schedule(args=(outbox_id,), delay=max(0.0, delay))

    def pending_count(self) -> int:
        """Tasks waiting in the queue (not counting scheduled ones)."""
        return int(self.huey.pending_count())

    def scheduled_count(self) -> int:
        """Tasks waiting for their time (retries with a delay)."""
        return int(self.huey.scheduled_count())

    def outbox_ids_waiting(self) -> set[int]:
        """Outbox ids that have a task waiting, queued or scheduled."""
        ids: set[int] = set()
        for task in list(self.huey.pending()) + list(self.huey.scheduled()):
            args = getattr(task, "args", None) or ()
            if args and isinstance(args[0], int):
                ids.add(args[0])
        return ids

    def flush(self) -> None:
        """Drop every waiting task (tests; the sweeper brings rows back)."""
        self.huey.storage.flush_queue()
        self.huey.storage.flush_schedule()

    def close(self) -> None:
        """Close the queue's database connection."""
        self.huey.storage.close()
