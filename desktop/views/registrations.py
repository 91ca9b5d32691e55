"""The Registrations tab: sign-up form, users list, the selected user's path, live chart."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.controllers import BulkResult, generate_password, inline_outcome
from desktop.models.format import fmt_ms, one_line
from desktop.models.users import UsersModel
from desktop.views.chart import LiveChart
from desktop.views.signup_path import SignupPathView
from desktop.views.widgets import ResultLine, make_table, set_column_widths

_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def collapse_line_breaks(text: str) -> str:
    """Line breaks (and the spaces around them) become one space; the ends are trimmed."""
    if not _LINE_BREAKS.search(text):
        return text
    return " ".join(part.strip() for part in _LINE_BREAKS.split(text) if part.strip())


def timing_text(elapsed_ms: float, hash_ms: float) -> str:
    """'470 ms (5.8 ms without password hashing)': the total and the engine's own part."""
    if hash_ms <= 0:
        return fmt_ms(elapsed_ms)
    return f"{fmt_ms(elapsed_ms)} ({fmt_ms(max(0.0, elapsed_ms - hash_ms))} without password " \
        "hashing)"


def signup_text(outcome: Any, generated_password: str = "") -> str:
    """The result line of one sign-up: who, how long, and what happened to the email."""
    result = outcome.result
    address = one_line(result.email, 200)
    took = timing_text(float(result.elapsed_ms), float(getattr(result, "hash_ms", 0.0) or 0.0))
    if result.outbox_id is None:
        email = "no email"
    elif outcome.outbox is not None:
        email = f"email #{result.outbox_id} {inline_outcome(outcome.outbox)}"
    elif result.delivery == "sync":
        email = f"email #{result.outbox_id} sent inline"
    else:
        email = f"email #{result.outbox_id} queued"
    if result.user_id is not None:
        text = f"✓ {address}: user #{result.user_id} ({result.status}) in {took}; {email}."
        if generated_password:
            text += f" Generated password: {generated_password}"
        return text
    # An existing account: no user was made, and the "check your inbox" answer meant
    # for the person signing up would mislead the operator.
    if result.outbox_id is None:
        return (f"✓ {address} is an existing account: no new user, in {took}; no email "
                "(its owner was sent a notice recently).")
    return (f"✓ {address} is an existing account: no new user, in {took}; {email}: a "
            "\"someone tried to sign up with your address\" notice to its owner.")


class RegistrationsView(QWidget):
    """Emits what the user asks for; shows results given by the main window."""

    register_requested = Signal(str, str, str, str)  # email, password, name, mode
    bulk_requested = Signal(int, str)  # count, mode
    bulk_stop_requested = Signal()
    user_selected = Signal(object)  # user id or None
    open_activation_requested = Signal(int)  # user id
    resend_requested = Signal(str)  # address

    def __init__(self, model: UsersModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._submitted: tuple[str, str, str] | None = None  # the form as last sent
        self.model = model
        # Form
        form_box = QGroupBox("Sign someone up", self)
        self.email_edit = QLineEdit(form_box)
        self.email_edit.setObjectName("email_edit")
        self.email_edit.setPlaceholderText("someone@example.com")
        self.name_edit = QLineEdit(form_box)
        self.name_edit.setObjectName("name_edit")
        self.name_edit.setPlaceholderText("Display name (optional)")
        self.password_edit = QLineEdit(form_box)
        self.password_edit.setObjectName("password_edit")
        self.password_edit.setPlaceholderText("at least 8 characters, not a common one")
        self.generate_button = QPushButton("Generate", form_box)
        self.generate_button.clicked.connect(self.on_generate)
        self.mode_combo = QComboBox(form_box)
        self.mode_combo.setObjectName("mode_combo")
        self.mode_combo.addItem("Queued (default)", "queue")
        self.mode_combo.addItem("Inline (sync)", "sync")
        self.mode_combo.setToolTip("Queued answers at once; inline sends the email before "
                                   "answering, so a slow SMTP server slows the sign-up.")
        self.signup_button = QPushButton("Sign up", form_box)
        self.signup_button.setObjectName("signup_button")
        self.signup_button.setDefault(True)
        self.signup_button.clicked.connect(self.on_signup)
        self.email_edit.returnPressed.connect(self.on_signup)
        self.password_edit.returnPressed.connect(self.on_signup)
        # One selectable line (a generated password can be copied); never widens the window.
        self.result_label = ResultLine(form_box)
        self.result_label.setObjectName("result_label")
        self.bulk_spin = QSpinBox(form_box)
        self.bulk_spin.setRange(1, 10000)
        self.bulk_spin.setValue(50)
        self._bulk_running = False
        self.bulk_button = QPushButton("Sign up N test users", form_box)
        self.bulk_button.setObjectName("bulk_button")
        self.bulk_button.clicked.connect(self.on_bulk)

        password_row = QHBoxLayout()
        password_row.addWidget(self.password_edit, 1)
        password_row.addWidget(self.generate_button)
        action_row = QHBoxLayout()
        action_row.addWidget(self.mode_combo)
        action_row.addWidget(self.signup_button)
        action_row.addSpacing(20)
        action_row.addWidget(self.bulk_spin)
        action_row.addWidget(self.bulk_button)
        action_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Email", self.email_edit)
        form.addRow("Name", self.name_edit)
        form.addRow("Password", password_row)
        form.addRow("Delivery", action_row)
        form.addRow("", self.result_label)
        form_box.setLayout(form)
        form_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        # Users list and path
        self.table = make_table(model, self, stretch_column=UsersModel.COL_EMAIL,
                                object_name="users_table")
        set_column_widths(self.table, {0: 3, 2: 10, 3: 7, 4: 8, 5: 9, 6: 8})
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_menu)
        self.model.modelReset.connect(self.restore_selection)
        self.model.page_loaded.connect(lambda _: self.restore_selection())
        self.path_view = SignupPathView(self)
        self.path_view.open_activation_requested.connect(self.open_activation_requested)
        self.path_view.resend_requested.connect(self.resend_requested)
        chart_box = QWidget(self)
        self.chart = LiveChart(chart_box)
        self.chart_without_hashing = QCheckBox("Without password hashing", chart_box)
        self.chart_without_hashing.setObjectName("chart_without_hashing")
        self.chart_without_hashing.setToolTip(
            "Plot each sign-up made here at its time without password hashing: hashing "
            "costs the same in both modes and hides the difference the delivery mode makes.")
        self.chart_without_hashing.toggled.connect(self.chart.set_without_hashing)
        chart_bar = QHBoxLayout()
        chart_bar.setContentsMargins(0, 0, 0, 0)
        chart_bar.addStretch(1)
        chart_bar.addWidget(self.chart_without_hashing)
        chart_layout = QVBoxLayout(chart_box)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_layout.setSpacing(2)
        chart_layout.addLayout(chart_bar)
        chart_layout.addWidget(self.chart, 1)

        self.list_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.list_splitter.setObjectName("registrations_list_splitter")
        self.list_splitter.addWidget(self.table)
        self.list_splitter.addWidget(self.path_view)
        self.list_splitter.setStretchFactor(0, 3)
        self.list_splitter.setStretchFactor(1, 4)
        self.list_splitter.setSizes([720, 680])
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setObjectName("registrations_splitter")
        self.splitter.addWidget(self.list_splitter)
        self.splitter.addWidget(chart_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([520, 260])

        layout = QVBoxLayout(self)
        layout.addWidget(form_box)
        layout.addWidget(self.splitter, 1)
        self._selected_id: int | None = None
        self._generated_password = ""

    # Intent ----------------------------------------------------------------------------
    def on_generate(self) -> None:
        self.password_edit.setText(generate_password())

    def on_signup(self) -> None:
        email = self.email_edit.text().strip()
        password = self.password_edit.text()
        self._generated_password = ""
        if not password:
            password = generate_password()
            self._generated_password = password
            self.password_edit.setText(password)
        # A name pasted with a line break: one line in the field, and sent as shown.
        name = collapse_line_breaks(self.name_edit.text())
        if name != self.name_edit.text():
            self.name_edit.setText(name)
        self.signup_button.setEnabled(False)
        self.result_label.setStyleSheet("")
        self.result_label.setText("Signing up…")
        self._submitted = self._form_values()
        self.register_requested.emit(email, password, name, self.mode)

    def _form_values(self) -> tuple[str, str, str]:
        return self.email_edit.text(), self.name_edit.text(), self.password_edit.text()

    def _clear_form_if_unchanged(self) -> None:
        """Empty the form after an answer, unless the user has typed the next one meanwhile
        (an inline sign-up can take seconds): typed input is never thrown away."""
        if self._form_values() == self._submitted:
            self.email_edit.clear()
            self.name_edit.clear()
            self.password_edit.clear()
        self._submitted = None

    def on_bulk(self) -> None:
        """Start a bulk sign-up, or stop the one running (the button says which)."""
        if self._bulk_running:
            self.bulk_button.setEnabled(False)
            self.bulk_button.setText("Stopping…")
            self.bulk_stop_requested.emit()
            return
        self._bulk_running = True
        self.bulk_button.setText(f"Stop (0/{self.bulk_spin.value()})")
        self.bulk_requested.emit(self.bulk_spin.value(), self.mode)

    @property
    def mode(self) -> str:
        """The delivery mode chosen in the form."""
        return str(self.mode_combo.currentData())

    # Results ---------------------------------------------------------------------------
    def show_registered(self, outcome: Any) -> None:
        """Show the engine's answer to a sign-up (a controller `SignupOutcome`)."""
        self.signup_button.setEnabled(True)
        self.result_label.setStyleSheet("")
        self.result_label.setText(signup_text(outcome, self._generated_password))
        self._generated_password = ""
        self._clear_form_if_unchanged()
        self.email_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        result = outcome.result
        if result.user_id is not None:
            self.select_user(int(result.user_id))

    def show_register_failed(self, message: str) -> None:
        """Show why a sign-up was refused (e.g. 'email: ...')."""
        self.signup_button.setEnabled(True)
        self._generated_password = ""
        self.email_edit.setFocus(Qt.FocusReason.OtherFocusReason)
        self.result_label.setStyleSheet("color: #d9443f")
        # The engine names its inputs; say them as the form labels them.
        for field, label in (("display_name: ", "Name: "), ("email: ", "Email: "),
                             ("password: ", "Password: ")):
            if message.startswith(field):
                message = label + message[len(field):]
                break
        self.result_label.setText(f"✗ {one_line(message, 300)}")

    def show_bulk_progress(self, done: int, total: int) -> None:
        """Progress of a bulk sign-up."""
        if self._bulk_running and self.bulk_button.isEnabled():
            self.bulk_button.setText(f"Stop ({done}/{total})")

    def show_bulk_finished(self, result: BulkResult) -> None:
        """The outcome of a bulk sign-up."""
        self._bulk_running = False
        self.bulk_button.setEnabled(True)
        self.bulk_button.setText("Sign up N test users")
        times = sorted(result.elapsed_ms)
        median = times[len(times) // 2] if times else 0.0
        text = (f"Signed up {result.succeeded} of {result.requested} test users in "
                f"{result.seconds:.2f} s (median {fmt_ms(median)} each)")
        if result.failed:
            text += f"; {result.failed} failed: {one_line(result.first_error, 200)}"
        if result.stopped:
            text += "; stopped"
        self.result_label.setStyleSheet("")
        self.result_label.setText(text)

    def user_menu(self, user: Any) -> QMenu:
        """The context menu of one user: open the activation link, resend the email."""
        menu = QMenu(self)
        pending = str(user.status) == "pending"
        open_link = menu.addAction("Open activation link")
        open_link.setEnabled(pending)
        open_link.triggered.connect(
            lambda _=False, uid=int(user.id): self.open_activation_requested.emit(uid))
        resend = menu.addAction("Resend activation email")
        resend.setEnabled(pending)
        resend.triggered.connect(
            lambda _=False, email=str(user.email): self.resend_requested.emit(email))
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        user = self.model.row_at(index.row()) if index.isValid() else None
        if user is not None:
            menu = self.user_menu(user)
            menu.exec(self.table.viewport().mapToGlobal(pos))
            menu.deleteLater()

    # Selection -------------------------------------------------------------------------
    @property
    def selected_user_id(self) -> int | None:
        """The id of the selected user, if any."""
        return self._selected_id

    def select_user(self, user_id: int) -> None:
        """Select a user by id (when it is in the list)."""
        row = self.model.row_of(user_id)
        self._selected_id = user_id
        if row is not None:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))
        self.user_selected.emit(user_id)

    def _on_selection(self, *_: object) -> None:
        rows = self.table.selectionModel().selectedRows()
        user = self.model.row_at(rows[0].row()) if rows else None
        new_id = int(user.id) if user is not None else None
        # A selection lost to a reset keeps the remembered user (restore_selection finds it).
        if new_id is not None and new_id != self._selected_id:
            self._selected_id = new_id
            self.user_selected.emit(new_id)

    def restore_selection(self) -> None:
        """Re-select the remembered user after the list changed under the view."""
        if self._selected_id is None or self.table.selectionModel().hasSelection():
            return
        row = self.model.row_of(self._selected_id)
        if row is not None:
            self.table.selectRow(row)
