"""The Chaos tab: the catcher's fault rules, a master switch, and the faults it injected."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
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

from desktop.models.chaos import ChaosRulesModel, FaultsModel
from desktop.views.widgets import make_table, plain_label, set_column_widths
from mailcatcher.chaos import ChaosRule

STAGES = ("connect", "mail", "rcpt", "data")


class ChaosView(QWidget):
    """Emits rule changes; shows rules, the switch and recent faults."""

    add_rule_requested = Signal(object)  # ChaosRule
    remove_rule_requested = Signal(int)
    clear_rules_requested = Signal()
    enabled_toggled = Signal(bool)

    def __init__(self, rules: ChaosRulesModel, faults: FaultsModel,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rules_model = rules
        self.faults_model = faults
        self.enabled_check = QCheckBox("Fault injection on (master switch)", self)
        self.enabled_check.setObjectName("chaos_enabled")
        self.enabled_check.toggled.connect(self._on_toggled)
        self.explain = plain_label(
            "Rules make the catcher misbehave on purpose; changes apply from the next SMTP "
            "connection. Switching off keeps the rules but stops them all.", self)
        self.explain.setWordWrap(True)

        box = QGroupBox("New rule", self)
        self.stage_combo = QComboBox(box)
        self.stage_combo.setObjectName("stage_combo")
        for stage in STAGES:
            self.stage_combo.addItem(stage.upper() if stage != "connect" else "connect", stage)
        self.stage_combo.setCurrentIndex(STAGES.index("rcpt"))
        # The reply code is optional (a delay-only or drop rule has none): a check box
        # says whether there is one, so "no code" is one click and never a magic value.
        self.code_check = QCheckBox("reply", box)
        self.code_check.setObjectName("code_check")
        self.code_check.setChecked(True)
        self.code_check.setToolTip("Untick for a rule without a reply code (a delay only)")
        self.code_spin = QSpinBox(box)
        self.code_spin.setObjectName("code_spin")
        self.code_spin.setRange(400, 599)
        self.code_spin.setValue(451)
        self.code_spin.setCorrectionMode(QSpinBox.CorrectionMode.CorrectToNearestValue)
        self.message_edit = QLineEdit(box)
        self.message_edit.setPlaceholderText("reply text (optional)")
        self.code_check.toggled.connect(self._update_form)
        self.delay_spin = QSpinBox(box)
        self.delay_spin.setRange(0, 600_000)
        self.delay_spin.setSingleStep(500)
        self.delay_spin.setSuffix(" ms")
        self.drop_check = QCheckBox("drop the connection (no reply)", box)
        self.drop_check.setObjectName("drop_check")
        self.drop_check.toggled.connect(self._update_form)
        self.probability_spin = QDoubleSpinBox(box)
        self.probability_spin.setRange(0, 100)
        self.probability_spin.setValue(100)
        self.probability_spin.setSuffix(" %")
        self.match_edit = QLineEdit(box)
        self.match_edit.setPlaceholderText("recipient pattern, e.g. *@fail.test (optional)")
        self.per_combo = QComboBox(box)
        self.per_combo.addItem("per message", "message")
        self.per_combo.addItem("per connection", "connection")
        self.add_button = QPushButton("Add rule", box)
        self.add_button.setObjectName("add_rule_button")
        self.add_button.clicked.connect(self.on_add)
        self.form_error = plain_label("", box)
        self.form_error.setObjectName("form_error")
        self.form_error.setStyleSheet("color: #d9443f")
        # A long message wraps under the form instead of widening it.
        self.form_error.setWordWrap(True)
        self.form_error.setSizePolicy(QSizePolicy.Policy.Ignored,
                                      QSizePolicy.Policy.Preferred)
        form = QFormLayout(box)
        form.addRow("Stage", self.stage_combo)
        reply_row = QHBoxLayout()
        reply_row.addWidget(self.code_check)
        reply_row.addWidget(self.code_spin)
        reply_row.addWidget(self.message_edit, 1)
        form.addRow("Reply code", reply_row)
        form.addRow("Delay", self.delay_spin)
        form.addRow("", self.drop_check)
        form.addRow("Probability", self.probability_spin)
        form.addRow("Match", self.match_edit)
        form.addRow("Applies", self.per_combo)
        form.addRow("", self.add_button)
        form.addRow(self.form_error)

        self.rules_table = make_table(rules, self, stretch_column=ChaosRulesModel.COL_EFFECT,
                                      object_name="rules_table")
        set_column_widths(self.rules_table, {0: 4, 1: 8, 3: 10, 4: 18, 5: 10})
        self.remove_button = QPushButton("Remove rule", self)
        self.remove_button.clicked.connect(self.on_remove)
        self.clear_button = QPushButton("Remove all", self)
        self.clear_button.clicked.connect(self.clear_rules_requested)
        rules_bar = QHBoxLayout()
        rules_bar.addWidget(plain_label("Rules", self))
        rules_bar.addStretch(1)
        rules_bar.addWidget(self.remove_button)
        rules_bar.addWidget(self.clear_button)
        self.faults_table = make_table(faults, self, stretch_column=FaultsModel.COL_REPLY,
                                       object_name="faults_table")
        set_column_widths(self.faults_table, {0: 9, 1: 8, 2: 10, 4: 22, 5: 16})

        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.enabled_check)
        left_layout.addWidget(self.explain)
        left_layout.addWidget(box)
        left_layout.addStretch(1)
        right = QSplitter(Qt.Orientation.Vertical, self)
        rules_page = QWidget(right)
        rules_layout = QVBoxLayout(rules_page)
        rules_layout.setContentsMargins(0, 0, 0, 0)
        rules_layout.addLayout(rules_bar)
        rules_layout.addWidget(self.rules_table, 1)
        faults_page = QWidget(right)
        faults_layout = QVBoxLayout(faults_page)
        faults_layout.setContentsMargins(0, 0, 0, 0)
        faults_layout.addWidget(plain_label("Recent faults (injected, and the server's own "
                                            "rejections)", faults_page))
        faults_layout.addWidget(self.faults_table, 1)
        right.addWidget(rules_page)
        right.addWidget(faults_page)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("chaos_splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)
        self._update_form()

    def _update_form(self, *_: object) -> None:
        """A dropped connection has no reply: drop turns the code (and its text) off."""
        drop = self.drop_check.isChecked()
        self.code_check.setEnabled(not drop)
        has_code = self.code_check.isChecked() and not drop
        self.code_spin.setEnabled(has_code)
        self.message_edit.setEnabled(has_code)

    def set_enabled_state(self, enabled: bool) -> None:
        """Show the stored state of the master switch without emitting a change."""
        self.enabled_check.blockSignals(True)
        self.enabled_check.setChecked(enabled)
        self.enabled_check.blockSignals(False)

    def build_rule(self) -> ChaosRule:
        """The rule described by the form (ValueError if it makes no sense)."""
        has_code = self.code_check.isChecked() and not self.drop_check.isChecked()
        code = self.code_spin.value() if has_code else None
        return ChaosRule(
            stage=self.stage_combo.currentData(),
            code=code,
            message=self.message_edit.text().strip() if has_code else "",
            delay_ms=self.delay_spin.value(),
            drop=self.drop_check.isChecked(),
            probability=self.probability_spin.value(),
            match=self.match_edit.text().strip() or None,
            per=self.per_combo.currentData(),
        )

    def on_add(self) -> None:
        try:
            rule = self.build_rule()
        except (ValueError, TypeError) as exc:
            self.form_error.setText(str(exc).splitlines()[0] if str(exc) else "invalid rule")
            return
        self.form_error.setText("")
        self.add_rule_requested.emit(rule)

    def on_remove(self) -> None:
        rows = self.rules_table.selectionModel().selectedRows()
        rule = self.rules_model.row_at(rows[0].row()) if rows else None
        if rule is not None and rule.id is not None:
            self.remove_rule_requested.emit(int(rule.id))

    def _on_toggled(self, checked: bool) -> None:
        self.enabled_toggled.emit(checked)
