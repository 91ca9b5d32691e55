"""Activation from the window: open the captured link, fall back to the engine, resend."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QGuiApplication

from tests.desktop.conftest import PASSWORD
from tests.desktop.test_window import LONG


def pending_user_selected(qtbot: Any, window: Any, runtime: Any, email: str) -> int:
    """Sign someone up outside the window, wait for the captured email, select the user."""
    result = runtime.engine.register(email, PASSWORD, "Someone")
    user_id = int(result.user_id)
    qtbot.waitUntil(lambda: window.inbox_model.total >= 1
                    and window.users_model.row_of(user_id) is not None, timeout=LONG)
    window.registrations.select_user(user_id)
    path = window.registrations.path_view
    qtbot.waitUntil(lambda: path.user_id == user_id and bool(path.open_buttons), timeout=LONG)
    assert path.open_link_button.isEnabled() and path.resend_button.isEnabled()
    return user_id


def test_open_activation_link_hands_the_captured_link_to_the_browser(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """The button gives the browser the link from the captured email; the user stays pending."""
    user_id = pending_user_selected(qtbot, window, runtime, "ada@example.com")
    opened: list[str] = []
    window.open_url = lambda url: opened.append(url.toString()) or True
    qtbot.mouseClick(window.registrations.path_view.open_link_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(opened) == 1, timeout=LONG)
    assert "/activate/" in opened[0] and opened[0].startswith("http://127.0.0.1:")
    assert runtime.engine.get_user(user_id).status == "pending"


def test_an_opened_activation_link_is_also_on_the_clipboard(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """The link handed to the browser is copied too, and the status line says so (a
    desktop may report success for a browser that never appears)."""
    pending_user_selected(qtbot, window, runtime, "edsger@example.com")
    opened: list[str] = []
    window.open_url = lambda url: opened.append(url.toString()) or True
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(window.registrations.path_view.open_link_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(opened) == 1, timeout=LONG)
    assert QGuiApplication.clipboard().text() == opened[0]
    assert "copied to the clipboard" in window.statusBar().currentMessage()


def test_without_a_browser_the_window_activates_through_the_engine_and_says_so(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """When no browser opens, the user is activated by the engine and the window says so."""
    user_id = pending_user_selected(qtbot, window, runtime, "grace@example.com")
    window.open_url = lambda url: False
    qtbot.mouseClick(window.registrations.path_view.open_link_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: runtime.engine.get_user(user_id).status == "active", timeout=LONG)
    qtbot.waitUntil(lambda: "activated through the engine"
                    in window.statusBar().currentMessage(), timeout=LONG)


def test_resend_from_the_context_menu_queues_a_new_activation_email(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """"Resend activation email" on a user queues a second activation email and says which."""
    user_id = pending_user_selected(qtbot, window, runtime, "alan@example.com")
    user = window.users_model.row_at(window.users_model.row_of(user_id))
    menu = window.registrations.user_menu(user)
    resend = [a for a in menu.actions() if a.text() == "Resend activation email"][0]
    resend.trigger()
    qtbot.waitUntil(lambda: len([o for o in runtime.engine.list_outbox()
                                 if o.user_id == user_id and o.kind == "activation"]) == 2,
                    timeout=LONG)
    qtbot.waitUntil(lambda: "queued" in window.statusBar().currentMessage(), timeout=LONG)
    menu.deleteLater()


def test_a_link_the_browser_refuses_is_reported_in_the_window(qtbot: Any, window: Any) -> None:
    """A clicked preview link that no browser opens shows a message in the status bar."""
    window.inbox.preview.open_url = lambda url: False
    window.inbox.preview.open_link(QUrl("https://example.com/x"))
    assert "Could not open a browser for https://example.com/x" in \
        window.statusBar().currentMessage()
