"""The Registrations list: every user, newest first, fetched in pages (see models.paged)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from desktop.models.base import FOREGROUND, TOOLTIP
from desktop.models.colors import state_color
from desktop.models.format import fmt_full_time, fmt_ms, fmt_time, one_line
from desktop.models.paged import PagedTableModel
from desktop.tasks import TaskRunner


class UsersModel(PagedTableModel):
    """Rows are core `UserView`s (id, email, display_name, status, created_at, ...)."""

    COL_ID, COL_EMAIL, COL_NAME, COL_STATUS, COL_CREATED, COL_SIGNUP, COL_ACTIVATED = range(7)
    HEADERS = ("#", "Email", "Name", "Status", "Signed up", "Sign-up took", "Activated")
    PLACEHOLDER_COLUMN = COL_EMAIL

    def __init__(self, engine: Any, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(runner, parent)
        self._engine = engine

    def fetch_count(self, query: Any, upto: int | None) -> int:
        return int(self._engine.count_users(upto=upto))

    def fetch_page(self, query: Any, offset: int, limit: int, upto: int | None) -> list[Any]:
        return list(self._engine.list_users(limit=limit, offset=offset, upto=upto))

    def display(self, row: Any, column: int) -> str:
        if column == self.COL_ID:
            return str(row.id)
        if column == self.COL_EMAIL:
            return one_line(row.email)
        if column == self.COL_NAME:
            return one_line(row.display_name)
        if column == self.COL_STATUS:
            return str(row.status)
        if column == self.COL_CREATED:
            return fmt_time(row.created_at)
        if column == self.COL_SIGNUP:
            return fmt_ms(getattr(row, "signup_ms", None))
        if column == self.COL_ACTIVATED:
            return fmt_time(row.activated_at)
        return ""

    def cell_data(self, row: Any, column: int, role: int) -> Any:
        if role == FOREGROUND and column == self.COL_STATUS:
            return state_color(row.status)
        if role == TOOLTIP:
            if column == self.COL_CREATED:
                return fmt_full_time(row.created_at)
            if column == self.COL_ACTIVATED:
                return fmt_full_time(row.activated_at)
        return None
