"""The window's size is the user's: a sensible first size, never changed by the program."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt

from desktop.main_window import default_size
from tests.desktop.conftest import PASSWORD
from tests.desktop.test_window import LONG


def test_first_window_gets_the_default_size_within_the_screen(qtbot: Any, window: Any) -> None:
    """With no saved geometry the window is 1280×820 or 90 % of the screen, whichever fits."""
    available = window.screen().availableGeometry().size()
    assert window.size() == default_size(available)
    assert default_size(QSize(1600, 1000)) == QSize(1280, 820)
    assert default_size(QSize(800, 600)) == QSize(720, 540)


def test_signups_and_long_texts_never_resize_the_window(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A sign-up (long result line, longer counts in the status bar) leaves the size alone."""
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.size() == QSize(800, 600), timeout=LONG)
    view = window.registrations
    view.email_edit.setText("a-rather-long-address-for-a-test@example.com")
    view.password_edit.setText("")
    qtbot.mouseClick(view.signup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.result_label.text().startswith("✓"), timeout=LONG)
    qtbot.waitUntil(lambda: "1 user ·" in window.counts_label.text(), timeout=LONG)
    qtbot.wait(100)
    assert window.size() == QSize(800, 600)
    assert window.minimumSizeHint().width() <= 800


def test_status_bar_fits_a_small_window(qtbot: Any, window: Any, runtime: Any) -> None:
    """At 800×600 every status bar label lies inside the window (elided, not cut off)."""
    runtime.engine.register("ada@example.com", PASSWORD, "Ada")
    window.resize(800, 600)
    qtbot.waitUntil(lambda: "1 user ·" in window.counts_label.text(), timeout=LONG)
    qtbot.wait(50)
    for label in (window.address_label, window.counts_label, window.queue_label):
        right = label.mapTo(window, label.rect().topRight()).x()
        assert label.isVisible() and right <= window.width(), label.text()
    assert window.counts_label.toolTip() == window.counts_label.text()


def test_the_first_html_preview_keeps_a_resized_window(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Opening the first HTML message (WebEngine starts) does not change the window's size."""
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "Html"
    msg.set_content("plain")
    msg.add_alternative("<p>Hello <b>there</b></p>", subtype="html")
    with smtplib.SMTP(*runtime.smtp_address, timeout=10) as smtp:
        smtp.send_message(msg)
    window.resize(900, 640)
    qtbot.waitUntil(lambda: window.size() == QSize(900, 640), timeout=LONG)
    qtbot.waitUntil(lambda: window.inbox_model.rowCount() == 1, timeout=LONG)
    window.tabs.setCurrentIndex(window.TAB_INBOX)
    window.inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: window.inbox.preview.html.page is not None, timeout=LONG)
    qtbot.wait(200)
    assert window.size() == QSize(900, 640)
