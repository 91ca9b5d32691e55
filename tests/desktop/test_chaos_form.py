"""The Chaos tab's rule form: the reply code is optional, drop turns it off, errors wrap."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from desktop.models.chaos import ChaosRulesModel, FaultsModel
from desktop.views.chaos import ChaosView


def make_view(qtbot: Any) -> ChaosView:
    view = ChaosView(ChaosRulesModel(), FaultsModel())
    qtbot.addWidget(view)
    view.resize(1000, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_a_delay_only_rule_can_be_made(qtbot: Any) -> None:
    """Unticking "reply" gives a rule with no code, and Add emits it."""
    view = make_view(qtbot)
    qtbot.mouseClick(view.code_check, Qt.MouseButton.LeftButton)
    view.delay_spin.setValue(1500)
    with qtbot.waitSignal(view.add_rule_requested, timeout=2000) as blocker:
        qtbot.mouseClick(view.add_button, Qt.MouseButton.LeftButton)
    rule = blocker.args[0]
    assert rule.code is None and rule.delay_ms == 1500 and not rule.drop
    assert view.form_error.text() == ""


def test_drop_turns_the_reply_code_off(qtbot: Any) -> None:
    """Ticking drop disables the code and makes a valid drop rule (no 'exclude each other')."""
    view = make_view(qtbot)
    qtbot.mouseClick(view.drop_check, Qt.MouseButton.LeftButton)
    assert not view.code_spin.isEnabled() and not view.code_check.isEnabled()
    with qtbot.waitSignal(view.add_rule_requested, timeout=2000) as blocker:
        qtbot.mouseClick(view.add_button, Qt.MouseButton.LeftButton)
    rule = blocker.args[0]
    assert rule.drop and rule.code is None
    qtbot.mouseClick(view.drop_check, Qt.MouseButton.LeftButton)
    assert view.code_spin.isEnabled() and view.build_rule().code == 451


def test_an_error_does_not_widen_the_form(qtbot: Any) -> None:
    """A long error message wraps below the form; the form keeps its width."""
    view = make_view(qtbot)
    form = view.add_button.parentWidget()
    assert form is not None
    before = form.width()
    view.message_edit.setText("x" * 2000)  # longer than a rule allows: a long error
    qtbot.mouseClick(view.add_button, Qt.MouseButton.LeftButton)
    assert view.form_error.text()
    qtbot.wait(50)
    assert form.width() == before
    assert form.sizeHint().width() < 700
