"""The real window over the real runtime: sign-up to activation, retry, live updates, search."""

from __future__ import annotations

import re
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt

from mailcatcher.chaos import ChaosRule
from tests.desktop.conftest import PASSWORD

LONG = 15000  # ms: deadline for anything that crosses the queue, SMTP and the watcher


def send_mail(runtime: Any, subject: str, body: str, to: str = "someone@example.com") -> None:
    """Send one message to the runtime's catcher over real SMTP."""
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    host, port = runtime.smtp_address
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_signup_in_the_window_reaches_the_inbox_and_activation_shows_active(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Sign-up form → email captured → opened from the sign-up path → link → user active."""
    view = window.registrations
    qtbot.keyClicks(view.email_edit, "ada@example.com")
    qtbot.keyClicks(view.name_edit, "Ada Lovelace")
    qtbot.keyClicks(view.password_edit, PASSWORD)
    qtbot.mouseClick(view.signup_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(lambda: view.result_label.text().startswith("✓"), timeout=LONG)
    assert "ms" in view.result_label.text() or " s" in view.result_label.text()
    qtbot.waitUntil(lambda: window.users_model.rowCount() == 1, timeout=LONG)
    assert window.users_model.row_at(0).status == "pending"
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)

    # The sign-up path shows the captured message with a button that opens it.
    qtbot.waitUntil(lambda: bool(view.path_view.open_buttons), timeout=LONG)
    qtbot.mouseClick(view.path_view.open_buttons[0], Qt.MouseButton.LeftButton)
    assert window.tabs.currentIndex() == window.TAB_INBOX
    preview = window.inbox.preview
    qtbot.waitUntil(lambda: preview.message is not None, timeout=LONG)
    assert "ada@example.com" in preview.meta_label.text()

    text = preview.text.toPlainText()
    link = re.search(r"http://127\.0\.0\.1:\d+/\S+", text)
    assert link is not None, text
    with urllib.request.urlopen(link.group(0), timeout=10) as response:  # the HTTP port
        assert response.status == 200

    qtbot.waitUntil(lambda: window.users_model.row_at(0).status == "active", timeout=LONG)
    assert [point[2] for point in view.chart.signups] == ["queue"]  # ours, plotted once
    qtbot.waitUntil(lambda: "Activated" in view.path_view.steps(), timeout=LONG)


def test_failed_email_is_retried_from_the_outbox_and_sent(
    qtbot: Any, external_runtime: Any, external_smtp: Any, qsettings: QSettings
) -> None:
    """A 550 makes the email failed with its reply shown; Retry (once the server is fine) sends it.

    The window watches a runtime without a catcher that delivers to another SMTP server
    (as with `mailroom --no-catcher`), whose answer the test switches.
    """
    import shiboken6

    from desktop.main_window import MainWindow

    _, handler = external_smtp
    handler.rcpt_reply = "550 5.1.1 No such user"
    win = MainWindow(external_runtime, settings_store=qsettings, poll_interval_ms=100)
    win.show()
    try:
        assert "external SMTP" in win.address_label.text()
        external_runtime.engine.register("grace@example.com", PASSWORD, "Grace Hopper")
        win.tabs.setCurrentIndex(win.TAB_OUTBOX)
        model = win.outbox_model
        qtbot.waitUntil(lambda: model.rowCount() == 1 and model.row_at(0).status == "failed",
                        timeout=LONG)
        assert "550" in model.data(model.index(0, model.COL_LAST))
        win.outbox.table.selectRow(0)
        qtbot.waitUntil(lambda: win.attempts_model.rowCount() == 1, timeout=LONG)
        attempt = win.attempts_model.row_at(0)
        assert attempt.code == 550 and "No such user" in attempt.reply
        assert win.outbox.retry_button.isEnabled()

        handler.rcpt_reply = None
        qtbot.mouseClick(win.outbox.retry_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: model.row_at(0).status == "sent", timeout=LONG)
        # (while it is under way, the second attempt is listed as in progress)
        qtbot.waitUntil(lambda: win.attempts_model.rowCount() == 2
                        and win.attempts_model.row_at(1).outcome == "sent", timeout=LONG)
        assert win.attempts_model.row_at(1).code == 250
        assert len(handler.accepted) == 1
    finally:
        win.close()
        shiboken6.delete(win)


def test_email_failed_by_a_chaos_rule_is_sent_on_retry_after_the_rule_is_removed(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """ChaosRule 550 → failed; remove the rule, Retry all failed in the window → sent."""
    store, engine = runtime.store, runtime.engine
    rule = store.add_chaos_rule(ChaosRule(stage="rcpt", code=550, message="5.1.1 No such user"))
    engine.register("grace@example.com", PASSWORD, "Grace Hopper")
    model = window.outbox_model
    qtbot.waitUntil(lambda: model.rowCount() == 1 and model.row_at(0).status == "failed",
                    timeout=LONG)
    store.remove_chaos_rule(rule.id)
    qtbot.waitUntil(lambda: window.outbox.retry_all_button.isEnabled(), timeout=LONG)
    qtbot.mouseClick(window.outbox.retry_all_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: model.row_at(0).status == "sent", timeout=LONG)


def test_changes_by_another_writer_show_without_a_click(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A user registered and a message captured outside the window appear within seconds."""
    runtime.engine.register("alan@example.com", PASSWORD, "Alan Turing")
    send_mail(runtime, "From outside", "hello")
    qtbot.waitUntil(lambda: window.users_model.row_of(
        runtime.engine.find_user("alan@example.com").id) is not None, timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox_model.total >= 2, timeout=LONG)  # ours + activation
    assert window.counts_label.text().startswith("1 user ·")  # singular
    # The outside sign-up's response time goes on the chart as "other process".
    chart = window.registrations.chart
    qtbot.waitUntil(lambda: [point[2] for point in chart.signups] == ["other"], timeout=LONG)


def test_inbox_search_as_you_type_filters_the_list(qtbot: Any, window: Any, runtime: Any) -> None:
    """Typing in the search box narrows the inbox to matching messages (after a short pause)."""
    send_mail(runtime, "Quarterly invoice", "numbers inside")
    send_mail(runtime, "Lunch on Friday", "pizza")
    qtbot.waitUntil(lambda: window.inbox_model.total == 2, timeout=LONG)
    window.tabs.setCurrentIndex(window.TAB_INBOX)
    qtbot.keyClicks(window.inbox.search_edit, "pizza")
    qtbot.waitUntil(lambda: window.inbox_model.search == "pizza"
                    and window.inbox_model.total == 1 and not window.inbox_model.busy,
                    timeout=LONG)
    assert window.inbox_model.message_at(0).subject == "Lunch on Friday"
    window.inbox.search_edit.clear()
    qtbot.waitUntil(lambda: window.inbox_model.search is None
                    and window.inbox_model.total == 2, timeout=LONG)


def test_delete_removes_the_selected_message(qtbot: Any, window: Any, runtime: Any) -> None:
    """Delete on a selected message removes it from the store and the list."""
    send_mail(runtime, "Keep me", "a")
    send_mail(runtime, "Delete me", "b")
    qtbot.waitUntil(lambda: window.inbox_model.total == 2, timeout=LONG)
    window.tabs.setCurrentIndex(window.TAB_INBOX)
    window.inbox.table.selectRow(0)  # newest first: "Delete me"
    qtbot.waitUntil(lambda: window.inbox.preview.message is not None, timeout=LONG)
    assert window.inbox.preview.message.parsed.subject == "Delete me"
    qtbot.mouseClick(window.inbox.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)
    assert [m.subject for m in runtime.store.list_messages()] == ["Keep me"]


def test_opening_a_message_marks_it_read_and_it_can_be_marked_unread(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Opening a message marks it read; "Mark unread" makes it unread again."""
    send_mail(runtime, "Unread at first", "x")
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)
    message_id = runtime.store.list_messages()[0].id
    assert not runtime.store.get_message(message_id).read
    window.tabs.setCurrentIndex(window.TAB_INBOX)
    window.inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: runtime.store.get_message(message_id).read, timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox.read_button.text() == "Mark unread", timeout=LONG)
    qtbot.mouseClick(window.inbox.read_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not runtime.store.get_message(message_id).read, timeout=LONG)


def test_chaos_panel_adds_rules_and_flips_the_master_switch(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """The Chaos tab stores a new rule and turns fault injection off and on."""
    window.tabs.setCurrentIndex(window.TAB_CHAOS)
    chaos = window.chaos
    chaos.code_spin.setValue(451)
    chaos.match_edit.setText("*@slow.example")
    qtbot.mouseClick(chaos.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.rules_model.rowCount() == 1, timeout=LONG)
    stored = runtime.store.list_chaos_rules()
    assert [(r.stage, r.code, r.match) for r in stored] == [("rcpt", 451, "*@slow.example")]
    assert chaos.enabled_check.isChecked()
    chaos.enabled_check.setChecked(False)
    qtbot.waitUntil(lambda: not runtime.store.chaos_enabled(), timeout=LONG)
    chaos.rules_table.selectRow(0)
    chaos.on_remove()
    qtbot.waitUntil(lambda: window.rules_model.rowCount() == 0, timeout=LONG)
    assert runtime.store.list_chaos_rules() == []


def test_injected_faults_are_listed_in_the_chaos_tab(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A rejection made by a rule shows in the recent faults with the rule as its cause."""
    rule = runtime.store.add_chaos_rule(ChaosRule(stage="rcpt", code=550, message="5.7.1 Nope"))
    try:
        send_mail(runtime, "Rejected", "x")
    except smtplib.SMTPRecipientsRefused:
        pass
    qtbot.waitUntil(lambda: window.faults_model.rowCount() == 1, timeout=LONG)
    model = window.faults_model
    assert model.data(model.index(0, model.COL_CAUSE)) == f"rule #{rule.id}"
    assert "Nope" in model.data(model.index(0, model.COL_REPLY))


def test_window_remembers_its_tab_and_size(qtbot: Any, runtime: Any, qsettings: QSettings) -> None:
    """The last tab and the window size come back the next time the window opens."""
    import shiboken6

    from desktop.main_window import MainWindow

    first = MainWindow(runtime, settings_store=qsettings)
    first.show()
    first.resize(780, 590)  # within the offscreen screen (800x600): restoring clamps to it
    first.tabs.setCurrentIndex(MainWindow.TAB_OUTBOX)
    first.close()
    shiboken6.delete(first)
    second = MainWindow(runtime, settings_store=qsettings)
    try:
        assert second.tabs.currentIndex() == MainWindow.TAB_OUTBOX
        assert (second.width(), second.height()) == (780, 590)
    finally:
        second.close()
        shiboken6.delete(second)


def test_status_bar_shows_where_mail_goes_and_the_queue(qtbot: Any, window: Any,
                                                        runtime: Any) -> None:
    """The status bar names the SMTP and HTTP addresses and shows the worker as alive."""
    host, port = runtime.smtp_address
    assert f"SMTP {host}:{port}" in window.address_label.text()
    http_host, http_port = runtime.http_address
    assert f"HTTP {http_host}:{http_port}" in window.address_label.text()
    qtbot.waitUntil(lambda: "1 worker(s) alive" in window.queue_label.text(), timeout=LONG)


def test_keyboard_shortcuts_find_and_delete(qtbot: Any, window: Any, runtime: Any) -> None:
    """Ctrl+F jumps to the inbox search; Delete deletes only while the inbox list has focus."""
    send_mail(runtime, "Only message", "x")
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentIndex() == window.TAB_INBOX
    qtbot.waitUntil(lambda: window.inbox.search_edit.hasFocus(), timeout=LONG)

    window.inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: window.inbox.preview.message is not None, timeout=LONG)
    preview = window.inbox.preview
    preview.tabs.setCurrentIndex(preview.TAB_ATTACHMENTS)
    preview.attachments_view.setFocus()
    qtbot.keyClick(preview.attachments_view, Qt.Key.Key_Delete)  # in the preview, not the list
    window.inbox.table.setFocus()
    assert runtime.store.count_messages() == 1
    qtbot.keyClick(window.inbox.table, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: runtime.store.count_messages() == 0, timeout=LONG)


def test_inbox_marks_a_message_whose_message_id_was_seen_before(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A second capture of the same Message-ID is marked as a duplicate of the first."""
    for _ in range(2):
        msg = EmailMessage()
        msg["From"] = "app@example.com"
        msg["To"] = "someone@example.com"
        msg["Subject"] = "Sent twice"
        msg["Message-ID"] = "<same-id@example.com>"
        msg.set_content("x")
        host, port = runtime.smtp_address
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.send_message(msg)
    model = window.inbox_model
    qtbot.waitUntil(lambda: model.total == 2 and model.message_at(0) is not None, timeout=LONG)
    first_id = model.message_at(1).id
    assert model.data(model.index(0, model.COL_NOTE)) == f"dup. of #{first_id}"
    tooltip = model.data(model.index(0, model.COL_NOTE), Qt.ItemDataRole.ToolTipRole)
    assert tooltip.startswith(f"duplicate of #{first_id}")
    assert model.data(model.index(1, model.COL_NOTE)) == ""
    # The column is wide enough to show the mark whole.
    table = window.inbox.table
    needed = table.fontMetrics().horizontalAdvance(f"dup. of #{first_id}")
    assert table.columnWidth(model.COL_NOTE) > needed


@pytest.mark.slow
def test_window_stays_live_while_inline_signups_wait_for_a_slow_server(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Slow inline sign-ups (SMTP takes 6 s) do not hold up the lists: others show at once."""
    runtime.store.add_chaos_rule(ChaosRule(stage="data", delay_ms=6000))
    for n in range(5):  # more than the pool has threads
        window.controller.register(f"slow{n}@example.com", PASSWORD, f"Slow {n}", "sync")
    qtbot.waitUntil(lambda: window.controller.signups_in_flight == 5, timeout=LONG)
    runtime.engine.register("quick@example.com", PASSWORD, "Quick")  # another writer
    # Well before the inline sign-ups can answer, the list already shows the new users.
    qtbot.waitUntil(lambda: window.users_model.row_of(
        runtime.engine.find_user("quick@example.com").id) is not None, timeout=3000)
    assert window.controller.signups_in_flight > 0


def test_a_signup_made_by_another_process_appears_in_the_window(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """`mailroom register` in a separate process shows in the window, and so does its email."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "desktop.cli", "register", "outside@example.com",
         "--data-dir", str(runtime.settings.data_dir), "--password-stdin"],
        input=PASSWORD + "\n", cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    qtbot.waitUntil(lambda: window.users_model.total == 1
                    and window.users_model.row_at(0) is not None
                    and window.users_model.row_at(0).email == "outside@example.com", timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)  # delivered here


def test_clear_all_asks_first_then_empties_the_inbox(
    qtbot: Any, window: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """"Clear all" deletes nothing when the user says No, and everything when Yes."""
    from PySide6.QtWidgets import QMessageBox

    send_mail(runtime, "One", "1")
    send_mail(runtime, "Two", "2")
    qtbot.waitUntil(lambda: window.inbox_model.total == 2, timeout=LONG)
    window.tabs.setCurrentIndex(window.TAB_INBOX)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: answers.pop(0))
    qtbot.mouseClick(window.inbox.clear_button, Qt.MouseButton.LeftButton)
    assert runtime.store.count_messages() == 2
    qtbot.mouseClick(window.inbox.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.inbox_model.total == 0, timeout=LONG)
    assert runtime.store.count_messages() == 0


def test_invalid_signup_shows_the_field_and_writes_nothing(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A refused sign-up shows the engine's error naming the field; no user is created."""
    view = window.registrations
    qtbot.keyClicks(view.email_edit, "not-an-address")
    qtbot.keyClicks(view.password_edit, PASSWORD)
    qtbot.mouseClick(view.signup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.result_label.text().startswith("✗"), timeout=LONG)
    assert view.result_label.text().startswith("✗ Email:")  # named as the form labels it
    assert view.signup_button.isEnabled()
    assert runtime.engine.count_users() == 0
    view.email_edit.setText("ok@example.com")
    view.name_edit.setText("Eve\x1b[31m")
    qtbot.mouseClick(view.signup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.result_label.text().startswith("✗ Name:"), timeout=LONG)
    assert runtime.engine.count_users() == 0


def test_html_mail_in_the_inbox_runs_no_script_and_fetches_nothing_until_asked(
    qtbot: Any, window: Any, runtime: Any, remote_server: Any
) -> None:
    """Through the window: captured HTML shows with scripts off and no request until the click."""
    port = remote_server.server_address[1]
    msg = EmailMessage()
    msg["From"] = "tracker@example.com"
    msg["To"] = "someone@example.com"
    msg["Subject"] = "Newsletter"
    msg.set_content("text part")
    msg.add_alternative(
        "<html><head><title>newsletter</title></head><body><p>Hi</p>"
        f"<img src='http://127.0.0.1:{port}/open.gif'>"
        "<script>document.title='script ran'</script></body></html>", subtype="html")
    host, smtp_port = runtime.smtp_address
    with smtplib.SMTP(host, smtp_port, timeout=10) as smtp:
        smtp.send_message(msg)
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)
    window.tabs.setCurrentIndex(window.TAB_INBOX)
    html = window.inbox.preview.html
    with qtbot.waitSignal(html.load_finished, timeout=20000):
        window.inbox.table.selectRow(0)
    assert html.page.title() == "newsletter"
    assert remote_server.hits == []
    with qtbot.waitSignal(html.load_finished, timeout=20000):
        qtbot.mouseClick(html.load_remote_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: remote_server.hits == ["/open.gif"], timeout=LONG)
    assert html.page.title() == "newsletter"


def test_an_attempt_under_way_is_listed_until_it_ends(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """While the server takes its time over DATA, the selected email's attempts list shows
    the attempt in progress; when the server answers, the kept attempt takes its place."""
    runtime.store.add_chaos_rule(ChaosRule(stage="data", delay_ms=3000))
    runtime.engine.register("slow@example.com", PASSWORD)
    window.tabs.setCurrentIndex(window.TAB_OUTBOX)
    model = window.outbox_model
    qtbot.waitUntil(lambda: model.rowCount() == 1 and model.row_at(0).status == "sending",
                    timeout=LONG)
    window.outbox.table.selectRow(0)
    attempts = window.attempts_model
    qtbot.waitUntil(lambda: attempts.rowCount() == 1, timeout=LONG)
    row = attempts.row_at(0)
    assert (row.number, row.outcome, row.code) == (1, "sending", None)
    assert "in progress" in attempts.data(attempts.index(0, attempts.COL_REPLY))
    qtbot.waitUntil(lambda: attempts.rowCount() == 1 and attempts.row_at(0).outcome == "sent",
                    timeout=LONG)
    assert attempts.row_at(0).code == 250
