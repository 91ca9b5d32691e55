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
