"""One contract for every mail sender: the SMTP sender and its in-memory twin behave alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.delivery import MailSender, MemorySender, SendResult, SmtpSender
from core.engine import Engine
from tests.core.conftest import PASSWORD, SmtpServer, engine_settings

Delivered = Callable[[], list[bytes]]


@pytest.fixture(params=["smtp", "memory"])
def sender(
    request: pytest.FixtureRequest, smtp: SmtpServer
) -> Iterator[tuple[MailSender, Delivered]]:
    """Each sender, with a way to see what it delivered."""
    if request.param == "smtp":
        real = SmtpSender(smtp.host, smtp.port, 5.0)
        yield real, lambda: [m.data for m in smtp.messages]
        real.close()
    else:
        twin = MemorySender()
        yield twin, lambda: [e.data for e in twin.sent]


def test_sender_contract_delivers_the_exact_bytes(
    sender: tuple[MailSender, Delivered], data_dir: Path, smtp: SmtpServer
) -> None:
    """Through either sender, a sync sign-up is `sent` and the rendered bytes are delivered."""
    impl, delivered = sender
    with Engine(engine_settings(data_dir, smtp.port), sender=impl) as engine:
        r = engine.register("contract@example.com", PASSWORD, "Con Tract", delivery="sync")
        row = engine.get_outbox(r.outbox_id)
        assert row is not None and row.status == "sent" and row.last_code == 250
        [data] = delivered()
        assert row.message_id.encode() in data
        assert b"Con Tract" in data


def test_memory_sender_scripted_refusals_drive_the_state_machine(data_dir: Path) -> None:
    """The twin's scripted 451 then 550 give retrying then failed, like a real server would."""
    twin = MemorySender([SendResult("retry", 451, "later", "RCPT TO deferred: 451 later"),
                         SendResult("failed", 550, "no", "RCPT TO rejected permanently: 550 no")])
    with Engine(engine_settings(data_dir, 1), sender=twin) as engine:
        r = engine.register("scripted@example.com", PASSWORD, delivery="sync")
        assert engine.get_outbox(r.outbox_id).status == "retrying"  # type: ignore[union-attr]
        engine.queue.flush()
        with engine.db.write() as s:  # make the retry due now
            s.execute(text("update outbox set next_attempt_at = 0 where id = :i"),
                      {"i": r.outbox_id})
        engine.deliver(r.outbox_id)
        row = engine.get_outbox(r.outbox_id)
        assert row is not None and row.status == "failed" and row.last_code == 550
        assert twin.sent == []
