"""The message preview shows captured mail safely: no script, no network, text as text."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWebEngineCore import QWebEnginePage

from desktop.models.message import MessageView
from desktop.views.preview import MessagePreview
from mailcatcher.parsing import get_inline_parts, parse_message
from mailcatcher.store import MessageStore
from tests.desktop.conftest import HitRecorder

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b1e6f70000000049454e44ae426082"
)


def html_message(html: str, *, text: str | None = None, cid_png: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.com>"
    msg["To"] = "someone@example.com"
    msg["Subject"] = "A test message"
    msg["Message-ID"] = "<preview-test@example.com>"
    msg.set_content(text or "plain part")
    msg.add_alternative(html, subtype="html")
    if cid_png:
        html_part = msg.get_payload()[1]
        html_part.add_related(PNG_1x1, "image", "png", cid=f"<{cid_png}>")
    return msg.as_bytes()


def stored_view(store: MessageStore, raw: bytes) -> MessageView:
    """Store raw like the catcher would, and load it like the window does."""
    message_id = store.add_message(raw, mail_from="sender@example.com",
                                   rcpt_tos=["someone@example.com"], peer="127.0.0.1:1")
    summary = store.get_message(message_id)
    return MessageView(summary, raw, parse_message(raw), get_inline_parts(raw))


@pytest.fixture
def store(data_dir: Path) -> Any:
    s = MessageStore(data_dir / "mail.db")
    yield s
    s.close()


@pytest.fixture
def preview(qtbot: Any) -> Iterator[MessagePreview]:
    widget = MessagePreview()
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    yield widget
    widget.close()
    # Delete now, page before profile; left to interpreter exit, Qt warns about the order.
    shiboken6.delete(widget)


def show_and_wait(qtbot: Any, preview: MessagePreview, view: MessageView) -> None:
    with qtbot.waitSignal(preview.html.load_finished, timeout=20000):
        preview.show_message(view)


def test_html_preview_runs_no_script(qtbot: Any, preview: MessagePreview, store: Any) -> None:
    """A <script> (or event handler) in captured HTML never runs: the page title stays put."""
    html = ("<html><head><title>safe</title></head><body><p>Hello</p>"
            "<script>document.title = 'pwned';</script>"
            "<img src='cid:missing' onerror=\"document.title='pwned by onerror'\"></body></html>")
    show_and_wait(qtbot, preview, stored_view(store, html_message(html)))
    qtbot.wait(200)  # let any (wrongly) running script have its chance
    assert preview.html.page.title() == "safe"


def test_html_preview_fetches_nothing_remote_until_asked(
    qtbot: Any, preview: MessagePreview, store: Any, remote_server: HitRecorder
) -> None:
    """Remote images are blocked (zero requests reach the server) until "Load remote content"."""
    port = remote_server.server_address[1]
    html = f"<html><body><p>Tracked</p><img src='http://127.0.0.1:{port}/pixel.gif'></body></html>"
    show_and_wait(qtbot, preview, stored_view(store, html_message(html)))
    assert any("/pixel.gif" in url for url in preview.html.interceptor.blocked)
    assert remote_server.hits == []

    with qtbot.waitSignal(preview.html.load_finished, timeout=20000):
        qtbot.mouseClick(preview.html.load_remote_button, _left())
    qtbot.waitUntil(lambda: remote_server.hits == ["/pixel.gif"], timeout=10000)


def test_remote_content_is_blocked_again_for_the_next_message(
    qtbot: Any, preview: MessagePreview, store: Any, remote_server: HitRecorder
) -> None:
    """Allowing remote content is per message: the next message starts blocked again."""
    port = remote_server.server_address[1]
    first = html_message(f"<img src='http://127.0.0.1:{port}/first.gif'>")
    second = html_message(f"<img src='http://127.0.0.1:{port}/second.gif'>")
    show_and_wait(qtbot, preview, stored_view(store, first))
    with qtbot.waitSignal(preview.html.load_finished, timeout=20000):
        preview.html.on_load_remote()
    qtbot.waitUntil(lambda: remote_server.hits == ["/first.gif"], timeout=10000)
    show_and_wait(qtbot, preview, stored_view(store, second))
    assert remote_server.hits == ["/first.gif"]


def test_cid_images_are_served_from_the_message(
    qtbot: Any, preview: MessagePreview, store: Any
) -> None:
    """An inline image referenced by cid: is loaded from the message's own part."""
    raw = html_message("<html><body><img src='cid:logo@mailroom.test'></body></html>",
                       cid_png="logo@mailroom.test")
    show_and_wait(qtbot, preview, stored_view(store, raw))
    qtbot.waitUntil(lambda: any(u.startswith("cid:") for u in preview.html.handler.served),
                    timeout=5000)
    assert preview.html.interceptor.blocked == []


def test_text_that_looks_like_html_is_shown_literally(
    qtbot: Any, preview: MessagePreview, store: Any
) -> None:
    """text/plain containing markup shows the characters, not bold text or a running script."""
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["Subject"] = "markup"
    body = "Look: <b>markup</b> & <script>alert(1)</script>\nhttps://example.com/activate?t=1\n"
    msg.set_content(body)
    preview.show_message(stored_view(store, msg.as_bytes()))
    shown = preview.text.toPlainText()
    assert "<b>markup</b> & <script>alert(1)</script>" in shown
    document_html = preview.text.document().toHtml()
    assert "&lt;b&gt;markup&lt;/b&gt;" in document_html
    assert "font-weight:700" not in document_html and "font-weight:600" not in document_html
    assert 'href="https://example.com/activate?t=1"' in document_html
    assert preview.tabs.currentIndex() == preview.TAB_TEXT  # no HTML part: Text is shown


def test_headers_show_control_characters_visibly(
    qtbot: Any, preview: MessagePreview, store: Any
) -> None:
    """A decoded header value with CR LF cannot look like a second header in the Headers tab."""
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\n"
           b"Subject: =?utf-8?q?hello=0D=0AX-Injected=3A_yes?=\r\n\r\nbody\r\n")
    preview.show_message(stored_view(store, raw))
    lines = preview.headers.toPlainText().splitlines()
    assert not any(line.startswith("X-Injected") for line in lines)
    assert any(line.startswith("Subject: hello") for line in lines)


def test_save_eml_writes_the_original_bytes(
    qtbot: Any, preview: MessagePreview, store: Any, tmp_path: Path
) -> None:
    """Save as .eml writes exactly the stored bytes."""
    raw = html_message("<p>hi</p>")
    preview.show_message(stored_view(store, raw))
    target = tmp_path / "out.eml"
    preview.save_eml_to(target)
    assert target.read_bytes() == raw


def test_attachments_are_listed_and_saved_decoded_under_a_safe_name(
    qtbot: Any, preview: MessagePreview, store: Any, tmp_path: Path
) -> None:
    """An attachment shows its decoded name, is offered under a safe name and saved decoded."""
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["Subject"] = "report"
    msg.set_content("see attached")
    payload = bytes(range(256)) * 10
    msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                       filename="../../résumé.bin")
    preview.show_message(stored_view(store, msg.as_bytes()))
    model = preview.attachments_model
    assert model.rowCount() == 1
    attachment = model.row_at(0)
    assert "résumé" in model.data(model.index(0, model.COL_NAME))
    offered = preview.attachment_file_name(attachment)
    assert "/" not in offered and "\\" not in offered and not offered.startswith(".")
    target = tmp_path / offered
    assert preview.save_attachment_to(attachment.index, target)
    assert target.read_bytes() == payload


def _left() -> Any:
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


class _UrlCatcher(QObject):
    """Stands in for the system browser: QDesktopServices hands it the URLs to open."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


@pytest.fixture
def browser() -> Iterator[_UrlCatcher]:
    catcher = _UrlCatcher()
    for scheme in ("http", "https", "mailto"):
        QDesktopServices.setUrlHandler(scheme, catcher, "open")
    yield catcher
    for scheme in ("http", "https", "mailto"):
        QDesktopServices.unsetUrlHandler(scheme)


def test_links_open_in_the_system_browser_not_in_the_preview(
    qtbot: Any, preview: MessagePreview, store: Any, browser: _UrlCatcher
) -> None:
    """A clicked link goes to the system browser; the preview itself never navigates away."""
    raw = html_message("<a href='https://example.com/activate?t=1'>Activate</a>")
    show_and_wait(qtbot, preview, stored_view(store, raw))
    page = preview.html.page
    shown = page.url().toString()
    link = QUrl("https://example.com/activate?t=1")
    clicked = QWebEnginePage.NavigationType.NavigationTypeLinkClicked
    assert page.acceptNavigationRequest(link, clicked, True) is False
    assert browser.opened == ["https://example.com/activate?t=1"]
    redirect = QWebEnginePage.NavigationType.NavigationTypeRedirect
    assert page.acceptNavigationRequest(QUrl("http://127.0.0.1:9/"), redirect, True) is False
    assert browser.opened == ["https://example.com/activate?t=1"]  # only clicks open
    framed = QUrl("https://tracker.example/frame")
    assert page.acceptNavigationRequest(framed, clicked, False) is False
    assert browser.opened == ["https://example.com/activate?t=1"]  # never from a frame
    assert page.url().toString() == shown

    preview.text.on_anchor_clicked(QUrl("https://example.com/from-text"))
    preview.text.on_anchor_clicked(QUrl("file:///etc/passwd"))
    assert browser.opened[-1] == "https://example.com/from-text"
    assert len(browser.opened) == 2


def test_an_emptied_preview_shows_no_html_of_the_last_message(
    qtbot: Any, preview: MessagePreview, store: Any
) -> None:
    """After the preview is emptied (search, delete, clear), the HTML view is blank too."""
    show_and_wait(qtbot, preview, stored_view(store, html_message("<p>Secret text</p>")))
    texts: list[str] = []
    with qtbot.waitSignal(preview.html.load_finished, timeout=20000):
        preview.show_message(None)
    preview.html.page.toPlainText(texts.append)
    qtbot.waitUntil(lambda: bool(texts), timeout=5000)
    assert "Secret text" not in texts[0]
