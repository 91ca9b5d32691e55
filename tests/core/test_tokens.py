"""Activation tokens: single use, expiry from delivery, bound to user and address, hash-only."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.engine import Engine
from core.errors import RateLimited
from core.tokens import extract_token
from core.worker import Worker
from tests.core.conftest import PASSWORD, SmtpServer, wait_until

LINK = re.compile(rb"https?://[^\s\"<>]+/activate/[A-Za-z0-9_-]+")


def _deliver(engine: Engine, smtp: SmtpServer, email: str) -> tuple[int, int, str]:
    """Register and deliver inline; returns (user_id, outbox_id, link)."""
    before = len(smtp.messages)
    r = engine.register(email, PASSWORD, delivery="sync")
    assert r.user_id is not None
    data = smtp.messages[before].data
    match = LINK.search(data)
    assert match is not None
    return r.user_id, r.outbox_id, match.group().decode()


def _sql(engine: Engine, sql: str, *args: object) -> None:
    with sqlite3.connect(engine.settings.app_db_path) as conn:
        conn.execute(sql, args)


def test_link_and_bare_token_both_activate(engine: Engine, smtp: SmtpServer) -> None:
    """activate() takes the whole link or only the token."""
    _, _, link = _deliver(engine, smtp, "link@example.com")
    _, _, link2 = _deliver(engine, smtp, "bare@example.com")
    assert engine.activate(link).outcome == "activated"
    assert engine.activate(link2.rsplit("/", 1)[1]).outcome == "activated"


def test_token_is_single_use(engine: Engine, smtp: SmtpServer) -> None:
    """A second use of a token activates nothing and leaves the activation time alone."""
    user_id, _, link = _deliver(engine, smtp, "once@example.com")
    first = engine.activate(link)
    at = engine.get_user(user_id).activated_at  # type: ignore[union-attr]
    second = engine.activate(link)
    assert first.outcome == "activated"
    assert second.outcome == "already_active"
    assert engine.get_user(user_id).activated_at == at  # type: ignore[union-attr]


@pytest.mark.parametrize("junk", ["", "nope", "x" * 43, "http://127.0.0.1:8025/activate/"])
def test_unknown_tokens_are_invalid(engine: Engine, smtp: SmtpServer, junk: str) -> None:
    """Anything that is not an issued token is 'invalid' with a sentence saying so."""
    _deliver(engine, smtp, "someone@example.com")
    result = engine.activate(junk)
    assert result.outcome == "invalid" and result.user_id is None and result.message


def test_validity_counts_from_sent_at_not_sign_up(engine: Engine, smtp: SmtpServer) -> None:
    """A token delivered just now works even if the sign-up was long ago."""
    user_id, outbox_id, link = _deliver(engine, smtp, "late@example.com")
    long_ago = time.time() - 10 * engine.settings.token_ttl_seconds
    _sql(engine, "update outbox set created_at=? where id=?", long_ago, outbox_id)
    _sql(engine, "update users set created_at=? where id=?", long_ago, user_id)
    assert engine.activate(link).outcome == "activated"


def test_token_expires_ttl_after_sent_at_and_says_how_to_resend(
    engine: Engine, smtp: SmtpServer
) -> None:
    """Past token_ttl_seconds after delivery the answer is 'expired' and mentions resend."""
    user_id, outbox_id, link = _deliver(engine, smtp, "old@example.com")
    sent = time.time() - engine.settings.token_ttl_seconds - 5
    _sql(engine, "update outbox set sent_at=? where id=?", sent, outbox_id)
    result = engine.activate(link)
    assert result.outcome == "expired"
    assert "resend" in result.message.lower()
    assert engine.get_user(user_id).status == "pending"  # type: ignore[union-attr]


def test_token_is_bound_to_the_address(engine: Engine, smtp: SmtpServer) -> None:
    """If the user's address changes, a token sent to the old address no longer works."""
    user_id, _, link = _deliver(engine, smtp, "bound@example.com")
    _sql(engine, "update users set email=? where id=?", "other@example.com", user_id)
    assert engine.activate(link).outcome == "invalid"


def test_token_is_bound_to_the_user(engine: Engine, smtp: SmtpServer) -> None:
    """Pointing a token's row at another user does not let it activate that user."""
    _, outbox_id, link = _deliver(engine, smtp, "mine@example.com")
    other, _, _ = _deliver(engine, smtp, "theirs@example.com")
    _sql(engine, "update outbox set user_id=? where id=?", other, outbox_id)
    assert engine.activate(link).outcome == "invalid"
    assert engine.get_user(other).status == "pending"  # type: ignore[union-attr]


def test_database_holds_only_a_hash_of_the_token(engine: Engine, smtp: SmtpServer) -> None:
    """The raw token appears in no database file; the outbox keeps its SHA-256 only."""
    _, outbox_id, link = _deliver(engine, smtp, "hash@example.com")
    token = extract_token(link)
    assert token is not None
    data_dir = engine.settings.data_dir
    for path in data_dir.iterdir():
        if path.name != "secret.key":
            assert token.encode() not in path.read_bytes(), path.name
    with sqlite3.connect(engine.settings.app_db_path) as conn:
        (stored,) = conn.execute(
            "select token_hash from outbox where id=?", (outbox_id,)
        ).fetchone()
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_a_different_secret_cannot_use_the_token(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """Without the data directory's secret key the stored rows cannot produce a valid token."""
    engine = make_engine()
    _, _, link = _deliver(engine, smtp, "secret@example.com")
    (engine.settings.data_dir / "secret.key").write_bytes(b"k" * 32)
    assert make_engine().activate(link).outcome == "invalid"


def test_secret_key_file_is_private(engine: Engine) -> None:
    """secret.key is readable and writable by its owner only."""
    mode = stat.S_IMODE((engine.settings.data_dir / "secret.key").stat().st_mode)
    assert mode == 0o600


def test_resend_gives_a_new_working_link(engine: Engine, smtp: SmtpServer) -> None:
    """resend() queues a new activation email whose link activates the user."""
    user_id, first_outbox, _ = _deliver(engine, smtp, "again@example.com")
    resent = engine.resend("AGAIN@example.com")
    assert resent.outbox_id is not None and resent.outbox_id != first_outbox
    assert engine.get_outbox(resent.outbox_id).to == "again@example.com"  # type: ignore[union-attr]
    engine.deliver(resent.outbox_id)
    match = LINK.search(smtp.messages[-1].data)
    assert match is not None
    assert engine.activate(match.group().decode()).user_id == user_id


def test_resend_is_rate_limited_per_address(
    make_engine: Callable[..., Engine], smtp: SmtpServer
) -> None:
    """More than resend_limit resends within the window raise RateLimited; others are unaffected."""
    engine = make_engine(resend_limit=2, resend_window_seconds=3600)
    _deliver(engine, smtp, "busy@example.com")
    _deliver(engine, smtp, "calm@example.com")
    engine.resend("busy@example.com")
    engine.resend("busy@example.com")
    with pytest.raises(RateLimited) as info:
        engine.resend("busy@example.com")
    assert "at most 2" in str(info.value) and info.value.retry_after_seconds > 0
    assert engine.resend("calm@example.com").outbox_id is not None


def test_resend_for_unknown_or_active_address_queues_nothing(
    engine: Engine, smtp: SmtpServer
) -> None:
    """resend() for an unknown or already active address queues nothing and answers the same."""
    _, _, link = _deliver(engine, smtp, "active@example.com")
    engine.activate(link)
    unknown = engine.resend("nobody@example.com")
    active = engine.resend("active@example.com")
    assert unknown.outbox_id is None and active.outbox_id is None
    assert unknown.message == active.message


def test_worker_renders_the_same_token_the_row_was_created_for(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """A token rendered by the queue worker (not inline) activates the user."""
    r = engine.register("queued@example.com", PASSWORD)
    [message] = smtp.wait_for_messages(1)
    match = LINK.search(message.data)
    assert match is not None
    wait_until(lambda: engine.get_outbox(r.outbox_id).status == "sent", 5, "sent")  # type: ignore[union-attr]
    assert engine.activate(match.group().decode()).outcome == "activated"


@pytest.mark.parametrize("content", [b"", b"short"])
def test_a_damaged_secret_key_is_refused_by_name_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    """An empty or truncated secret.key is never used as a key: the error names the file
    and says what to do, and the file is kept for the user to look at."""
    from core import tokens
    from core.errors import DataFolderError

    monkeypatch.setattr(tokens, "SECRET_WAIT_SECONDS", 0.05)
    key = tmp_path / tokens.SECRET_FILE
    key.write_bytes(content)
    with pytest.raises(DataFolderError) as info:
        tokens.load_or_create_secret(tmp_path)
    assert str(key) in str(info.value) and "move it away" in str(info.value)
    assert key.read_bytes() == content
