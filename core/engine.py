"""The facade the CLI and the desktop app call: `Engine(settings)`.

An Engine owns one app database, one Huey queue, one SMTP connection pool and the
data directory's secret key. It is safe to use from several threads: every call
opens its own session. Read models come back as frozen dataclasses (queries.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable

from core import outbox, queries
from core.db import Database, now_ts
from core.delivery import (
    MailSender,
    MessageBuildError,
    OutgoingEmail,
    SendResult,
    SmtpSender,
    build_message,
)
from core.identity import key_for, wire_parts
from core.models import RETRYING
from core.outbox import ClaimedRow
from core.passwords import make_hasher
from core.queries import (
    ActivationResult,
    AttemptView,
    OutboxView,
    QueueStats,
    RegistrationResult,
    ResendResult,
    SignupPath,
    UserView,
)
from core.queue import DeliveryQueue
from core.registration import Registration
from core.settings import DeliveryMode, Settings
from core.tokens import activation_link, derive_token, load_or_create_secret
from core.watch import ChangeWatcher, SqliteChangeWatcher
from core.worker import DEFAULT_WORKERS, Worker, run_blocking

__all__ = ["DEFAULT_WORKERS", "ChangeWatcher", "Engine", "Worker"]

log = logging.getLogger(__name__)


class Engine:
    """Registration, delivery and the read models over one data directory."""

    def __init__(self, settings: Settings, *, sender: MailSender | None = None) -> None:
        """Open (or create) the data directory's databases and queue.

        `sender` replaces SMTP delivery (for example with delivery.MemorySender).
        """
        self.settings = settings
        # Private when we create it: it holds password hashes and the token secret.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secret = load_or_create_secret(settings.data_dir)
        self.db = Database(settings.app_database_url)
        self.db.create_schema()
        # Names this Engine in claims and heartbeats (see outbox.release_expired_leases).
        self.instance_id = uuid.uuid4().hex
        self.queue = DeliveryQueue(settings, self._deliver_from_queue)
        self.sender: MailSender = sender or SmtpSender(
            settings.smtp_host, settings.smtp_port, settings.smtp_timeout
        )
        self.hasher = make_hasher(settings)
        self._registration = Registration(
            db=self.db,
            settings=settings,
            hasher=self.hasher,
            secret=self.secret,
            enqueue=self._enqueue,
            deliver_now=self.deliver,
        )
        # Set after each enqueue: wakes this process's idle worker threads at once.
        self._wake = threading.Event()
        self._workers: list[Worker] = []
        self._workers_lock = threading.Lock()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop any embedded workers, close SMTP connections and database connections."""
        if self._closed:
            return
        self._closed = True
        with self._workers_lock:
            workers = list(self._workers)
        for w in workers:
            w.stop()
        self.sender.close()
        self.queue.close()
        self.db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- use cases ---------------------------------------------------------------------

    def register(
        self,
        email: str,
        password: str,
        display_name: str = "",
        *,
        delivery: DeliveryMode | None = None,
    ) -> RegistrationResult:
        """Sign someone up: one transaction, then enqueue (or deliver inline with "sync")."""
        return self._registration.register(email, password, display_name, delivery=delivery)

    def activate(self, token_or_link: str) -> ActivationResult:
        """Activate with a token or the whole activation link."""
        return self._registration.activate(token_or_link)

    def resend(self, email: str) -> ResendResult:
        """Queue a fresh activation email (RateLimited when asked too often)."""
        return self._registration.resend(email)

    def retry(self, outbox_ids: Iterable[int]) -> list[int]:
        """Retry by hand; returns the ids actually retried.

        A `failed` row goes back to `queued` with a fresh budget of attempts. A
        `retrying` row is sent now: its next attempt is made due at once, its
        attempt count and budget are kept. Other ids (sent, queued, sending, or
        unknown) are skipped; explain_not_retried(id) says why.
        """
        return self._requeue(list(outbox_ids), send_now=True)

    def retry_failed(self) -> list[int]:
        """Retry every failed row (retrying rows keep their schedule)."""
        return self._requeue(outbox.failed_ids(self.db), send_now=False)

    def explain_not_retried(self, outbox_id: int) -> str | None:
        """Why retry() would not take this id, as a phrase; None if it would (failed, retrying)."""
        row = self.get_outbox(outbox_id)
        return outbox.not_retried_reason(row.status if row is not None else None)

    def _requeue(self, ids: list[int], *, send_now: bool) -> list[int]:
        # `ids` is a list: the transaction may run again.
        moved = self.db.run_locked_retry(
            lambda: outbox.requeue(self.db, ids, self.settings.retry, send_now=send_now)
        )
        for outbox_id in moved:
            self._enqueue_quietly(outbox_id)
        return moved

    def sweep(self) -> int:
        """Re-enqueue rows left behind: lost enqueues, overdue retries, expired leases."""
        stale_after = 3 * self.settings.heartbeat_seconds
        released = self.db.run_locked_retry(
            lambda: outbox.release_expired_leases(self.db, stale_after)
        )
        stranded = outbox.stranded_ids(self.db, self.settings.sweep_grace_seconds)
        candidates = list(dict.fromkeys(released + stranded))
        if not candidates:
            return 0
        waiting = self.queue.outbox_ids_waiting()
        forced = set(released)
        todo = [i for i in candidates if i in forced or i not in waiting]
        for outbox_id in todo:
            self._enqueue(outbox_id)
        self.db.run_locked_retry(lambda: outbox.touch(self.db, todo))
        return len(todo)

    def deliver(self, outbox_id: int) -> None:
        """Claim one outbox row, send it, record the attempt (the body of the Huey task)."""
        self._deliver(outbox_id, claimed_by=None)

    def _deliver_from_queue(self, outbox_id: int) -> None:
        # Only a running worker beats a heartbeat, so only then may the claim name us.
        with self._workers_lock:
            running = bool(self._workers)
        self._deliver(outbox_id, claimed_by=self.instance_id if running else None)

    def _deliver(self, outbox_id: int, claimed_by: str | None) -> None:
        row = self.db.run_locked_retry(
            lambda: outbox.claim(self.db, outbox_id, self.settings.lease_seconds, claimed_by)
        )
        if row is None:
            return
        started = now_ts()
        t0 = time.perf_counter()
        try:
            rendered = build_message(self._outgoing(row))
        except MessageBuildError as exc:
            result = SendResult("failed", None, "", str(exc))
        else:
            try:
                result = self.sender.send(rendered)
            except Exception as exc:  # a bug must not leave the row `sending` until its lease ends
                log.exception("sending outbox %s failed unexpectedly", outbox_id)
                result = SendResult("retry", None, "", f"internal error: {exc!r}")
        duration_ms = (time.perf_counter() - t0) * 1000.0
        finished = self.db.run_locked_retry(
            lambda: outbox.finish_attempt(
                self.db, row, started, duration_ms, result, self.settings.retry
            )
        )
        if finished.applied and finished.status == RETRYING and finished.delay is not None:
            try:
                self.queue.schedule(outbox_id, finished.delay)
            except Exception:
                log.exception("could not schedule retry of %s; the sweeper will", outbox_id)

    def _outgoing(self, row: ClaimedRow) -> OutgoingEmail:
        try:
            local, ascii_domain = wire_parts(row.to_addr)
        except ValueError as exc:
            raise MessageBuildError(f"recipient address is not valid: {exc}") from exc
        link = None
        if row.token_nonce is not None:
            token = derive_token(self.secret, row.user_id, row.to_addr, row.token_nonce)
            link = activation_link(self.settings.activation_base_url, token)
        return OutgoingEmail(
            outbox_id=row.id,
            kind=row.kind,
            sender=self.settings.sender,
            to_local=local,
            to_domain=ascii_domain,
            to_name=row.to_name,
            subject=row.subject,
            message_id=row.message_id,
            link=link,
            ttl_hours=self.settings.token_ttl_seconds / 3600.0,
            display_address=row.to_addr,
        )

    def _enqueue(self, outbox_id: int) -> None:
        self.queue.enqueue(outbox_id)
        self._wake.set()

    def _enqueue_quietly(self, outbox_id: int) -> None:
        try:
            self._enqueue(outbox_id)
        except Exception:
            log.exception("enqueue of %s failed; the sweeper will pick it up", outbox_id)

    # -- running the queue -------------------------------------------------------------

    def start_worker(self, workers: int = DEFAULT_WORKERS) -> Worker:
        """Start an embedded consumer (threads) with heartbeat and sweeper; stop it with .stop()."""
        worker = Worker(
            self.queue.huey,
            self.db,
            self.settings,
            self.sweep,
            workers=workers,
            on_stop=self._forget_worker,
            engine_id=self.instance_id,
            wake=self._wake,
        )
        with self._workers_lock:
            self._workers.append(worker)
        self.sender.reopen()
        return worker.start()

    def _forget_worker(self, worker: Worker) -> None:
        with self._workers_lock:
            if worker in self._workers:
                self._workers.remove(worker)
            last = not self._workers
        if last:
            self.sender.close()

    def run_worker(
        self, workers: int = DEFAULT_WORKERS, stop: threading.Event | None = None
    ) -> None:
        """Run a worker in this thread until SIGINT/SIGTERM or stop is set (the `mailroom
        worker` process)."""
        run_blocking(lambda: self.start_worker(workers), stop)

    # -- read models -------------------------------------------------------------------

    def list_users(
        self, *, limit: int | None = None, offset: int = 0, upto: int | None = None
    ) -> list[UserView]:
        """Users, newest first (with upto: ids up to it)."""
        return queries.list_users(self.db, limit, offset, upto)

    def count_users(self, *, upto: int | None = None) -> int:
        """Number of users (with upto: with an id up to it)."""
        return queries.count_users(self.db, upto)

    def count_outbox(self, *, status: str | None = None, upto: int | None = None) -> int:
        """Number of outbound emails (in a status; with upto: with an id up to it)."""
        return queries.count_outbox(self.db, status, upto)

    def get_user(self, user_id: int) -> UserView | None:
        """One user by id."""
        return queries.get_user(self.db, user_id)

    def find_user(self, email: str) -> UserView | None:
        """The user owning this address (case-folded, canonical domain), if any."""
        key = key_for(email)
        return queries.find_user_by_key(self.db, key) if key else None

    def list_outbox(
        self,
        *,
        status: str | None = None,
        user_id: int | None = None,
        limit: int | None = None,
        offset: int = 0,
        upto: int | None = None,
    ) -> list[OutboxView]:
        """Outbound emails, newest first (with upto: ids up to it)."""
        return queries.list_outbox(
            self.db, self.settings.token_ttl_seconds, status, user_id, limit, offset, upto
        )

    def get_outbox(self, outbox_id: int) -> OutboxView | None:
        """One outbound email."""
        return queries.get_outbox(self.db, outbox_id, self.settings.token_ttl_seconds)

    def list_attempts(self, outbox_id: int) -> list[AttemptView]:
        """Every attempt of one outbound email."""
        return queries.list_attempts(self.db, outbox_id)

    def list_attempts_since(self, after_id: int, limit: int = 500) -> list[AttemptView]:
        """Attempts newer than after_id, oldest first (works across processes)."""
        return queries.list_attempts_since(self.db, after_id, limit)

    def attempts_after(self, after_id: int) -> tuple[int, int]:
        """(number of attempts newer than after_id, the newest one's id or after_id)."""
        return queries.attempts_after(self.db, after_id)

    def get_signup_path(self, user_id: int) -> SignupPath | None:
        """User, timing, every outbound email and attempt, activation."""
        return queries.get_signup_path(self.db, user_id, self.settings.token_ttl_seconds)

    def queue_stats(self) -> QueueStats:
        """Queue depth, outbox counts by status, live workers (by heartbeat)."""
        by_status = queries.outbox_counts(self.db)
        alive, threads = queries.live_workers(
            self.db, now_ts(), 3 * self.settings.heartbeat_seconds
        )
        return QueueStats(
            pending_tasks=self.queue.pending_count(),
            by_status=by_status,
            workers_alive=alive,
            scheduled_tasks=self.queue.scheduled_count(),
            worker_threads=threads,
            by_status_total=sum(by_status.values()),
        )

    def change_watcher(self) -> ChangeWatcher:
        """A cheap cross-process change signal over the app and queue databases."""
        paths = [self.settings.queue_db_path]
        if self.db.is_sqlite and self.settings.database_url is None:
            paths.insert(0, self.settings.app_db_path)
        return SqliteChangeWatcher(paths)
