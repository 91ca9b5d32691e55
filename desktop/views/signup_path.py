"""The heart of the window: everything that happened to one sign-up, in one tree.

Request (when, how long) → each outbound email → every delivery attempt (code,
reply, duration) → the message the catcher captured (matched by Message-ID, one
click to open it) → the activation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.models.colors import state_color
from desktop.models.format import (
    as_datetime,
    fmt_attempts,
    fmt_full_time,
    fmt_ms,
    kind_label,
    one_line,
)
from desktop.models.outbox import reply_text
from desktop.views.widgets import plain_label

MESSAGE_ID_ROLE = Qt.ItemDataRole.UserRole + 1


def _stamp(value: object) -> float:
    dt = as_datetime(value)
    return dt.timestamp() if dt is not None else float("inf")


def _since(start: object, end: object) -> str:
    a, b = as_datetime(start), as_datetime(end)
    if a is None or b is None:
        return ""
    return fmt_ms((b - a).total_seconds() * 1000)


class SignupPathView(QWidget):
    """Shows a `PathView` (from the controller) as a tree; asks to open captured messages."""

    open_message_requested = Signal(int)
    open_activation_requested = Signal(int)  # user id
    resend_requested = Signal(str)  # the user's address

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = plain_label("Select a user to see the path of their sign-up.", self)
        font = QFont(self.title.font())
        font.setBold(True)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("signup_path")
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Step", "When", "Detail"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setWordWrap(False)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.tree.itemDoubleClicked.connect(self._on_double_clicked)
        self.open_link_button = QPushButton("Open activation link", self)
        self.open_link_button.setObjectName("open_activation_button")
        self.open_link_button.setToolTip(
            "Open the link of the captured activation email in the browser (activates here "
            "if no browser opens)")
        self.open_link_button.clicked.connect(self._on_open_link)
        self.resend_button = QPushButton("Resend activation email", self)
        self.resend_button.setObjectName("resend_button")
        self.resend_button.setToolTip("Queue a fresh activation email (rate-limited)")
        self.resend_button.clicked.connect(self._on_resend)
        actions = QHBoxLayout()
        actions.setContentsMargins(0, 0, 0, 0)
        actions.addWidget(self.open_link_button)
        actions.addWidget(self.resend_button)
        actions.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(actions)
        layout.addWidget(self.tree, 1)
        self.user_id: int | None = None
        self.user_email = ""
        self.open_buttons: list[QPushButton] = []
        self._set_actions(None)

    def show_path(self, view: Any | None) -> None:
        """Render a PathView (None: nothing selected)."""
        self.tree.clear()
        self.open_buttons = []
        if view is None:
            self.user_id = None
            self.user_email = ""
            self._set_actions(None)
            self.title.setText("Select a user to see the path of their sign-up.")
            return
        path = view.path
        user = path.user
        self.user_id = int(user.id)
        self.user_email = str(user.email)
        self._set_actions(str(user.status))
        self.title.setText(f"Sign-up path of {one_line(user.email, 200)} (user #{user.id})")

        # Top-level steps in time order: an activation made before a later notice email
        # is listed before that email.
        activated_at = getattr(path, "activated_at", None) or user.activated_at
        steps: list[tuple[float, int, Any]] = [(_stamp(user.created_at), 0, None)]
        steps += [(_stamp(item.created_at), 1, item) for item in path.outbox]
        if activated_at:
            steps.append((_stamp(activated_at), 2, None))
        steps.sort(key=lambda step: (step[0], step[1]))
        attempts_by_outbox = getattr(path, "attempts", {}) or {}
        for _, kind, item in steps:
            if kind == 0:
                request = self._item(None, "Sign-up request", fmt_full_time(user.created_at),
                                     f"answered in {fmt_ms(getattr(user, 'signup_ms', None))}"
                                     f" · now {user.status}")
                request.setForeground(2, QBrush(state_color(user.status)
                                                or self.palette().text()))
            elif kind == 1:
                self._add_email(view, user, item, attempts_by_outbox.get(item.id, []))
            else:
                node = self._item(None, "Activated", fmt_full_time(activated_at),
                                  f"{_since(user.created_at, activated_at)} after the sign-up")
                node.setForeground(2, QBrush(state_color("active") or self.palette().text()))
        if not activated_at:
            self._item(None, "Activation", "", "not yet activated")
        self.tree.expandAll()

    def _add_email(self, view: Any, user: Any, item: Any, attempts: list[Any]) -> None:
        email = self._item(
            None,
            f"Email #{item.id} ({kind_label(item.kind)})",
            fmt_full_time(item.created_at),
            f"{item.status} · to {one_line(item.to, 120)} · "
            f"attempts {fmt_attempts(item.attempts, item.max_attempts, item.status)}",
            item.status,
        )
        # Attempts, captures and "Sent" in the order they happened: the catcher stores a
        # message before its 250, and the worker marks the email sent after it.
        captured = view.captured.get(item.id, ())
        events: list[tuple[float, int, Callable[[], object]]] = [
            (_stamp(a.started_at), 0, partial(self._add_attempt, email, a)) for a in attempts
        ]
        events += [(_stamp(m.received_at), 1, partial(self._add_capture, email, m, n))
                   for n, m in enumerate(captured)]
        if item.sent_at:
            events.append((_stamp(item.sent_at), 2, partial(
                self._item, email, "Sent", fmt_full_time(item.sent_at),
                f"{_since(user.created_at, item.sent_at)} after the sign-up")))
        for _, _, add in sorted(events, key=lambda e: (e[0], e[1])):
            add()
        if item.status in ("queued", "retrying") and item.next_attempt_at:
            self._item(email, "Next attempt", fmt_full_time(item.next_attempt_at), "")
        if item.status == "sent" and not captured:
            self._item(email, "Not in the catcher", "",
                       "sent to another SMTP server, or deleted from the inbox")

    def _add_attempt(self, email: QTreeWidgetItem, attempt: Any) -> None:
        self._item(
            email,
            f"Attempt {attempt.number}",
            fmt_full_time(attempt.started_at),
            f"{reply_text(attempt.code, attempt.reply or attempt.error)}"
            f" · took {fmt_ms(attempt.duration_ms)} · {attempt.outcome}",
            attempt.outcome,
        )

    def _add_capture(self, email: QTreeWidgetItem, message: Any, n: int) -> None:
        label = "Captured by the catcher" if n == 0 else "Captured again (duplicate)"
        node = self._item(email, label, fmt_full_time(message.received_at),
                          f"message #{message.id} · {one_line(message.subject, 120)}")
        node.setData(0, MESSAGE_ID_ROLE, int(message.id))
        button = QPushButton(f"Open #{message.id} in Inbox", self.tree)
        button.setObjectName(f"open_message_{message.id}")
        button.clicked.connect(
            lambda _=False, mid=int(message.id): self.open_message_requested.emit(mid)
        )
        self.open_buttons.append(button)
        holder = QTreeWidgetItem(email, ["", "", ""])
        holder.setData(0, MESSAGE_ID_ROLE, int(message.id))
        self.tree.setItemWidget(holder, 2, button)

    def _set_actions(self, status: str | None) -> None:
        pending = status == "pending"
        self.open_link_button.setEnabled(pending)
        self.resend_button.setEnabled(pending)

    def _on_open_link(self) -> None:
        if self.user_id is not None:
            self.open_activation_requested.emit(self.user_id)

    def _on_resend(self) -> None:
        if self.user_email:
            self.resend_requested.emit(self.user_email)

    def steps(self) -> list[str]:
        """The top-level steps shown (e.g. "Sign-up request", "Email #1 ...", "Activated")."""
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item.text(0) for item in items if item is not None]

    def _item(self, parent: QTreeWidgetItem | None, step: str, when: str,
              detail: str, state: str | None = None) -> QTreeWidgetItem:
        """A row of the path; its detail in the colour of `state`, if one is given."""
        item = QTreeWidgetItem([step, when, detail])
        item.setToolTip(2, detail)
        color = state_color(state) if state else None
        if color is not None:
            item.setForeground(2, QBrush(color))
        if parent is None:
            self.tree.addTopLevelItem(item)
        else:
            parent.addChild(item)
        return item

    def _on_double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        message_id = item.data(0, MESSAGE_ID_ROLE)
        if message_id is not None:
            self.open_message_requested.emit(int(message_id))
