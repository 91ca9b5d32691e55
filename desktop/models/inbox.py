"""The Inbox list: captured messages, newest first, fetched in pages on demand.

A store of 100,000 messages costs one count and the pages actually looked at (see
`desktop.models.paged`). The query is the full-text search (None: every message).
"""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import QObject
from PySide6.QtGui import QColor, QFont

from desktop.models.base import DISPLAY, FONT, FOREGROUND, TOOLTIP
from desktop.models.format import fmt_full_time, fmt_list, fmt_size, fmt_time, one_line
from desktop.models.paged import PAGE_SIZE, PagedTableModel
from desktop.tasks import TaskRunner
from mailcatcher.search import SearchQuery, parse_search

__all__ = ["PAGE_SIZE", "InboxModel", "MessageSource"]


class MessageSource(Protocol):
    """The part of `mailcatcher.store.MessageStore` the inbox list reads."""

    def list_messages(
        self, *, limit: int = 50, offset: int = 0, query: SearchQuery | None = None
    ) -> list[Any]: ...

    def count_messages(self, *, query: SearchQuery | None = None) -> int: ...


class InboxModel(PagedTableModel):
    """Rows are mailcatcher `MessageSummary`s."""

    COL_RECEIVED, COL_FROM, COL_TO, COL_SUBJECT, COL_SIZE, COL_ATTACHMENTS, COL_NOTE = range(7)
    HEADERS = ("Received", "From", "To", "Subject", "Size", "Att.", "Note")
    PLACEHOLDER_COLUMN = COL_SUBJECT

    def __init__(
        self, source: MessageSource, runner: TaskRunner, parent: QObject | None = None
    ) -> None:
        super().__init__(runner, parent)
        self._source = source

    # Query ------------------------------------------------------------------------------
    @property
    def search(self) -> str | None:
        """The search text the list is filtered by (None: all messages)."""
        return self.query  # type: ignore[no-any-return]

    def set_search(self, text: str | None) -> None:
        """Filter by full-text search (empty: all); the list reloads off the GUI thread."""
        self.set_query((text or "").strip() or None)

    def message_at(self, row: int) -> Any | None:
        """The summary shown in `row`, if its page is loaded."""
        return self.row_at(row)

    def update_message(self, summary: Any) -> None:
        """Show a changed summary (read flag) at once, without waiting for a refresh."""
        self.update_row(summary)

    # The search box reads Mailpit's syntax (subject:, to:, is:unread, larger:, "a phrase"),
    # as the HTTP API and `mailroom messages --search` do.
    def fetch_count(self, query: Any, upto: int | None) -> int:
        return self._source.count_messages(
            query=parse_search(query) if query else None,
            before_id=None if upto is None else upto + 1)

    def fetch_page(self, query: Any, offset: int, limit: int, upto: int | None) -> list[Any]:
        return self._source.list_messages(
            limit=limit, offset=offset, query=parse_search(query) if query else None,
            before_id=None if upto is None else upto + 1)

    # Cells ---------------------------------------------------------------------------------
    def cell(self, m: Any, column: int, role: int) -> Any:
        if role == DISPLAY:
            if column == self.COL_RECEIVED:
                return fmt_time(m.received_at)
            if column == self.COL_FROM:
                return one_line(m.from_ or m.mail_from, 200)
            if column == self.COL_TO:
                # Addresses only: in a sign-up tool they are what tells the rows apart
                # (the names are in the tooltip).
                shown = ", ".join(_address_only(a) for a in m.to_addresses)
                return one_line(shown or m.to or fmt_list(m.rcpt_to), 200)
            if column == self.COL_SUBJECT:
                return one_line(m.subject, 300) or "(no subject)"
            if column == self.COL_SIZE:
                return fmt_size(m.size)
            if column == self.COL_ATTACHMENTS:
                return str(m.attachment_count) if m.attachment_count else ""
            if column == self.COL_NOTE:
                return self._note(m)
            return None
        if role == FONT and not m.read:
            font = QFont()
            font.setBold(True)
            return font
        if role == FOREGROUND and column == self.COL_NOTE and m.duplicate_of:
            return QColor("#e08a00")
        if role == TOOLTIP:
            if column == self.COL_RECEIVED:
                return fmt_full_time(m.received_at)
            if column == self.COL_NOTE:
                duplicate = (f"duplicate of #{m.duplicate_of}: its Message-ID was captured "
                             "before" if m.duplicate_of else "")
                return one_line(fmt_list([duplicate, *m.notes] if duplicate else m.notes),
                                2000) or None
            if column == self.COL_TO:
                header = one_line(m.to, 2000)
                envelope = one_line(fmt_list(m.rcpt_to), 2000)
                return "\n".join(t for t in (header and f"To: {header}",
                                              envelope and f"Envelope: {envelope}") if t) or None
        return None

    @staticmethod
    def _note(m: Any) -> str:
        parts = []
        if m.duplicate_of:
            parts.append(f"dup. of #{m.duplicate_of}")  # the tooltip says it in full
        if m.notes:
            parts.append("notes")
        return ", ".join(parts)


def _address_only(entry: str) -> str:
    """"Name <addr>" as "addr"; anything else as it is."""
    if entry.endswith(">") and "<" in entry:
        return entry[entry.rindex("<") + 1 : -1]
    return entry
