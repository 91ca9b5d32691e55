"""The Registrations tab: sign-up form, users list, the selected user's path, live chart."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.controllers import BulkResult, generate_password
from desktop.models.format import fmt_ms, one_line
from desktop.models.users import UsersModel
from desktop.views.chart import LiveChart
from desktop.views.signup_path import SignupPathView
from desktop.views.widgets import make_table, plain_label, set_column_widths


class RegistrationsView(QWidget):
    """Emits what the user asks for; shows results given by the main window."""

    register_requested = Signal(str, str, str, str)  # email, password, name, mode
    bulk_requested = Signal(int, str)  # count, mode
    user_selected = Signal(object)  # user id or None

    def __init__(self, model: UsersModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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
        self.password_edit.setPlaceholderText("at least 8 characters")
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
        self.result_label = plain_label("", form_box)
        self.result_label.setObjectName("result_label")
        self.bulk_spin = QSpinBox(form_box)
        self.bulk_spin.setRange(1, 10000)
        self.bulk_spin.setValue(50)
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
        set_column_widths(self.table, {0: 3, 2: 12, 3: 7, 4: 8, 5: 9, 6: 8})
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.model.modelReset.connect(self.restore_selection)
        self.model.page_loaded.connect(lambda _: self.restore_selection())
        self.path_view = SignupPathView(self)
        self.chart = LiveChart(self)

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
        self.splitter.addWidget(self.chart)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([520, 260])

        layout = QVBoxLayout(self)
        layout.addWidget(form_box)
        layout.addWidget(self.splitter, 1)
        self._selected_id: int | None = None

    # Intent ----------------------------------------------------------------------------
    def on_generate(self) -> None:
        self.password_edit.setText(generate_password())

    def on_signup(self) -> None:
        email = self.email_edit.text().strip()
        password = self.password_edit.text()
        if not password:
            password = generate_password()
            self.password_edit.setText(password)
        self.signup_button.setEnabled(False)
        self.result_label.setText("Signing up…")
        self.register_requested.emit(email, password, self.name_edit.text(), self.mode)

    def on_bulk(self) -> None:
        self.bulk_button.setEnabled(False)
        self.bulk_requested.emit(self.bulk_spin.value(), self.mode)

    @property
    def mode(self) -> str:
        """The delivery mode chosen in the form."""
        return str(self.mode_combo.currentData())

    # Results ---------------------------------------------------------------------------
    def show_registered(self, result: Any) -> None:
        """Show the engine's answer to a sign-up."""
        self.signup_button.setEnabled(True)
        mode = "sent inline" if result.delivery == "sync" else "queued"
        self.result_label.setStyleSheet("")
        who = f"user #{result.user_id}" if result.user_id is not None else \
            "already registered, no new user"
        if result.outbox_id is not None:
            email = f"email #{result.outbox_id} {mode}"
        else:
            email = "no email (its owner was notified recently)"
        text = (f"✓ {one_line(result.email, 200)}: {who} ({result.status}) in "
                f"{fmt_ms(result.elapsed_ms)}; {email}.")
        note = getattr(result, "message", "")
        if note:
            text += f" {one_line(note, 200)}"
        self.result_label.setText(text)
        self.email_edit.clear()
        self.name_edit.clear()
        self.password_edit.clear()
        if result.user_id is not None:
            self.select_user(int(result.user_id))

    def show_register_failed(self, message: str) -> None:
        """Show why a sign-up was refused (e.g. 'email: ...')."""
        self.signup_button.setEnabled(True)
        self.result_label.setStyleSheet("color: #d9443f")
        self.result_label.setText(f"✗ {one_line(message, 300)}")

    def show_bulk_progress(self, done: int, total: int) -> None:
        """Progress of a bulk sign-up."""
        self.bulk_button.setText(f"Signing up… {done}/{total}")

    def show_bulk_finished(self, result: BulkResult) -> None:
        """The outcome of a bulk sign-up."""
        self.bulk_button.setEnabled(True)
        self.bulk_button.setText("Sign up N test users")
        times = sorted(result.elapsed_ms)
        median = times[len(times) // 2] if times else 0.0
        text = (f"Signed up {result.succeeded} of {result.requested} test users in "
                f"{result.seconds:.2f} s (median {fmt_ms(median)} each)")
        if result.failed:
            text += f"; {result.failed} failed: {one_line(result.first_error, 200)}"
        self.result_label.setStyleSheet("")
        self.result_label.setText(text)

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
