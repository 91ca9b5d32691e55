"""Sign-up rules: validation, canonical addresses, uniqueness, duplicates, passwords, atomicity."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher

from core import registration
from core.engine import Engine
from core.errors import ValidationError
from core.passwords import make_hasher
from core.settings import Settings
from core.worker import Worker
from tests.core.conftest import PASSWORD, SmtpServer, wait_until


def _rows(engine: Engine, table: str) -> int:
    with sqlite3.connect(engine.settings.app_db_path) as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])


def _nothing_written(engine: Engine) -> bool:
    return (
        _rows(engine, "users") == 0
        and _rows(engine, "outbox") == 0
        and engine.queue.pending_count() == 0
    )


@pytest.mark.parametrize(
    ("email", "password", "name", "field"),
    [
        ("not-an-address", PASSWORD, "", "email"),
        ("", PASSWORD, "", "email"),
        ("two@@example.com", PASSWORD, "", "email"),
        ("a@example.com\r\nBcc: x@example.com", PASSWORD, "", "email"),
        ("ok@example.com", "short", "", "password"),
        ("ok@example.com", PASSWORD, "Eve\r\nBcc: victim@example.com", "display_name"),
        ("ok@example.com", PASSWORD, "Eve\nX", "display_name"),
        ("ok@example.com", PASSWORD, "Eve\x00", "display_name"),
        ("ok@example.com", PASSWORD, "Eve\x1b[31m", "display_name"),
        ("ok@example.com", PASSWORD, "Eve\u202egnp.exe", "display_name"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(
    engine: Engine, email: str, password: str, name: str, field: str
) -> None:
    """Bad input raises ValidationError naming the field, and no user, outbox row or task exists."""
    with pytest.raises(ValidationError) as info:
        engine.register(email, password, name)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert _nothing_written(engine)


def test_password_of_exactly_eight_characters_is_accepted(engine: Engine) -> None:
    """Eight characters is the minimum, not one short of it."""
    assert engine.register("eight@example.com", "tr0mb0ne").user_id is not None


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("password", "most common"), ("PassWord123", "most common"),
        ("12345678", "most common"), ("iloveyou", "most common"),
        ("zzzzzzzzzz", "repeated"), ("9876543210", "run of"), ("abcdefghij", "run of"),
        ("POIUYTREWQ", "run of"), ("hgfedcba", "run of"),
        ("ada.lovelace", "email address"), ("Ada.Lovelace@Example.com", "email address"),
    ],
)
def test_guessable_passwords_are_refused_saying_why_and_nothing_is_written(
    engine: Engine, password: str, why: str
) -> None:
    """Common, repeated, sequential and own-address passwords are refused (NIST SP 800-63B),
    with a reason, before anything is stored."""
    with pytest.raises(ValidationError) as info:
        engine.register("ada.lovelace@example.com", password)
    assert info.value.field == "password" and why in str(info.value)
    assert _nothing_written(engine)


def test_a_long_passphrase_of_common_words_is_accepted(engine: Engine) -> None:
    """Length is what counts: common words make a fine passphrase, no symbols demanded."""
    assert engine.register("phrase@example.com", "password monkey dragon").user_id is not None


def test_password_is_stored_as_argon2id_hash(engine: Engine) -> None:
    """The stored password is an argon2id hash that verifies, never the password itself."""
    result = engine.register("hash@example.com", PASSWORD)
    with sqlite3.connect(engine.settings.app_db_path) as conn:
        (stored,) = conn.execute(
            "select password_hash from users where id = ?", (result.user_id,)
        ).fetchone()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_default_argon2_cost_is_owasps_argon2id_minimum() -> None:
    """Without cost settings the hasher uses OWASP's argon2id minimum: 19 MiB, t=2, p=1
    (tests only lower it)."""
    hasher = make_hasher(Settings())
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (2, 19 * 1024, 1)
    assert hasher.type.name == "ID"


def test_idna_unicode_and_ascii_domains_are_one_mailbox(engine: Engine) -> None:
    """bücher.example and xn--bcher-kva.example are the same address (IDNA 2008)."""
    first = engine.register("reader@bücher.example", PASSWORD)
    second = engine.register("reader@xn--bcher-kva.example", PASSWORD)
    assert first.user_id is not None and second.user_id is None
    assert engine.count_users() == 1
    user = engine.find_user("READER@XN--BCHER-KVA.EXAMPLE")
    assert user is not None and user.id == first.user_id
    assert user.email == "reader@bücher.example"


def test_idna_2008_keeps_sharp_s(engine: Engine) -> None:
    """faß.de stays faß.de (IDNA 2008), not fass.de as Python's IDNA 2003 codec would make it."""
    engine.register("a@faß.de", PASSWORD)
    assert engine.register("a@fass.de", PASSWORD).user_id is not None
    assert engine.count_users() == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Ada@Example.com", "ada@EXAMPLE.COM"),
        ("ÅSA@example.com", "åsa@example.com"),  # SQLite NOCASE folds ASCII only
        ("STRASSE@example.com", "straße@example.com"),  # full Unicode case fold
        ("jos\u00e9@example.com", "jose\u0301@example.com"),  # composed vs decomposed é
    ],
)
def test_uniqueness_uses_unicode_casefold(engine: Engine, first: str, second: str) -> None:
    """Addresses equal under str.casefold are one account."""
    engine.register(first, PASSWORD)
    result = engine.register(second, PASSWORD)
    assert result.user_id is None
    assert engine.count_users() == 1


def test_duplicate_gets_the_same_answer_and_owner_gets_a_notice(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """A second sign-up for an address answers like a new one and mails the stored address."""
    new = engine.register("Ada@Example.com", PASSWORD, "Ada")
    dup = engine.register("ada@example.COM", "another password", "Mallory")
    assert (dup.status, dup.message, dup.delivery) == (new.status, new.message, new.delivery)
    assert type(dup.outbox_id) is int and dup.outbox_id != new.outbox_id
    assert dup.user_id is None
    assert engine.count_users() == 1
    notice = engine.get_outbox(dup.outbox_id)
    assert notice is not None
    assert notice.kind == "signup_attempt_notice"
    assert notice.to == "Ada@example.com"  # the stored address, not the look-alike typed
    assert notice.user_id == new.user_id
    wait_until(lambda: len(smtp.messages) == 2, 10, "both emails")
    by_rcpt = {m.data.split(b"Subject: ")[1].split(b"\r\n")[0]: m for m in smtp.messages}
    warn = by_rcpt[registration.NOTICE_SUBJECT.encode()]
    assert warn.rcpt_tos == ("Ada@example.com",)
    assert b"/activate/" not in warn.data  # the notice carries no token
    user = engine.get_user(new.user_id or 0)
    assert user is not None and user.display_name == "Ada"


def test_duplicate_sign_up_still_hashes_the_password(engine: Engine) -> None:
    """Duplicates spend the hashing time too, so timing does not reveal existing accounts."""
    engine.register("time@example.com", PASSWORD)
    dup = engine.register("time@example.com", PASSWORD)
    assert dup.hash_ms > 0


def test_user_and_outbox_are_one_transaction(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing the outbox row fails, the user row is not written either."""

    def broken(secret: bytes, outbox_id: int) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(registration, "message_id_for", broken)
    with pytest.raises(RuntimeError):
        engine.register("atomic@example.com", PASSWORD)
    assert _nothing_written(engine)


def test_enqueue_happens_after_commit(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the task is enqueued, the user and outbox rows are already committed."""
    seen: list[tuple[int, int]] = []
    original = engine.queue.enqueue

    def spy(outbox_id: int) -> None:
        with sqlite3.connect(engine.settings.app_db_path) as conn:  # another connection
            seen.append(
                (
                    conn.execute("select count(*) from users").fetchone()[0],
                    conn.execute("select count(*) from outbox where id=?", (outbox_id,))
                    .fetchone()[0],
                )
            )
        original(outbox_id)

    monkeypatch.setattr(engine._registration, "enqueue", spy)
    engine.register("commit@example.com", PASSWORD)
    assert seen == [(1, 1)]


def test_failed_enqueue_still_answers_and_the_sweeper_delivers(
    make_engine: Callable[..., Engine], smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between commit and enqueue loses nothing: the sweeper enqueues the row."""
    engine = make_engine()

    def lost(outbox_id: int) -> None:
        raise OSError("queue unavailable")

    monkeypatch.setattr(engine._registration, "enqueue", lost)
    result = engine.register("lost@example.com", PASSWORD)
    assert engine.queue.pending_count() == 0
    assert engine.get_outbox(result.outbox_id).status == "queued"  # type: ignore[union-attr]
    w = engine.start_worker(1)
    try:
        wait_until(
            lambda: engine.get_outbox(result.outbox_id).status == "sent",  # type: ignore[union-attr]
            10,
            "the swept row to be sent",
        )
    finally:
        w.stop()
    assert smtp.messages[0].rcpt_tos == ("lost@example.com",)


def test_elapsed_and_signup_time_are_recorded(engine: Engine) -> None:
    """The answer carries elapsed_ms and the user row keeps the sign-up time."""
    r = engine.register("timed@example.com", PASSWORD)
    user = engine.get_user(r.user_id or 0)
    assert r.elapsed_ms > 0 and user is not None and user.signup_ms is not None
    assert 0 < user.signup_ms <= r.elapsed_ms
    assert user.created_at.tzinfo is not None


@pytest.mark.parametrize(
    "email",
    [
        "a@flaky.test",
        "x@app.localhost",
        "a@example.local",
        "dev@localhost",
        "qa@test",
        "bounce@nowhere.invalid",
        "Dev@App.LOCALHOST",
        "user@bücher.local",
    ],
)
def test_developer_test_domains_are_accepted(engine: Engine, email: str) -> None:
    """Reserved names developers test with (.test, .localhost, .local, .invalid) sign up."""
    result = engine.register(email, PASSWORD)
    assert result.user_id is not None
    assert engine.find_user(email) is not None


def test_test_domain_address_is_kept_in_canonical_form(engine: Engine) -> None:
    """A reserved domain is stored lower-case like any other, and delivered to as stored."""
    result = engine.register("Dev@App.LOCALHOST", PASSWORD, delivery="sync")
    assert result.email == "Dev@app.localhost"
    outbox = engine.get_outbox(result.outbox_id or 0)
    assert outbox is not None and outbox.status == "sent" and outbox.to == "Dev@app.localhost"


@pytest.mark.parametrize(
    "email",
    [
        "a@relay.onion",  # not a test domain: Tor names must not be looked up at all
        "a@in-addr.arpa",
        "a@-bad.localhost",
        "a@bad-.test",
        "a..b@example.local",
        "a@exa mple.test",
        "a@@localhost",
        "a@localhost.",
        "a@ab--cd.local",
        "<a@localhost>",
        "Name <a@localhost>",
    ],
)
def test_syntax_and_other_reserved_names_are_still_refused(engine: Engine, email: str) -> None:
    """Accepting test domains keeps every syntax check, and the other reserved names refused."""
    with pytest.raises(ValidationError) as info:
        engine.register(email, PASSWORD)
    assert info.value.field == "email"
    assert _nothing_written(engine)


def test_local_part_of_64_octets_is_accepted(engine: Engine) -> None:
    """RFC 5321 allows 64 octets before the @."""
    assert engine.register("a" * 64 + "@example.com", PASSWORD).user_id is not None


@pytest.mark.parametrize(
    "local",
    ["a" * 65, "é" * 33],  # 65 ASCII octets; 33 characters but 66 octets in UTF-8
)
def test_local_part_over_64_octets_is_refused_naming_the_field(
    engine: Engine, local: str
) -> None:
    """A local part longer than 64 octets (UTF-8) is refused, naming the email field."""
    with pytest.raises(ValidationError) as info:
        engine.register(f"{local}@example.local", PASSWORD)
    assert info.value.field == "email"
    assert "64" in info.value.message
    assert _nothing_written(engine)
