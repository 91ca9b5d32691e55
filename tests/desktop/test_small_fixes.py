"""Small things a user met: Retry on retrying emails, Ctrl+R, "(no text part)", Save folders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QKeySequence

from core.engine import Engine
from desktop.models.format import fmt_header_time, kind_label
from desktop.models.outbox import AttemptsModel, OutboxModel, reply_text
from desktop.tasks import TaskRunner
from desktop.views.outbox import OutboxView
from desktop.views.preview import SAVE_FOLDER_KEY, MessagePreview
from tests.desktop.conftest import PASSWORD, gui_settings
from tests.desktop.test_models import refreshed
from tests.desktop.test_preview import show_and_wait, stored_view
from tests.desktop.test_window import LONG


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    r = TaskRunner()
    yield r
    r.shutdown()


@pytest.fixture
def engine(data_dir: Path, free_port: Any) -> Iterator[Engine]:
    """An engine whose SMTP server is absent: a delivery attempt leaves the email retrying."""
    e = Engine(gui_settings(data_dir, free_port(), free_port()))
    yield e
    e.close()


def test_retry_is_offered_for_retrying_emails(
    qtbot: Any, engine: Engine, runner: TaskRunner
) -> None:
    """A retrying email can be retried (sent now): the button is on and its tooltip says so."""
    engine.register("ada@example.com", PASSWORD, "Ada")
    model = OutboxModel(engine, runner)
    refreshed(qtbot, model)
    engine.deliver(model.row_at(0).id)  # nobody listens: retrying
    refreshed(qtbot, model)
    assert model.row_at(0).status == "retrying"
    view = OutboxView(model, AttemptsModel())
    qtbot.addWidget(view)
    view.rows_changed()
    view.table.selectRow(0)
    assert view.retry_button.isEnabled()
    assert "retrying one is sent now" in view.retry_button.toolTip()
    with qtbot.waitSignal(view.retry_requested, timeout=2000) as blocker:
        view.retry_button.click()
    assert blocker.args[0] == [model.row_at(0).id]


def test_ctrl_r_retries_the_selected_email_from_any_tab(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Ctrl+R on the Registrations tab switches to the Outbox and retries the selected email."""
    from mailcatcher.chaos import ChaosRule

    rule = runtime.store.add_chaos_rule(ChaosRule(stage="rcpt", code=550, message="5.1.1 No"))
    runtime.engine.register("grace@example.com", PASSWORD, "Grace")
    model = window.outbox_model
    qtbot.waitUntil(lambda: model.rowCount() == 1 and model.row_at(0).status == "failed",
                    timeout=LONG)
    runtime.store.remove_chaos_rule(rule.id)
    window.outbox.table.selectRow(0)
    window.tabs.setCurrentIndex(window.TAB_REGISTRATIONS)
    window.activateWindow()
    qtbot.keySequence(window, QKeySequence("Ctrl+R"))
    assert window.tabs.currentIndex() == window.TAB_OUTBOX
    qtbot.waitUntil(lambda: "Retried 1 email(s)" in window.statusBar().currentMessage(),
                    timeout=LONG)
    qtbot.waitUntil(lambda: model.row_at(0).status == "sent", timeout=LONG)


@pytest.fixture
def store(data_dir: Path) -> Iterator[Any]:
    from mailcatcher.store import MessageStore

    s = MessageStore(data_dir / "mail.db")
    yield s
    s.close()


def test_text_tab_of_an_html_only_message_says_there_is_no_text_part(
    qtbot: Any, store: Any
) -> None:
    """An HTML-only message's Text tab says "(no text part …)" instead of staying blank."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "Only HTML"
    msg.set_content("<p>hi</p>", subtype="html")
    preview = MessagePreview()
    qtbot.addWidget(preview)
    show_and_wait(qtbot, preview, stored_view(store, msg.as_bytes()))
    assert preview.text.toPlainText().startswith("(no text part")


def test_save_dialogs_start_in_the_last_folder_else_downloads_or_home(
    qtbot: Any, tmp_path: Path
) -> None:
    """Save opens in the folder saved to last (QSettings), never the working directory."""
    preview = MessagePreview()
    qtbot.addWidget(preview)
    preview.settings_store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    first = preview.save_folder()
    assert first != Path.cwd() and first.is_dir()
    folder = tmp_path / "mails"
    folder.mkdir()
    preview.remember_save_folder(folder / "message-1.eml")
    assert preview.save_folder() == folder
    assert preview.settings_store.value(SAVE_FOLDER_KEY) == str(folder)


def test_a_reply_code_is_shown_once() -> None:
    """The Last reply cell gives the code once, also when the error text quotes it."""
    assert reply_text(550, "RCPT TO rejected permanently: 550 5.1.1 no such user") == (
        "RCPT TO rejected permanently: 550 5.1.1 no such user")
    assert reply_text(250, "250 2.0.0 Ok") == "250 2.0.0 Ok"
    assert reply_text(451, "4.3.0 try later") == "451 4.3.0 try later"
    assert reply_text(None, "connection lost") == "connection lost"


def test_kinds_of_email_are_named_for_people() -> None:
    """The internal kind of the notice sent to an address already signed up reads as words."""
    assert kind_label("signup_attempt_notice") == "account-exists notice"
    assert kind_label("activation") == "activation"
    assert kind_label("some_new_kind") == "some new kind"


def test_a_header_date_is_shown_to_the_second() -> None:
    """A Date header (whole seconds) is shown without made-up milliseconds."""
    shown = fmt_header_time(datetime(2026, 12, 3, 18, 40, 57, tzinfo=UTC))
    assert shown.endswith(":57") and "." not in shown
