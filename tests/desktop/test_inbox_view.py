"""The inbox never previews a message that is gone, and Delete can be pressed repeatedly."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from tests.desktop.test_window import LONG, send_mail


def fill_inbox(qtbot: Any, window: Any, runtime: Any, subjects: list[str]) -> None:
    for subject in subjects:
        send_mail(runtime, subject, f"body of {subject}")
    qtbot.waitUntil(lambda: window.inbox_model.total == len(subjects)
                    and window.inbox_model.rowCount() == len(subjects), timeout=LONG)
    window.tabs.setCurrentIndex(window.TAB_INBOX)


def preview_subject(window: Any) -> str | None:
    message = window.inbox.preview.message
    return None if message is None else str(message.parsed.subject)


def test_clearing_the_inbox_empties_the_preview(qtbot: Any, window: Any, runtime: Any) -> None:
    """After the store is cleared, the preview shows nothing and its actions are off."""
    fill_inbox(qtbot, window, runtime, ["One", "Two"])
    window.inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: preview_subject(window) == "Two", timeout=LONG)
    window.controller.clear_messages()
    qtbot.waitUntil(lambda: window.inbox_model.total == 0, timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox.preview.message is None, timeout=LONG)
    preview = window.inbox.preview
    assert not preview.save_eml_button.isEnabled() and not preview.tabs.isEnabled()
    assert not window.inbox.read_button.isEnabled()


def test_a_message_deleted_elsewhere_leaves_the_preview(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A previewed message deleted by another process (or the API) is no longer shown."""
    fill_inbox(qtbot, window, runtime, ["Keep", "Goes"])
    window.inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: preview_subject(window) == "Goes", timeout=LONG)
    runtime.store.delete_messages([window.inbox.selected_id])
    qtbot.waitUntil(lambda: window.inbox.preview.message is None, timeout=LONG)


def test_delete_selects_the_next_message_so_delete_can_repeat(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Pressing Delete twice in the list deletes two messages, the second one selected for us."""
    fill_inbox(qtbot, window, runtime, ["Third", "Second", "First"])
    table = window.inbox.table
    table.setFocus()
    table.selectRow(0)  # newest first: "First"
    qtbot.waitUntil(lambda: preview_subject(window) == "First", timeout=LONG)
    qtbot.keyClick(table, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: window.inbox_model.total == 2, timeout=LONG)
    qtbot.waitUntil(lambda: preview_subject(window) == "Second", timeout=LONG)
    qtbot.keyClick(table, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)
    qtbot.waitUntil(lambda: preview_subject(window) == "Third", timeout=LONG)


def test_search_that_filters_out_the_preview_clears_it(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """When the search hides the previewed message, the preview empties; "1 match" is singular."""
    fill_inbox(qtbot, window, runtime, ["Invoice", "Lunch"])
    window.inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: preview_subject(window) == "Lunch", timeout=LONG)
    qtbot.keyClicks(window.inbox.search_edit, "Invoice")
    qtbot.waitUntil(lambda: window.inbox_model.search == "Invoice"
                    and window.inbox_model.total == 1, timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox.preview.message is None, timeout=LONG)
    assert window.inbox.count_label.text() == "1 match"


def test_a_search_part_that_cannot_be_read_is_named_beside_the_count(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """"larger:abc" is not a size: the list ignores it and the count says so."""
    fill_inbox(qtbot, window, runtime, ["Invoice", "Lunch"])
    qtbot.keyClicks(window.inbox.search_edit, "Invoice larger:abc")
    qtbot.waitUntil(lambda: window.inbox_model.search == "Invoice larger:abc"
                    and window.inbox_model.total == 1, timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox.count_label.text() == "1 match · ignored larger:abc",
                    timeout=LONG)
    assert "not a size" in window.inbox.count_label.toolTip()


def test_escape_in_the_search_box_clears_it_and_counts_read_matches(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Escape empties the search box and shows all messages; two hits read "2 matches"."""
    fill_inbox(qtbot, window, runtime, ["Pizza one", "Pizza two", "Salad"])
    edit = window.inbox.search_edit
    window.activateWindow()
    edit.setFocus()
    qtbot.keyClicks(edit, "pizza")
    qtbot.waitUntil(lambda: window.inbox_model.total == 2
                    and window.inbox_model.search == "pizza", timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox.count_label.text() == "2 matches", timeout=LONG)
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert edit.text() == ""
    qtbot.waitUntil(lambda: window.inbox_model.search is None
                    and window.inbox_model.total == 3, timeout=LONG)


def test_delete_removes_the_previewed_message_even_if_its_row_was_reused(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Delete with one row selected removes the message the preview shows, never whatever
    the row holds now (a row can be re-read with other mail while mail streams in)."""
    fill_inbox(qtbot, window, runtime, ["Older", "Shown"])
    window.inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: preview_subject(window) == "Shown", timeout=LONG)
    shown = window.inbox.selected_id
    model = window.inbox_model
    model._pages[0][0], model._pages[0][1] = model._pages[0][1], model._pages[0][0]  # re-read
    deleted: list[list[int]] = []
    window.inbox.delete_requested.connect(deleted.append)
    window.inbox.on_delete()
    assert deleted == [[shown]]


def test_clear_all_under_a_search_says_it_deletes_everything(
    qtbot: Any, window: Any, runtime: Any, monkeypatch: Any
) -> None:
    """With a search active, the question names every message and says the search does not
    limit Clear all (it deletes them all)."""
    from PySide6.QtWidgets import QMessageBox

    fill_inbox(qtbot, window, runtime, ["Invoice 1", "Invoice 2", "Lunch"])
    window.inbox.search_edit.setText("invoice")
    window.inbox.apply_search()
    qtbot.waitUntil(lambda: window.inbox_model.total == 2, timeout=LONG)
    asked: list[str] = []

    def answer(_parent: Any, _title: str, text: str, *args: Any) -> Any:
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", answer)
    window.on_clear_inbox()
    assert asked and asked[0].startswith("Delete all 3 captured messages?")
    assert "2 of them match" in asked[0]
    assert runtime.store.count_messages() == 3  # "No" deletes nothing


def test_a_status_message_is_not_hidden_behind_the_counts(
    qtbot: Any, window: Any
) -> None:
    """While a message shows in the status bar, the counts step aside for it (they would
    otherwise take the whole bar and the message would have no room)."""
    bar = window.statusBar()
    qtbot.waitUntil(lambda: window.counts_label.isVisible(), timeout=LONG)
    bar.showMessage("something worth reading", 5000)
    assert bar.currentMessage() == "something worth reading"
    assert not window.counts_label.isVisible() and not window.address_label.isVisible()
    bar.clearMessage()
    assert window.counts_label.isVisible()


def test_the_search_box_reads_mailpits_syntax(qtbot: Any, window: Any, runtime: Any) -> None:
    """`subject:` and a negated word filter the list as they do in the API and Mailpit."""
    fill_inbox(qtbot, window, runtime, ["Invoice March", "Lunch invoice", "Lunch"])
    window.inbox.search_edit.setText("subject:invoice -lunch")
    window.inbox.apply_search()
    qtbot.waitUntil(lambda: window.inbox_model.total == 1, timeout=LONG)
    assert window.inbox_model.row_at(0).subject == "Invoice March"
