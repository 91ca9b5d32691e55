"""Per-address limits that neither reveal accounts nor let anyone flood an inbox.

resend() is limited per address whatever the address is (unknown, pending or
active count alike), and duplicate sign-ups notify the owner at most
signup_notice_limit times per window while answering exactly as before.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Callable

import pytest

from core.engine import Engine
from core.errors import RateLimited
from core.queries import ResendResult
from tests.core.conftest import PASSWORD, SmtpServer

LINK = re.compile(r"https?://[^\s\"<>]+/activate/[A-Za-z0-9_-]+")


def _sql(engine: Engine, sql: str, *args: object) -> None:
    with sqlite3.connect(engine.settings.app_db_path) as conn:
        conn.execute(sql, args)


def _notices(engine: Engine) -> int:
    return len([o for o in engine.list_outbox() if o.kind == "signup_attempt_notice"])


def _answers_until_limited(engine: Engine, email: str, tries: int) -> tuple[int, RateLimited]:
    """Resend until RateLimited; returns (resends accepted first, the error)."""
    for n in range(tries):
        try:
            engine.resend(email)
        except RateLimited as exc:
            return n, exc
    pytest.fail(f"resend({email!r}) never hit the limit in {tries} tries")


def test_unknown_pending_and_active_addresses_hit_the_limit_at_the_same_count(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """RateLimited comes after resend_limit requests for any address, with the same message."""
    engine = make_engine(resend_limit=3, resend_window_seconds=3600)
    engine.register("pending@example.com", PASSWORD)
    active = engine.register("active@example.com", PASSWORD, delivery="sync")
    match = LINK.search(smtp.messages[-1].data.decode())
    assert match is not None and active.user_id is not None
    assert engine.activate(match.group()).outcome == "activated"

    results = {
        who: _answers_until_limited(engine, f"{who}@example.com", 10)
        for who in ("pending", "active", "nobody")
    }
    assert {n for n, _ in results.values()} == {3}
    messages = {exc.message.replace(who, "X") for who, (_, exc) in results.items()}
    assert len(messages) == 1
    for who, (_, exc) in results.items():
        assert who not in exc.message  # the address is not echoed back


def test_the_limit_is_keyed_on_the_normalised_address(
    make_engine: Callable[..., Engine],
) -> None:
    """Case and IDNA spelling of one unknown address share one count; other addresses don't."""
    engine = make_engine(resend_limit=2)
    engine.resend("Ghost@bücher.example")
    engine.resend("ghost@XN--BCHER-KVA.EXAMPLE")
    with pytest.raises(RateLimited):
        engine.resend("GHOST@bücher.example")
    assert engine.resend("other@bücher.example").outbox_id is None  # not limited


def test_answers_before_the_limit_do_not_tell_unknown_from_existing(
    make_engine: Callable[..., Engine],
) -> None:
    """The email and message of a resend answer are the same for unknown and pending addresses."""
    engine = make_engine()
    engine.register("Real@Example.com", PASSWORD)
    real = engine.resend("REAL@example.com")
    ghost = engine.resend("GHOST@example.com")
    assert real.outbox_id is not None  # operator information: which email was queued
    assert (real.email, real.message) == ("REAL@example.com", ghost.message)
    assert ghost == ResendResult(None, "GHOST@example.com", real.message)
    queued = engine.get_outbox(real.outbox_id)
    assert queued is not None and queued.to == "Real@example.com"  # mail goes to the stored address


def test_try_again_in_is_the_real_remaining_time(make_engine: Callable[..., Engine]) -> None:
    """retry_after_seconds and the "Try again in N" text are when the oldest request ages out."""
    window = 3600.0
    engine = make_engine(resend_limit=2, resend_window_seconds=window)
    engine.resend("wait@example.com")
    engine.resend("wait@example.com")
    _sql(engine, "update rate_events set at = at - 1000")  # both requests 1000 s ago
    with pytest.raises(RateLimited) as info:
        engine.resend("wait@example.com")
    remaining = info.value.retry_after_seconds
    assert window - 1000 - 5 < remaining <= window - 1000
    assert f"Try again in {math.ceil(remaining / 60)} minutes" in info.value.message


def test_requests_older_than_the_window_no_longer_count(
    make_engine: Callable[..., Engine],
) -> None:
    """Once the window has passed, the address may ask again."""
    engine = make_engine(resend_limit=1, resend_window_seconds=60)
    engine.register("later@example.com", PASSWORD)
    engine.resend("later@example.com")
    with pytest.raises(RateLimited):
        engine.resend("later@example.com")
    _sql(engine, "update rate_events set at = at - 61")
    assert engine.resend("later@example.com").outbox_id is not None


def test_unknown_addresses_are_not_stored_in_clear(make_engine: Callable[..., Engine]) -> None:
    """Counting a request for an unknown address does not write that address to the database."""
    engine = make_engine()
    engine.resend("secret-person@example.com")
    with sqlite3.connect(engine.settings.app_db_path) as conn:
        keys = [k for (k,) in conn.execute("select key from rate_events")]
    assert len(keys) == 1 and "secret-person" not in keys[0]


def test_repeated_duplicate_sign_ups_queue_one_notice_per_window(
    make_engine: Callable[..., Engine],
) -> None:
    """Eight sign-ups with a taken address queue one notice; all eight answers look alike."""
    engine = make_engine(signup_notice_limit=1, signup_notice_window_seconds=900)
    new = engine.register("owner@example.com", PASSWORD)
    dups = [engine.register("OWNER@example.com", PASSWORD) for _ in range(8)]
    assert _notices(engine) == 1
    shapes = {(d.status, d.message, d.delivery, d.user_id, d.email) for d in dups}
    assert shapes == {(new.status, new.message, new.delivery, None, "OWNER@example.com")}
    assert type(dups[0].outbox_id) is int
    assert [d.outbox_id for d in dups[1:]] == [None] * 7  # nothing queued for these


def test_a_new_notice_is_queued_once_the_window_has_passed(
    make_engine: Callable[..., Engine],
) -> None:
    """After signup_notice_window_seconds the owner is told about the next attempt again."""
    engine = make_engine(signup_notice_limit=1, signup_notice_window_seconds=900)
    engine.register("owner@example.com", PASSWORD)
    first = engine.register("owner@example.com", PASSWORD)
    assert engine.register("owner@example.com", PASSWORD).outbox_id is None
    _sql(engine, "update outbox set created_at = created_at - 901 where id = ?", first.outbox_id)
    later = engine.register("owner@example.com", PASSWORD)
    assert later.outbox_id is not None and _notices(engine) == 2


def test_notice_limit_is_per_address(make_engine: Callable[..., Engine]) -> None:
    """One address's suppressed notices do not stop another owner from being told."""
    engine = make_engine(signup_notice_limit=1)
    engine.register("a@example.com", PASSWORD)
    engine.register("b@example.com", PASSWORD)
    engine.register("a@example.com", PASSWORD)
    engine.register("a@example.com", PASSWORD)
    assert engine.register("b@example.com", PASSWORD).outbox_id is not None
    assert _notices(engine) == 2


def test_suppressed_notice_in_sync_mode_sends_nothing(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """A duplicate beyond the limit delivers no email even with inline (sync) delivery."""
    engine = make_engine(signup_notice_limit=1)
    engine.register("sync@example.com", PASSWORD, delivery="sync")
    engine.register("sync@example.com", PASSWORD, delivery="sync")
    before = len(smtp.messages)
    result = engine.register("sync@example.com", PASSWORD, delivery="sync")
    assert result.outbox_id is None and len(smtp.messages) == before == 2
