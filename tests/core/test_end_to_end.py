"""A sign-up travels the whole way: register → Huey consumer → SMTP server → sent → activate."""

from __future__ import annotations

import re

from core.engine import Engine
from core.worker import Worker
from tests.core.conftest import PASSWORD, SmtpServer, wait_until


def test_register_is_delivered_and_link_activates(
    engine: Engine, worker: Worker, smtp: SmtpServer
) -> None:
    """The activation email reaches the server via the queue and its link activates the user."""
    result = engine.register("Ada@Example.com", PASSWORD, "Ada Lovelace")
    assert result.user_id is not None
    assert result.status == "pending"
    wait_until(lambda: engine.get_outbox(result.outbox_id).status == "sent", 10, "sent")
    [message] = smtp.wait_for_messages(1)
    assert message.rcpt_tos == ("Ada@example.com",)
    link = re.search(rb"http://127\.0\.0\.1:8025/activate/[A-Za-z0-9_-]+", message.data)
    assert link is not None
    activation = engine.activate(link.group().decode())
    assert activation.outcome == "activated"
    user = engine.get_user(result.user_id)
    assert user is not None and user.status == "active" and user.activated_at is not None
