"""Controllers: the views emit what the user wants, these call core and mailcatcher.

Every call runs on the TaskRunner's pool; results come back as signals in the GUI
thread. The controllers keep no rows: the models are refreshed by the change
watcher (and nudged at once after a command, so the window answers immediately).
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal

from desktop.models.format import one_line
from desktop.models.message import MessageView
from desktop.models.outbox import reply_text
from desktop.tasks import TaskRunner
from mailcatcher.parsing import get_inline_parts, parse_message


class Services(Protocol):
    """What the window needs of `desktop.runtime.Runtime`."""

    engine: Any
    store: Any

    @property
    def smtp_address(self) -> tuple[str, int]: ...

    @property
    def http_address(self) -> tuple[str, int] | None: ...

    @property
    def catcher_running(self) -> bool: ...

    @property
    def worker_running(self) -> bool: ...


_ACTIVATION_LINK_RE = re.compile(r"https?://[^\s<>\"']+/activate/[^\s<>\"']+")


def find_activation_link(text: str) -> str:
    """The first activation link (`…/activate/<token>`) in an email's text, or ""."""
    match = _ACTIVATION_LINK_RE.search(text)
    return match.group(0) if match else ""


def generate_password(length: int = 16) -> str:
    """A random password of letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def error_text(exc: object) -> str:
    """One line for the user: the engine's errors already say 'field: message'."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class BulkResult:
    """The outcome of "sign up N test users"."""

    requested: int
    succeeded: int
    failed: int
    seconds: float
    elapsed_ms: tuple[float, ...]
    first_error: str = ""
    stopped: bool = False  # the user stopped it before all were signed up


@dataclass(frozen=True)
class SignupOutcome:
    """A sign-up's answer, plus where its email stands right after it (inline delivery).

    `outbox` is the engine's `OutboxView` of `result.outbox_id` read after an inline
    (sync) sign-up returned, so the window can say whether the inline attempt was
    accepted, or failed and will be retried; None for queued sign-ups and when no email
    was queued.
    """

    result: Any  # core RegistrationResult
    outbox: Any | None = None  # core OutboxView


def inline_outcome(outbox: Any) -> str:
    """How an inline delivery went, from the email's state after it: a short phrase."""
    reply = reply_text(outbox.last_code, outbox.last_error)
    if outbox.status == "sent":
        return "sent inline"
    if outbox.status == "retrying":
        return f"inline attempt failed: {reply or 'no reply'}; will retry"
    if outbox.status == "failed":
        return f"inline attempt failed: {reply or 'no reply'}; not retried (see Outbox)"
    return f"{outbox.status} (inline attempt not finished)"


@dataclass(frozen=True)
class PathView:
    """A user's sign-up path, plus the captured messages matched by Message-ID."""

    path: Any  # core SignupPath
    captured: dict[int, tuple[Any, ...]]  # outbox id -> MessageSummary (oldest first)


class Controller(QObject):
    """Commands of the window; results as signals."""

    registered = Signal(object)  # SignupOutcome
    register_failed = Signal(str)
    bulk_progress = Signal(int, int)  # done, total
    bulk_finished = Signal(object)  # BulkResult
    # elapsed ms, delivery mode, user id (0: none), ms of it spent hashing the password
    signup_timed = Signal(float, str, int, float)
    activated = Signal(object)  # ActivationResult
    activation_link_found = Signal(int, str)  # user id, link ("" when none was captured)
    retried = Signal(list)  # outbox ids now queued again
    message_loaded = Signal(object)  # MessageView
    path_loaded = Signal(object)  # PathView | None
    changed_app = Signal()  # a command wrote to the app database
    changed_mail = Signal()  # a command wrote to the mail store
    info = Signal(str)
    failed = Signal(str)

    def __init__(
        self,
        services: Services,
        runner: TaskRunner,
        parent: QObject | None = None,
        query_runner: TaskRunner | None = None,
    ) -> None:
        """Commands run on `runner`; reads (opening a message, a path) on `query_runner`.

        Two pools, so that slow commands (inline sign-ups against a slow SMTP server)
        never hold up the queries that keep the window live.
        """
        super().__init__(parent)
        self.services = services
        self.runner = runner
        self.queries = query_runner or runner
        self._path_request = 0
        self.signups_in_flight = 0  # sign-ups asked for here whose answer has not come back
        # Threads of one bulk sign-up: argon2 runs outside the GIL, so they use the cores.
        self.bulk_parallel = min(8, max(2, os.cpu_count() or 2))
        self._bulk_stop = threading.Event()

    @property
    def engine(self) -> Any:
        return self.services.engine

    @property
    def store(self) -> Any:
        return self.services.store

    def _fail(self, prefix: str) -> Any:
        return lambda exc: self.failed.emit(f"{prefix}: {error_text(exc)}")

    # Registrations ---------------------------------------------------------------------
    def register(self, email: str, password: str, display_name: str, mode: str) -> None:
        """Sign one person up with the given delivery mode ("queue" or "sync")."""
        engine = self.engine

        def job() -> SignupOutcome:
            result = engine.register(email, password, display_name, delivery=mode)
            outbox = None
            if result.delivery == "sync" and result.outbox_id is not None:
                outbox = engine.get_outbox(result.outbox_id)
            return SignupOutcome(result, outbox)

        def done(outcome: SignupOutcome) -> None:
            self.signups_in_flight -= 1
            result = outcome.result
            self.registered.emit(outcome)
            self.signup_timed.emit(float(result.elapsed_ms), str(result.delivery or mode),
                                   int(result.user_id or 0), float(result.hash_ms))
            self.changed_app.emit()

        def failed(exc: object) -> None:
            self.signups_in_flight -= 1
            self.register_failed.emit(error_text(exc))

        self.signups_in_flight += 1
        self.runner.submit(job, done, failed)

    def register_many(self, count: int, mode: str, domain: str = "example.com") -> None:
        """Sign up `count` generated test users off the GUI thread, several at a time.

        Password hashing (argon2, ~250 ms at production cost) dominates a sign-up and
        releases the GIL, so `bulk_parallel` threads sign users up side by side; one at
        a time would cap a bulk run at about 4 users a second in either delivery mode.
        """
        engine = self.engine
        stamp = time.strftime("%H%M%S")
        tag = secrets.token_hex(2)
        password = generate_password()
        progress, timed = self.bulk_progress, self.signup_timed
        parallel = max(1, min(count, self.bulk_parallel))
        numbers = itertools.count(1)
        lock = threading.Lock()
        stop = self._bulk_stop = threading.Event()
        times: list[float] = []
        errors: list[str] = []

        def sign_up_some() -> None:
            while not stop.is_set():
                with lock:
                    i = next(numbers)
                if i > count:
                    return
                email = f"test-{stamp}-{tag}-{i}@{domain}"
                try:
                    result = engine.register(email, password, f"Test user {i}", delivery=mode)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(error_text(exc))
                        done = len(times) + len(errors)
                else:
                    with lock:
                        times.append(float(result.elapsed_ms))
                        done = len(times) + len(errors)
                    timed.emit(float(result.elapsed_ms), mode, int(result.user_id or 0),
                               float(result.hash_ms))
                progress.emit(done, count)

        def job() -> BulkResult:
            started = time.perf_counter()
            helpers = [threading.Thread(target=sign_up_some, name=f"bulk-signup-{n}",
                                        daemon=True) for n in range(parallel - 1)]
            for helper in helpers:
                helper.start()
            try:
                sign_up_some()
            finally:
                for helper in helpers:
                    helper.join()
            return BulkResult(count, len(times), len(errors), time.perf_counter() - started,
                              tuple(times), errors[0] if errors else "",
                              stopped=stop.is_set() and len(times) + len(errors) < count)

        def done(result: BulkResult) -> None:
            self.signups_in_flight -= 1
            self.bulk_finished.emit(result)
            self.changed_app.emit()

        def failed(exc: object) -> None:
            self.signups_in_flight -= 1
            self.bulk_finished.emit(BulkResult(count, 0, count, 0.0, (), error_text(exc)))

        self.signups_in_flight += 1
        self.runner.submit(job, done, failed)

    def stop_bulk(self) -> None:
        """Stop a running "sign up N": those under way finish, no more start."""
        self._bulk_stop.set()

    def activate(self, token_or_link: str, note: str = "") -> None:
        """Activate with a token or a whole activation link; `note` prefixes the answer."""
        engine = self.engine

        def done(result: Any) -> None:
            self.activated.emit(result)
            self.info.emit(f"{note}{result.message}")
            self.changed_app.emit()

        self.runner.submit(lambda: engine.activate(token_or_link), done, self._fail("Activation"))

    def find_activation_link(self, user_id: int) -> None:
        """Look up the link in the user's latest captured activation email (off the GUI thread).

        The engine keeps only a hash of each token, so the link is read where a person
        would read it: in the email the catcher captured. Emits `activation_link_found`.
        """
        engine, store = self.engine, self.store

        def job() -> str:
            path = engine.get_signup_path(user_id)
            if path is None:
                return ""
            for item in reversed(path.outbox):
                if item.kind != "activation" or not item.message_id:
                    continue
                for message in reversed(tuple(store.find_by_message_id(item.message_id))):
                    raw = store.get_raw(message.id)
                    link = find_activation_link(parse_message(raw).text or "") if raw else ""
                    if link:
                        return link
            return ""

        self.queries.submit(job, lambda link: self.activation_link_found.emit(user_id, link),
                            self._fail("Activation link"))

    def resend(self, email: str) -> None:
        """Queue a fresh activation email for this address (the engine rate-limits it)."""
        engine = self.engine

        def done(result: Any) -> None:
            queued = (f"email #{result.outbox_id} queued" if result.outbox_id is not None
                      else "no email queued (the address is not pending)")
            self.info.emit(f"Resend to {one_line(result.email, 200)}: {queued}.")
            self.changed_app.emit()

        self.runner.submit(lambda: engine.resend(email), done, self._fail("Resend"))

    def load_path(self, user_id: int | None) -> None:
        """Load one user's sign-up path with its captured messages (None: clear)."""
        self._path_request += 1
        request = self._path_request

        def done(view: PathView | None) -> None:
            if request == self._path_request:
                self.path_loaded.emit(view)

        self.queries.submit(self.path_job(user_id), done, self._fail("Sign-up path"))

    def path_job(self, user_id: int | None) -> Callable[[], PathView | None]:
        """The query behind load_path, to run on the pool."""
        engine, store = self.engine, self.store

        def job() -> PathView | None:
            if user_id is None:
                return None
            path = engine.get_signup_path(user_id)
            if path is None:
                return None
            captured: dict[int, tuple[Any, ...]] = {}
            for item in path.outbox:
                if item.message_id:
                    captured[item.id] = tuple(store.find_by_message_id(item.message_id))
            return PathView(path, captured)

        return job

    # Outbox ----------------------------------------------------------------------------
    def retry(self, ids: list[int]) -> None:
        """Queue these failed outbound emails again."""
        engine = self.engine
        self.runner.submit(lambda: engine.retry(ids), self._on_retried, self._fail("Retry"))

    def retry_failed(self) -> None:
        """Queue every failed outbound email again."""
        engine = self.engine
        self.runner.submit(engine.retry_failed, self._on_retried, self._fail("Retry"))

    def _on_retried(self, ids: list[int]) -> None:
        ids = list(ids)
        self.retried.emit(ids)
        if ids:
            shown = ", ".join(f"#{i}" for i in ids[:5]) + (" …" if len(ids) > 5 else "")
            self.info.emit(f"Retried {len(ids)} email(s): {shown}")
        else:
            self.info.emit("Nothing to retry: only failed or retrying emails can be retried")
        self.changed_app.emit()

    # Inbox -----------------------------------------------------------------------------
    def load_message(self, message_id: int, mark_read: bool = True) -> None:
        """Load, parse and (by default) mark read one captured message."""

        def done(view: MessageView | None) -> None:
            if view is not None:
                self.message_loaded.emit(view)

        self.queries.submit(self.message_job(message_id, mark_read), done,
                            self._fail("Opening the message"))

    def message_job(
        self, message_id: int | None, mark_read: bool = True
    ) -> Callable[[], MessageView | None]:
        """The query behind load_message, to run on the pool."""
        store = self.store

        def job() -> MessageView | None:
            if message_id is None:
                return None
            summary = store.get_message(message_id)
            raw = store.get_raw(message_id)
            if summary is None or raw is None:
                return None
            if mark_read and not summary.read:
                store.mark_read([message_id], True)
                summary = store.get_message(message_id) or summary
            return MessageView(summary, raw, parse_message(raw), get_inline_parts(raw))

        return job

    def delete_messages(self, ids: list[int]) -> None:
        """Delete these captured messages."""
        store = self.store
        self.runner.submit(lambda: store.delete_messages(ids), lambda _: self.changed_mail.emit(),
                           self._fail("Delete"))

    def clear_messages(self) -> None:
        """Delete every captured message."""
        store = self.store
        self.runner.submit(store.clear_messages, lambda _: self.changed_mail.emit(),
                           self._fail("Clear"))

    def mark_read(self, ids: list[int], read: bool) -> None:
        """Mark messages read or unread."""
        store = self.store
        self.runner.submit(lambda: store.mark_read(ids, read), lambda _: self.changed_mail.emit(),
                           self._fail("Mark read"))

    # Chaos -----------------------------------------------------------------------------
    def add_chaos_rule(self, rule: Any) -> None:
        """Store a new fault rule (it applies from the next SMTP connection)."""
        store = self.store
        self.runner.submit(lambda: store.add_chaos_rule(rule), lambda _: self.changed_mail.emit(),
                           self._fail("Add rule"))

    def remove_chaos_rule(self, rule_id: int) -> None:
        """Remove one fault rule."""
        store = self.store
        self.runner.submit(lambda: store.remove_chaos_rule(rule_id),
                           lambda _: self.changed_mail.emit(), self._fail("Remove rule"))

    def clear_chaos_rules(self) -> None:
        """Remove every fault rule."""
        store = self.store
        self.runner.submit(store.clear_chaos_rules, lambda _: self.changed_mail.emit(),
                           self._fail("Clear rules"))

    def set_chaos_enabled(self, enabled: bool) -> None:
        """Turn all fault rules on or off at once."""
        store = self.store
        self.runner.submit(lambda: store.set_chaos_enabled(enabled),
                           lambda _: self.changed_mail.emit(), self._fail("Chaos switch"))
