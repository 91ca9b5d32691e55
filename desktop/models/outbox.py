"""The Outbox list (one row per outbound email) and the attempts of one email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import QObject, Qt

from desktop.models.base import ALIGN, FOREGROUND, TOOLTIP, RowsModel
from desktop.models.colors import state_color
from desktop.models.format import (
    fmt_attempts,
    fmt_full_time,
    fmt_ms,
    fmt_time,
    kind_label,
    one_line,
)
from desktop.models.paged import PagedTableModel
from desktop.tasks import TaskRunner


def reply_text(code: object, reply: object) -> str:
    """'250 OK' from a code and a reply text, either of which may be missing.

    A reply that already holds its code (at the start, or quoted in an error such as
    "RCPT TO rejected permanently: 550 ...") is not prefixed with it again.
    """
    text = one_line(reply, 200)
    number = str(code) if code not in (None, "") else ""
    if number and (text.startswith(number) or f": {number} " in text):
        number = ""
    parts = [number, text]
    return " ".join(p for p in parts if p)


class OutboxModel(PagedTableModel):
    """Rows are core `OutboxView`s, newest first, in pages; the query is a state or None."""

    (COL_ID, COL_KIND, COL_TO, COL_STATUS, COL_ATTEMPTS, COL_NEXT, COL_LAST, COL_CREATED,
     COL_SENT) = range(9)
    HEADERS = ("#", "Kind", "To", "State", "Attempts", "Next attempt", "Last reply", "Created",
               "Sent")
    PLACEHOLDER_COLUMN = COL_TO

    def __init__(self, engine: Any, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(runner, parent)
        self._engine = engine

    def fetch_count(self, query: Any, upto: int | None) -> int:
        return self._engine.count_outbox(status=query, upto=upto)

    def fetch_page(self, query: Any, offset: int, limit: int, upto: int | None) -> list[Any]:
        return list(self._engine.list_outbox(status=query, limit=limit, offset=offset,
                                             upto=upto))

    def display(self, row: Any, column: int) -> str:
        if column == self.COL_ID:
            return str(row.id)
        if column == self.COL_KIND:
            return kind_label(str(row.kind))
        if column == self.COL_TO:
            return one_line(row.to)
        if column == self.COL_STATUS:
            return str(row.status)
        if column == self.COL_ATTEMPTS:
            return fmt_attempts(row.attempts, row.max_attempts, row.status)
        if column == self.COL_NEXT:
            return fmt_time(row.next_attempt_at) if row.status in ("queued", "retrying") else ""
        if column == self.COL_LAST:
            text = reply_text(row.last_code, row.last_error)
            return text
        if column == self.COL_CREATED:
            return fmt_time(row.created_at)
        if column == self.COL_SENT:
            return fmt_time(row.sent_at)
        return ""

    def cell_data(self, row: Any, column: int, role: int) -> Any:
        if role == FOREGROUND and column == self.COL_STATUS:
            return state_color(row.status)
        if role == TOOLTIP:
            if column == self.COL_LAST:
                return one_line(row.last_error, 2000) or None
            if column == self.COL_NEXT:
                return fmt_full_time(row.next_attempt_at) or None
            if column == self.COL_TO:
                return one_line(row.subject, 500) or None
            if column == self.COL_ATTEMPTS:
                return (f"{row.attempts} attempt(s) made; the budget allows "
                        f"{row.max_attempts} in all (a manual retry adds a fresh budget)")
        return None


@dataclass(frozen=True)
class AttemptInFlight:
    """The attempt an email in `sending` is making now: kept only once it ends, so the
    attempts list shows this stand-in meanwhile (the fields an AttemptView shows)."""

    number: int
    started_at: datetime | None
    duration_ms: float | None = None
    code: int | None = None
    reply: str = "in progress..."
    error: str | None = None
    outcome: str = "sending"


def attempts_with_current(attempts: list[Any], email: Any) -> list[Any]:
    """An email's kept attempts, plus the one in flight while it is `sending`."""
    if email is None or email.status != "sending":
        return attempts
    return [*attempts, AttemptInFlight(len(attempts) + 1, email.updated_at)]


class AttemptsModel(RowsModel[Any]):
    """Rows are core `AttemptView`s of one outbound email, first attempt first (and an
    `AttemptInFlight` while one is under way)."""

    COL_NUMBER, COL_STARTED, COL_DURATION, COL_CODE, COL_REPLY, COL_OUTCOME = range(6)
    HEADERS = ("Attempt", "Started", "Took", "Code", "Reply", "Outcome")

    def key(self, row: Any) -> object:
        """The attempt's number: the one in flight is replaced in place once it is kept."""
        return row.number

    def display(self, row: Any, column: int) -> str:
        if column == self.COL_NUMBER:
            return str(row.number)
        if column == self.COL_STARTED:
            return fmt_full_time(row.started_at)
        if column == self.COL_DURATION:
            return fmt_ms(row.duration_ms)
        if column == self.COL_CODE:
            return "" if row.code is None else str(row.code)
        if column == self.COL_REPLY:
            return one_line(row.reply or row.error, 300)
        if column == self.COL_OUTCOME:
            return str(row.outcome)
        return ""

    def cell_data(self, row: Any, column: int, role: int) -> Any:
        if role == FOREGROUND and column == self.COL_OUTCOME:
            return state_color(row.outcome)
        if role == ALIGN and column in (self.COL_NUMBER, self.COL_DURATION, self.COL_CODE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == TOOLTIP and column == self.COL_REPLY:
            return one_line(row.error or row.reply, 2000) or None
        return None
