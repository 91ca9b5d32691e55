"""Delivery through the real queue to a real SMTP server: sent, retried, failed, retried by hand."""

from __future__ import annotations

import email
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from email import policy

import pytest

from core import outbox
from core.delivery import SendResult
from core.engine import Engine
from core.settings import RetryPolicy
from core.worker import Worker
from tests.core.conftest import PASSWORD, SmtpServer, wait_until


def _status(engine: Engine, outbox_id: int) -> str:
    row = engine.get_outbox(outbox_id)
    assert row is not None
    return row.status


def _wait_status(engine: Engine, outbox_id: int, status: str, timeout: float = 10.0) -> None:
    wait_until(lambda: _status(engine, outbox_id) == status, timeout, f"{outbox_id} {status}")


def test_250_marks_sent_and_records_the_attempt(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """A 250 reply moves the row to sent with sent_at, and the attempt keeps code and reply."""
    r = engine.register("ok@example.com", PASSWORD)
    _wait_status(engine, r.outbox_id, "sent")
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.sent_at is not None and row.attempts == 1
    assert row.last_code == 250 and row.last_error is None
    [attempt] = engine.list_attempts(r.outbox_id)
    assert (attempt.number, attempt.code, attempt.outcome) == (1, 250, "sent")
    assert "Accepted" in attempt.reply and attempt.duration_ms > 0
    assert attempt.started_at.tzinfo is not None


def test_4xx_retries_with_backoff_then_sends(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """451 moves the row to retrying with next_attempt_at from the policy; later it is sent."""
    policy = RetryPolicy(max_attempts=5, base_seconds=0.3, factor=2.0, cap_seconds=2, jitter=0.1)
    engine = make_engine(retry=policy)
    smtp.handler.rcpt_reply = "451 4.3.0 Try again later"
    w = engine.start_worker(2)
    try:
        r = engine.register("slow@example.com", PASSWORD)
        _wait_status(engine, r.outbox_id, "retrying")
        row = engine.get_outbox(r.outbox_id)
        [first] = engine.list_attempts(r.outbox_id)
        assert row is not None and row.next_attempt_at is not None
        assert (first.code, first.outcome) == (451, "retry")
        ended = first.started_at + timedelta(milliseconds=first.duration_ms)
        wait = (row.next_attempt_at - ended).total_seconds()
        assert 0.3 * 0.9 <= wait <= 0.3 * 1.1 + 0.2  # base delay with jitter (+ the write)
        wait_until(lambda: len(engine.list_attempts(r.outbox_id)) >= 2, 10, "second attempt")
        second = engine.list_attempts(r.outbox_id)[1]
        assert (second.started_at - first.started_at).total_seconds() >= 0.27
        smtp.handler.rcpt_reply = None
        _wait_status(engine, r.outbox_id, "sent")
    finally:
        w.stop()
    attempts = engine.list_attempts(r.outbox_id)
    assert [a.outcome for a in attempts][-1] == "sent"
    assert all(a.outcome == "retry" and a.code == 451 for a in attempts[:-1])
    assert len(smtp.messages) == 1


def test_retry_delay_is_capped_exponential_with_jitter() -> None:
    """Delays grow by the factor, never pass the cap, and stay within the jitter band."""
    policy = RetryPolicy(max_attempts=8, base_seconds=30, factor=2, cap_seconds=1200, jitter=0.2)
    for attempt, nominal in [(1, 30), (2, 60), (3, 120), (6, 960), (7, 1200), (8, 1200)]:
        delays = [outbox.retry_delay(policy, attempt) for _ in range(200)]
        assert min(delays) >= nominal * 0.8 and max(delays) <= nominal * 1.2
        assert max(delays) - min(delays) > 0  # jitter is applied
    total = sum(min(1200, 30 * 2 ** (n - 1)) for n in range(1, 8))
    assert 1800 <= total <= 5400  # 8 attempts spread over about an hour


def test_5xx_fails_at_once(engine: Engine, worker: Worker, smtp: SmtpServer) -> None:
    """550 is permanent: failed after one attempt, with the reply as the reason, never retried."""
    smtp.handler.rcpt_reply = "550 5.1.1 No such user here"
    r = engine.register("gone@example.com", PASSWORD)
    _wait_status(engine, r.outbox_id, "failed")
    smtp.handler.rcpt_reply = None
    later = engine.register("later@example.com", PASSWORD)
    _wait_status(engine, later.outbox_id, "sent")
    time_passed_retry = engine.settings.retry.cap_seconds * 2
    wait_until(lambda: engine.sweep() == 0, 5, "nothing to sweep")
    time.sleep(time_passed_retry)  # long enough for any (wrong) retry to have happened
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.attempts == 1 and row.status == "failed"
    assert row.last_code == 550 and "550" in (row.last_error or "")


def test_5xx_after_data_fails_at_once(engine: Engine, worker: Worker, smtp: SmtpServer) -> None:
    """A 554 answer to the message itself is also permanent."""
    smtp.handler.data_reply = "554 5.6.0 Message rejected"
    r = engine.register("data@example.com", PASSWORD)
    _wait_status(engine, r.outbox_id, "failed")
    assert [a.code for a in engine.list_attempts(r.outbox_id)] == [554]


def test_connection_refused_retries_then_sends(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """With the server down the row is retrying; once it is back the email is sent."""
    smtp.stop()
    r = engine.register("down@example.com", PASSWORD)
    _wait_status(engine, r.outbox_id, "retrying")
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.last_code is None
    assert "refused" in (row.last_error or "").lower()
    smtp.start()
    _wait_status(engine, r.outbox_id, "sent")


def test_exhausted_attempts_fail(engine: Engine, worker: Worker, smtp: SmtpServer) -> None:
    """A row that keeps getting 4xx fails after max_attempts, saying so."""
    smtp.handler.rcpt_reply = "421 4.7.0 Busy"
    r = engine.register("tired@example.com", PASSWORD)
    _wait_status(engine, r.outbox_id, "failed", timeout=15)
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.attempts == engine.settings.retry.max_attempts == 3
    assert "gave up after 3 attempts" in (row.last_error or "")
    assert [a.outcome for a in engine.list_attempts(r.outbox_id)] == ["retry", "retry", "failed"]


def test_manual_retry_of_a_failed_email_sends_it(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """retry() moves a failed row back to queued with a fresh budget and it gets sent."""
    ok = engine.register("fine@example.com", PASSWORD, delivery="sync")
    smtp.handler.rcpt_reply = "550 5.7.1 Not today"
    r = engine.register("again@example.com", PASSWORD)
    _wait_status(engine, r.outbox_id, "failed")
    smtp.handler.rcpt_reply = None
    assert engine.retry([r.outbox_id, ok.outbox_id, 999999]) == [r.outbox_id]
    _wait_status(engine, r.outbox_id, "sent")
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.attempts == 2 and row.max_attempts == 1 + 3


def test_retry_failed_retries_every_failed_email(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """retry_failed() retries exactly the failed rows."""
    smtp.handler.rcpt_reply = "550 5.7.1 Not today"
    ids = [engine.register(f"f{i}@example.com", PASSWORD).outbox_id for i in range(3)]
    for i in ids:
        _wait_status(engine, i, "failed")
    smtp.handler.rcpt_reply = None
    assert sorted(engine.retry_failed()) == sorted(ids)
    for i in ids:
        _wait_status(engine, i, "sent")
    assert engine.retry_failed() == []


def test_retry_of_a_retrying_email_sends_it_now_keeping_its_attempts(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """retry() on a retrying row makes the next attempt now; attempts and budget are kept."""
    policy = RetryPolicy(max_attempts=5, base_seconds=600, factor=2.0, cap_seconds=600, jitter=0)
    engine = make_engine(retry=policy)
    smtp.handler.rcpt_reply = "451 4.3.0 Try again later"
    w = engine.start_worker(2)
    try:
        r = engine.register("later@example.com", PASSWORD)
        assert r.outbox_id is not None
        _wait_status(engine, r.outbox_id, "retrying")  # next attempt in ten minutes
        smtp.handler.rcpt_reply = None
        assert engine.retry([r.outbox_id]) == [r.outbox_id]
        _wait_status(engine, r.outbox_id, "sent", timeout=5)
    finally:
        w.stop()
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and (row.attempts, row.max_attempts) == (2, 5)
    assert [a.outcome for a in engine.list_attempts(r.outbox_id)] == ["retry", "sent"]


def test_send_now_is_not_followed_by_a_second_send_from_the_old_schedule(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """The retry scheduled before a send-now finds the row sent and sends nothing more."""
    policy = RetryPolicy(max_attempts=5, base_seconds=1.0, factor=2.0, cap_seconds=1.0, jitter=0)
    engine = make_engine(retry=policy)
    smtp.handler.rcpt_reply = "451 4.3.0 Try again later"
    w = engine.start_worker(2)
    try:
        r = engine.register("once@example.com", PASSWORD)
        assert r.outbox_id is not None
        _wait_status(engine, r.outbox_id, "retrying")
        assert engine.queue.scheduled_count() == 1
        smtp.handler.rcpt_reply = None
        assert engine.retry([r.outbox_id]) == [r.outbox_id]
        _wait_status(engine, r.outbox_id, "sent")
        wait_until(
            lambda: engine.queue.scheduled_count() == 0 and engine.queue.pending_count() == 0,
            10,
            "the old scheduled retry to run",
        )
    finally:
        w.stop()
    assert len(smtp.messages) == 1
    assert [a.outcome for a in engine.list_attempts(r.outbox_id)] == ["retry", "sent"]


def test_retry_failed_leaves_retrying_emails_alone(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """retry_failed() takes failed rows only; a retrying row keeps its scheduled time."""
    policy = RetryPolicy(max_attempts=5, base_seconds=600, factor=2.0, cap_seconds=600, jitter=0)
    engine = make_engine(retry=policy)
    smtp.handler.rcpt_replies = {"later": "451 4.3.0 Try again later", "never": "550 5.1.1 No"}
    later = engine.register("later@example.com", PASSWORD, delivery="sync").outbox_id
    never = engine.register("never@example.com", PASSWORD, delivery="sync").outbox_id
    assert later is not None and never is not None
    before = engine.get_outbox(later)
    assert before is not None and before.status == "retrying"
    assert engine.retry_failed() == [never]
    assert engine.get_outbox(later) == before


@pytest.mark.parametrize(
    ("make_row", "reason"),
    [
        ("sent", "already sent"),
        ("queued", "already queued"),
        ("sending", "being sent"),
        ("missing", "no outbound email"),
    ],
)
def test_explain_not_retried_says_why(
    engine: Engine, smtp: SmtpServer, make_row: str, reason: str
) -> None:
    """retry() skips sent, queued, sending and unknown ids, and explain_not_retried says which."""
    r = engine.register(f"{make_row}@example.com", PASSWORD, delivery="queue")
    assert r.outbox_id is not None
    outbox_id = r.outbox_id
    if make_row == "sent":
        engine.deliver(outbox_id)
    elif make_row == "sending":
        assert outbox.claim(engine.db, outbox_id, 60) is not None
    elif make_row == "missing":
        outbox_id = 999_999
    assert engine.retry([outbox_id]) == []
    explanation = engine.explain_not_retried(outbox_id)
    assert explanation is not None and reason in explanation


def test_explain_not_retried_is_none_for_retryable_rows(
    engine: Engine, smtp: SmtpServer
) -> None:
    """A failed or retrying row has nothing to explain: retry() takes it."""
    smtp.handler.rcpt_replies = {"soft": "451 4.3.0 Later", "hard": "550 5.1.1 No"}
    soft = engine.register("soft@example.com", PASSWORD, delivery="sync").outbox_id
    hard = engine.register("hard@example.com", PASSWORD, delivery="sync").outbox_id
    assert soft is not None and hard is not None
    assert (_status(engine, soft), _status(engine, hard)) == ("retrying", "failed")
    assert engine.explain_not_retried(soft) is None
    assert engine.explain_not_retried(hard) is None


def test_message_id_is_stable_across_attempts(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """Every attempt of one email carries the same Message-ID, the one shown in the outbox."""
    smtp.handler.data_reply = "451 4.3.0 Later"
    r = engine.register("stable@example.com", PASSWORD)
    wait_until(lambda: len(engine.list_attempts(r.outbox_id)) >= 2, 10, "two attempts")
    smtp.handler.data_reply = None
    _wait_status(engine, r.outbox_id, "sent")
    ids = {
        email.message_from_bytes(data, policy=policy.default)["Message-ID"]
        for data in smtp.handler.seen
    }
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and len(smtp.handler.seen) >= 3
    assert ids == {row.message_id}
    assert row.message_id.startswith(f"<outbox-{r.outbox_id}.")


def test_message_that_cannot_be_built_fails_permanently(
    engine: Engine, smtp: SmtpServer
) -> None:
    """A row whose header would be injected fails at once, says why, and sends nothing."""
    r = engine.register("inject@example.com", PASSWORD)
    engine.queue.flush()
    with sqlite3.connect(engine.settings.app_db_path) as conn:
        conn.execute(
            "update outbox set to_name=? where id=?",
            ("Eve\r\nBcc: victim@example.com", r.outbox_id),
        )
    engine.deliver(r.outbox_id)
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.status == "failed" and row.attempts == 1
    assert "control character" in (row.last_error or "")
    assert smtp.handler.seen == []
    assert engine.sweep() == 0


def test_sync_mode_sends_before_returning(engine: Engine, smtp: SmtpServer) -> None:
    """delivery='sync' has the email accepted by the server before register() returns."""
    r = engine.register("inline@example.com", PASSWORD, delivery="sync")
    assert r.delivery == "sync"
    assert len(smtp.messages) == 1
    assert _status(engine, r.outbox_id) == "sent"
    assert engine.queue.pending_count() == 0


def test_sync_mode_from_settings(make_engine: Callable[..., Engine], smtp: SmtpServer) -> None:
    """Settings.delivery='sync' makes sync the default for register()."""
    engine = make_engine(delivery="sync")
    r = engine.register("inline2@example.com", PASSWORD)
    assert r.delivery == "sync" and _status(engine, r.outbox_id) == "sent"


def test_a_claim_cannot_be_taken_twice(engine: Engine) -> None:
    """Of many threads claiming one queued row at once, exactly one gets it."""
    r = engine.register("claim@example.com", PASSWORD)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        results.append(outbox.claim(engine.db, r.outbox_id, 60.0))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for x in results if x is not None) == 1
    assert _status(engine, r.outbox_id) == "sending"


def test_sent_row_is_not_sent_again(engine: Engine, smtp: SmtpServer) -> None:
    """Delivering a row that is already sent (a duplicate task) sends nothing."""
    r = engine.register("dup@example.com", PASSWORD, delivery="sync")
    engine.deliver(r.outbox_id)
    engine.deliver(r.outbox_id)
    assert len(smtp.messages) == 1


def test_smtp_connection_is_reused_across_emails(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """Twenty emails through two worker threads need at most two SMTP connections."""
    ids = [engine.register(f"many{i}@example.com", PASSWORD).outbox_id for i in range(20)]
    for i in ids:
        _wait_status(engine, i, "sent")
    assert len(smtp.messages) == 20
    assert smtp.handler.connections <= 2


def test_reused_connection_closed_by_server_reconnects(
    engine: Engine, smtp: SmtpServer
) -> None:
    """After the server restarts, a pooled connection is replaced without a failed attempt."""
    first = engine.register("before@example.com", PASSWORD, delivery="sync")
    smtp.stop()
    smtp.start()
    second = engine.register("after@example.com", PASSWORD, delivery="sync")
    assert _status(engine, first.outbox_id) == _status(engine, second.outbox_id) == "sent"
    assert [a.outcome for a in engine.list_attempts(second.outbox_id)] == ["sent"]


def test_non_ascii_local_part_goes_out_with_smtputf8(engine: Engine, smtp: SmtpServer) -> None:
    """An address with a non-ASCII local part is delivered as stored, over SMTPUTF8."""
    r = engine.register("jürgen@bücher.example", PASSWORD, "Jürgen", delivery="sync")
    assert _status(engine, r.outbox_id) == "sent"
    assert smtp.messages[0].rcpt_tos == ("jürgen@xn--bcher-kva.example",)


def test_database_locked_by_another_writer_loses_nothing(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """While another connection holds the write lock for a while, every email is still sent."""
    ids = [engine.register(f"locked{i}@example.com", PASSWORD).outbox_id for i in range(5)]
    blocker = sqlite3.connect(engine.settings.app_db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        more = threading.Thread(
            target=lambda: ids.extend(
                engine.register(f"locked-more{i}@example.com", PASSWORD).outbox_id
                for i in range(3)
            )
        )
        more.start()
        time.sleep(1.0)  # hold the lock for a while: that is the condition under test
        blocker.execute("COMMIT")
        more.join()
    finally:
        blocker.close()
    for i in ids:
        _wait_status(engine, i, "sent", timeout=20)
    assert len(ids) == 8
    assert len({m.rcpt_tos for m in smtp.messages}) == 8


@pytest.mark.parametrize("workers", [1, 4])
def test_every_email_sent_exactly_once_under_load(
    engine: Engine, smtp: SmtpServer, workers: int
) -> None:
    """With one or several worker threads, 60 sign-ups give 60 sent rows and 60 messages."""
    w = engine.start_worker(workers)
    try:
        ids = [engine.register(f"load{i}@example.com", PASSWORD).outbox_id for i in range(60)]
        wait_until(lambda: engine.queue_stats().by_status["sent"] == 60, 20, "60 sent")
    finally:
        w.stop()
    assert len(smtp.messages) == 60
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(
        f"load{i}@example.com" for i in range(60)
    )
    assert len(ids) == 60


@pytest.mark.parametrize(
    "name",
    ['Doe, John <boss@example.com>', 'Zoë "Z" Ünicode', "=?utf-8?q?evil?= <x@example.com>", ""],
)
def test_display_name_is_quoted_and_stays_one_recipient(
    engine: Engine, smtp: SmtpServer, name: str
) -> None:
    """Any display name stays inside one To address and never adds a recipient or a header.

    (A name that looks like an encoded word is quoted; lenient parsers, Python's
    included, still decode it, so only its address is compared.)
    """
    r = engine.register("named@example.com", PASSWORD, name, delivery="sync")
    assert _status(engine, r.outbox_id) == "sent"
    [message] = smtp.messages
    parsed = email.message_from_bytes(message.data, policy=policy.default)
    assert not parsed.defects
    [address] = parsed["To"].addresses
    assert address.addr_spec == "named@example.com"
    if "=?" not in name:
        assert address.display_name == name
    assert parsed.get_all("Bcc") is None and len(parsed.get_all("To") or []) == 1
    text = parsed.get_body(("plain",))
    html_part = parsed.get_body(("html",))
    assert text is not None and html_part is not None
    assert "/activate/" in text.get_content() and "/activate/" in html_part.get_content()


def test_worker_stays_responsive_while_a_backlog_retries(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """With many emails waiting to retry, a new sign-up is still sent at once, and the
    waiting ones are not retried in a tight loop."""
    policy = RetryPolicy(max_attempts=5, base_seconds=30, factor=2, cap_seconds=60, jitter=0.1)
    engine = make_engine(retry=policy)
    smtp.handler.rcpt_replies["stuck"] = "451 4.3.0 Greylisted"
    w = engine.start_worker(2)
    try:
        stuck = [engine.register(f"stuck{i}@example.com", PASSWORD).outbox_id for i in range(30)]
        wait_until(lambda: engine.queue_stats().by_status["retrying"] == 30, 10, "30 retrying")
        t0 = time.monotonic()
        fresh = engine.register("fresh@example.com", PASSWORD)
        wait_until(lambda: _status(engine, fresh.outbox_id) == "sent", 5, "fresh sent")
        assert time.monotonic() - t0 < 1.0
        assert all(len(engine.list_attempts(i)) == 1 for i in stuck)
        wait_until(lambda: engine.queue_stats().scheduled_tasks == 30, 5, "30 scheduled")
    finally:
        w.stop()


def test_timeout_retries(make_engine: Callable[..., Engine], smtp: SmtpServer) -> None:
    """A server slower than smtp_timeout gives `retrying` with a timeout reason, not a hang."""
    engine = make_engine(smtp_timeout=0.3)
    smtp.handler.data_delay = 1.0
    t0 = time.monotonic()
    r = engine.register("slowpoke@example.com", PASSWORD, delivery="sync")
    assert time.monotonic() - t0 < 1.0
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.status == "retrying"
    assert "timed out" in (row.last_error or "")


def test_unexpected_error_while_sending_leaves_no_row_stuck(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug while sending records a retry with the error instead of leaving `sending`."""

    def boom(email: object) -> SendResult:
        raise RuntimeError("bug in sender")

    monkeypatch.setattr(engine.sender, "send", boom)
    r = engine.register("bug@example.com", PASSWORD, delivery="sync")
    row = engine.get_outbox(r.outbox_id)
    assert row is not None and row.status == "retrying"
    assert "bug in sender" in (row.last_error or "")


def test_ehlo_uses_a_fixed_name(engine: Engine, smtp: SmtpServer) -> None:
    """The client greets with a fixed name, so no DNS look-up (getfqdn) delays delivery."""
    engine.register("ehlo@example.com", PASSWORD, delivery="sync")
    assert smtp.handler.ehlo_names == ["mailroom.localhost"]
