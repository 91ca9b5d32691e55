"""The message preview: HTML (safe), Text, Headers, Raw and Attachments tabs.

Captured mail is untrusted. The HTML tab renders in Qt WebEngine on a private
off-the-record profile with JavaScript off; every http/https (or other remote)
request is blocked by a request interceptor until the user clicks "Load remote
content" for that message. The page itself and its `cid:` images are served from
memory by a custom URL scheme handler, so nothing is written to disk and no size
limit of `setHtml` applies. Links open in the system browser. Text is shown as
text: the Text tab builds its document with plain insertText calls (URLs become
anchors), never by parsing the mail as markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QIODevice,
    QObject,
    QSettings,
    QStandardPaths,
    Qt,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import QDesktopServices, QFont, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWebEngineCore import (
    QWebEnginePage,
    QWebEngineProfile,
    QWebEngineSettings,
    QWebEngineUrlRequestInfo,
    QWebEngineUrlRequestInterceptor,
    QWebEngineUrlRequestJob,
    QWebEngineUrlScheme,
    QWebEngineUrlSchemeHandler,
)
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.models.attachments import AttachmentsModel
from desktop.models.format import fmt_full_time, fmt_header_time, fmt_list, fmt_size, one_line
from desktop.models.message import MessageView
from desktop.views.widgets import make_table, plain_label
from mailcatcher.parsing import get_attachment, make_visible, safe_filename

PAGE_SCHEME = "mailroom-msg"
CID_SCHEME = "cid"
# Schemes the page may load without a click: its own, its inline parts, and inline data.
LOCAL_SCHEMES = frozenset({PAGE_SCHEME, CID_SCHEME, "data", "blob", "about"})
SAVE_FOLDER_KEY = "save_folder"
TEXT_LIMIT = 2 * 1024 * 1024  # characters shown in the Text and Raw tabs
CSP = (
    "<meta http-equiv=\"Content-Security-Policy\" "
    "content=\"script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'\">"
)
_URL_RE = re.compile(r"""(?i)\b(?:https?://|mailto:)[^\s<>"'\]\[)]+""")
_HEAD_RE = re.compile(r"(?is)<head\b[^>]*>")


def register_url_schemes() -> None:
    """Declare the preview's URL schemes; must run before the QApplication is created."""
    flags = (
        QWebEngineUrlScheme.Flag.SecureScheme
        | QWebEngineUrlScheme.Flag.ContentSecurityPolicyIgnored
    )
    for name in (PAGE_SCHEME, CID_SCHEME):
        if QWebEngineUrlScheme.schemeByName(QByteArray(name.encode())).name():
            continue
        scheme = QWebEngineUrlScheme(QByteArray(name.encode()))
        scheme.setSyntax(QWebEngineUrlScheme.Syntax.Path)
        scheme.setFlags(flags)
        QWebEngineUrlScheme.registerScheme(scheme)


def _normalise_cid(value: str) -> str:
    return unquote(value).strip().strip("<>").strip().lower()


def prepare_html(html: str) -> str:
    """The mail's HTML with a script-forbidding CSP added (a second lock after JS-off)."""
    match = _HEAD_RE.search(html)
    if match:
        return html[: match.end()] + CSP + html[match.end():]
    return CSP + html


class MessageSchemeHandler(QWebEngineUrlSchemeHandler):
    """Serves the current message's HTML (mailroom-msg:) and inline parts (cid:) from memory."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._message_id: int | None = None
        self._html = b""
        self._parts: dict[str, tuple[str, bytes]] = {}
        self.served: list[str] = []  # URLs answered from memory, for tests and diagnosis

    def set_message(self, message_id: int, html: str, parts: dict[str, tuple[str, bytes]]) -> None:
        """Serve this message from now on."""
        self._message_id = message_id
        self._html = prepare_html(html).encode("utf-8", "surrogatepass")
        self._parts = {_normalise_cid(cid): value for cid, value in parts.items()}
        self.served.clear()

    def page_url(self, message_id: int) -> QUrl:
        """The URL under which a message's HTML is served."""
        return QUrl(f"{PAGE_SCHEME}:message/{message_id}")

    def requestStarted(self, job: QWebEngineUrlRequestJob) -> None:  # noqa: N802
        url = job.requestUrl()
        scheme = url.scheme()
        if scheme == PAGE_SCHEME and url.path() == f"message/{self._message_id}":
            self._reply(job, b"text/html;charset=utf-8", self._html)
            self.served.append(url.toString())
        elif scheme == CID_SCHEME:
            part = self._parts.get(_normalise_cid(url.path()))
            if part is None:
                job.fail(QWebEngineUrlRequestJob.Error.UrlNotFound)
            else:
                self._reply(job, part[0].encode("ascii", "replace"), part[1])
                self.served.append(url.toString())
        else:
            job.fail(QWebEngineUrlRequestJob.Error.UrlNotFound)

    @staticmethod
    def _reply(job: QWebEngineUrlRequestJob, content_type: bytes, data: bytes) -> None:
        buffer = QBuffer(job)
        buffer.setData(QByteArray(data))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        job.reply(QByteArray(content_type), buffer)


class RemoteContentInterceptor(QWebEngineUrlRequestInterceptor):
    """Blocks every request that would leave the machine unless remote content is allowed."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.allow_remote = False
        self.blocked: list[str] = []

    def interceptRequest(self, info: QWebEngineUrlRequestInfo) -> None:  # noqa: N802
        url = info.requestUrl()
        if url.scheme() in LOCAL_SCHEMES:
            return
        if self.allow_remote and url.scheme() in ("http", "https"):
            return
        info.block(True)
        self.blocked.append(url.toString())


class SafePage(QWebEnginePage):
    """A page that opens clicked links in the system browser and navigates nowhere else."""

    link_opened = Signal(QUrl)

    def acceptNavigationRequest(  # noqa: N802
        self, url: QUrl | str, nav_type: QWebEnginePage.NavigationType, is_main_frame: bool
    ) -> bool:
        url = QUrl(url)
        if url.scheme() == PAGE_SCHEME:
            return True
        # Only a click in the message itself opens the browser: a frame of the message
        # (an <iframe> loading once remote content is allowed) never does, whatever
        # Chromium calls its navigation.
        clicked = nav_type == QWebEnginePage.NavigationType.NavigationTypeLinkClicked
        if clicked and is_main_frame and url.scheme() in ("http", "https", "mailto"):
            self.link_opened.emit(url)  # the preview opens it (and says so if it cannot)
        return False


def make_safe_profile(
    parent: QObject, interceptor: RemoteContentInterceptor, handler: MessageSchemeHandler
) -> QWebEngineProfile:
    """An off-the-record profile with scripts, plugins and prefetching off.

    Every request goes through interceptor; the page and its cid: parts come from handler.
    """
    profile = QWebEngineProfile(parent)  # no storage name: off the record, nothing on disk
    s = profile.settings()
    A = QWebEngineSettings.WebAttribute  # noqa: N806
    for attribute, on in (
        (A.JavascriptEnabled, False),
        (A.JavascriptCanOpenWindows, False),
        (A.JavascriptCanAccessClipboard, False),
        (A.PluginsEnabled, False),
        (A.LocalStorageEnabled, False),
        (A.LocalContentCanAccessRemoteUrls, False),
        (A.LocalContentCanAccessFileUrls, False),
        (A.HyperlinkAuditingEnabled, False),
        (A.DnsPrefetchEnabled, False),
        (A.AutoLoadIconsForPage, False),
        (A.ScreenCaptureEnabled, False),
        (A.WebGLEnabled, False),
        (A.PdfViewerEnabled, False),
        (A.NavigateOnDropEnabled, False),
        (A.AutoLoadImages, True),
    ):
        s.setAttribute(attribute, on)
    profile.setHttpCacheType(QWebEngineProfile.HttpCacheType.NoCache)
    profile.setPersistentCookiesPolicy(QWebEngineProfile.PersistentCookiesPolicy.NoPersistentCookies)
    profile.setUrlRequestInterceptor(interceptor)
    for name in (PAGE_SCHEME, CID_SCHEME):
        profile.installUrlSchemeHandler(QByteArray(name.encode()), handler)
    return profile


class HtmlPreview(QWidget):
    """The HTML tab: a WebEngine view on the safe profile, and the remote-content bar.

    The WebEngine view (and with it Chromium) is created on the first HTML message, so
    that opening the window costs neither the time nor the memory until it is needed.
    """

    load_finished = Signal(bool)
    link_clicked = Signal(QUrl)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: QWebEngineView | None = None
        self.page: SafePage | None = None
        self.profile: QWebEngineProfile | None = None
        self.interceptor = RemoteContentInterceptor(self)
        self.handler = MessageSchemeHandler(self)
        self.bar = QWidget(self)
        self.notice = plain_label("Remote content is blocked.", self.bar)
        self.load_remote_button = QPushButton("Load remote content", self.bar)
        self.load_remote_button.setObjectName("load_remote_button")
        self.load_remote_button.clicked.connect(self.on_load_remote)
        bar_layout = QHBoxLayout(self.bar)
        bar_layout.setContentsMargins(4, 2, 4, 2)
        bar_layout.addWidget(self.notice, 1)
        bar_layout.addWidget(self.load_remote_button)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self._layout.addWidget(self.bar)
        self._placeholder = QWidget(self)
        self._layout.addWidget(self._placeholder, 1)
        self._message_id: int | None = None

    def _ensure_view(self) -> SafePage:
        if self.page is not None:
            return self.page
        # The view is created before the profile so that, as children are destroyed in
        # order of creation, the page goes before its profile (Qt warns otherwise).
        self.view = QWebEngineView(self)
        self.profile = make_safe_profile(self, self.interceptor, self.handler)
        self.interceptor.setParent(self.profile)  # from now on they live and die with it
        self.handler.setParent(self.profile)
        self.page = SafePage(self.profile, self.view)
        self.view.setPage(self.page)
        self.page.loadFinished.connect(self.load_finished)
        self.page.link_opened.connect(self.link_clicked)
        self._layout.replaceWidget(self._placeholder, self.view)
        self._placeholder.hide()
        return self.page

    def show_html(self, message_id: int, html: str, parts: dict[str, tuple[str, bytes]]) -> None:
        """Render a message's HTML with remote content blocked."""
        page = self._ensure_view()
        self._message_id = message_id
        self.interceptor.allow_remote = False
        self.interceptor.blocked.clear()
        self.load_remote_button.setEnabled(True)
        self.notice.setText("Scripts are off; remote content is blocked until you load it.")
        self.handler.set_message(message_id, html, parts)
        page.load(self.handler.page_url(message_id))

    def clear(self) -> None:
        """Show nothing."""
        self._message_id = None
        self.interceptor.allow_remote = False
        self.handler.set_message(-1, "", {})
        if self.page is not None:
            # An empty page from our own scheme: the page refuses every other navigation
            # (setHtml's data: URL included, which left the last message on screen).
            self.page.load(self.handler.page_url(-1))

    @Slot()
    def on_load_remote(self) -> None:
        """Allow remote content for the message shown, and reload it."""
        if self._message_id is None or self.page is None:
            return
        self.interceptor.allow_remote = True
        self.load_remote_button.setEnabled(False)
        self.notice.setText("Remote content loaded for this message (scripts stay off).")
        self.page.triggerAction(QWebEnginePage.WebAction.ReloadAndBypassCache)


class LinkedTextView(QTextBrowser):
    """Plain text shown as text, with URLs as clickable anchors opening in the browser."""

    link_clicked = Signal(QUrl)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self.on_anchor_clicked)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QTextBrowser.LineWrapMode.WidgetWidth)

    def set_text(self, text: str) -> None:
        """Show text literally; nothing in it is interpreted as markup."""
        self.clear()
        cursor = QTextCursor(self.document())
        plain = QTextCharFormat()
        link = QTextCharFormat()
        link.setAnchor(True)
        link.setFontUnderline(True)
        link.setForeground(self.palette().link())
        position = 0
        for match in _URL_RE.finditer(text):
            cursor.insertText(text[position: match.start()], plain)
            link.setAnchorHref(match.group(0))
            cursor.insertText(match.group(0), link)
            position = match.end()
        cursor.insertText(text[position:], plain)
        self.moveCursor(QTextCursor.MoveOperation.Start)

    @Slot(QUrl)
    def on_anchor_clicked(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https", "mailto"):
            self.link_clicked.emit(url)


def _mono_editor(parent: QWidget) -> QPlainTextEdit:
    editor = QPlainTextEdit(parent)
    editor.setReadOnly(True)
    editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return editor


class MessagePreview(QWidget):
    """Header summary, tabs, and the actions on the message shown."""

    save_eml_requested = Signal()
    link_open_failed = Signal(str)  # a clicked link the system browser did not take
    TAB_HTML, TAB_TEXT, TAB_HEADERS, TAB_RAW, TAB_ATTACHMENTS = range(5)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message: MessageView | None = None
        # How links leave the window: the system browser. Returns False when none opened.
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl
        self.settings_store: QSettings | None = None  # where Save remembers its folder
        self.subject_label = plain_label("", self)
        font = QFont(self.subject_label.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.subject_label.setFont(font)
        self.subject_label.setWordWrap(True)
        self.meta_label = plain_label("", self)
        self.meta_label.setWordWrap(True)
        self.notes_label = plain_label("", self)
        self.notes_label.setWordWrap(True)
        self.notes_label.setStyleSheet("color: #e08a00")
        self.notes_label.hide()
        self.save_eml_button = QPushButton("Save as .eml…", self)
        self.save_eml_button.clicked.connect(self.on_save_eml)

        self.tabs = QTabWidget(self)
        self.html = HtmlPreview(self.tabs)
        self.text = LinkedTextView(self.tabs)
        self.headers = _mono_editor(self.tabs)
        self.raw = _mono_editor(self.tabs)
        self.attachments_model = AttachmentsModel(self)
        attachments_page = QWidget(self.tabs)
        self.attachments_view = make_table(
            self.attachments_model, attachments_page, stretch_column=0, object_name="attachments"
        )
        self.attachments_view.doubleClicked.connect(self.on_save_attachment)
        self.save_attachment_button = QPushButton("Save attachment…", attachments_page)
        self.save_attachment_button.clicked.connect(self.on_save_attachment)
        att_layout = QVBoxLayout(attachments_page)
        att_layout.setContentsMargins(0, 0, 0, 0)
        att_layout.addWidget(self.attachments_view, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_attachment_button)
        att_layout.addLayout(row)
        self.html.link_clicked.connect(self.open_link)
        self.text.link_clicked.connect(self.open_link)
        self.tabs.addTab(self.html, "HTML")
        self.tabs.addTab(self.text, "Text")
        self.tabs.addTab(self.headers, "Headers")
        self.tabs.addTab(self.raw, "Raw")
        self.tabs.addTab(attachments_page, "Attachments")

        top = QHBoxLayout()
        heading = QVBoxLayout()
        heading.addWidget(self.subject_label)
        heading.addWidget(self.meta_label)
        heading.addWidget(self.notes_label)
        top.addLayout(heading, 1)
        top.addWidget(self.save_eml_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        self.show_message(None)

    def show_message(self, message: MessageView | None) -> None:
        """Show one message in every tab (None: an empty preview)."""
        self.message = message
        enabled = message is not None
        self.save_eml_button.setEnabled(enabled)
        self.tabs.setEnabled(enabled)
        if message is None:
            self.subject_label.setText("No message selected")
            self.meta_label.setText("")
            self.notes_label.hide()
            self.html.clear()
            self.text.set_text("")
            self.headers.setPlainText("")
            self.raw.setPlainText("")
            self.attachments_model.set_rows([])
            return
        parsed, summary = message.parsed, message.summary
        self.subject_label.setText(one_line(parsed.subject, 500) or "(no subject)")
        date = fmt_header_time(parsed.date) if parsed.date else ""
        meta = [
            f"From: {one_line(parsed.from_ or summary.mail_from, 300)}",
            f"To: {one_line(fmt_list(parsed.to) or fmt_list(summary.rcpt_to), 300)}",
            f"Received: {fmt_full_time(summary.received_at)}  ·  {fmt_size(summary.size)}"
            + (f"  ·  Date: {date}" if date else ""),
        ]
        if summary.duplicate_of:
            meta.append(f"Duplicate: Message-ID already captured as #{summary.duplicate_of}")
        self.meta_label.setText("\n".join(meta))
        if parsed.notes:
            self.notes_label.setText("Parse notes: " + one_line("; ".join(parsed.notes), 1000))
            self.notes_label.show()
        else:
            self.notes_label.hide()
        if parsed.html:
            self.html.show_html(message.id, parsed.html, message.inline)
            self.tabs.setTabEnabled(self.TAB_HTML, True)
        else:
            self.html.clear()
            self.tabs.setTabEnabled(self.TAB_HTML, False)
        text = parsed.text or ""
        if not text and parsed.html:
            text = "(no text part: this message has only HTML; see the HTML tab)"
        elif not text:
            text = "(no text part)"
        self.text.set_text(text[:TEXT_LIMIT])
        self.headers.setPlainText(
            "\n".join(f"{h.name}: {make_visible(h.value)}" for h in parsed.headers)
        )
        raw_text = message.raw[:TEXT_LIMIT].decode("utf-8", "replace")
        if len(message.raw) > TEXT_LIMIT:
            raw_text += f"\n\n[… {len(message.raw) - TEXT_LIMIT} more bytes; save as .eml]"
        self.raw.setPlainText(raw_text)
        self.attachments_model.set_rows(list(parsed.attachments))
        self.tabs.setTabText(self.TAB_ATTACHMENTS, f"Attachments ({len(parsed.attachments)})")
        current = self.tabs.currentIndex()
        if current == self.TAB_HTML and not parsed.html:
            self.tabs.setCurrentIndex(self.TAB_TEXT)

    @Slot(QUrl)
    def open_link(self, url: QUrl) -> None:
        """Open a clicked link in the system browser; say so in the window if that fails."""
        if not self.open_url(url):
            self.link_open_failed.emit(url.toString())

    # Saving ------------------------------------------------------------------------------
    def save_eml_to(self, path: Path) -> None:
        """Write the message's original bytes to path."""
        if self.message is not None:
            Path(path).write_bytes(self.message.raw)

    def save_attachment_to(self, index: int, path: Path) -> bool:
        """Write attachment number index (decoded) to path; False if it is not there."""
        if self.message is None:
            return False
        found = get_attachment(self.message.raw, index)
        if found is None:
            return False
        Path(path).write_bytes(found[1])
        return True

    @staticmethod
    def attachment_file_name(attachment: Any) -> str:
        """The name offered when saving an attachment: decoded, then made safe."""
        return safe_filename(attachment.filename or f"attachment-{attachment.index}")

    def save_folder(self) -> Path:
        """Where a Save dialog opens: the last folder saved to, else Downloads, else home."""
        if self.settings_store is not None:
            last = str(self.settings_store.value(SAVE_FOLDER_KEY, "") or "")
            if last and Path(last).is_dir():
                return Path(last)
        downloads = QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.DownloadLocation)
        if downloads and Path(downloads).is_dir():
            return Path(downloads)
        return Path.home()

    def remember_save_folder(self, saved_to: Path) -> None:
        """The next Save dialog opens where this file went."""
        if self.settings_store is not None:
            self.settings_store.setValue(SAVE_FOLDER_KEY, str(Path(saved_to).parent))

    def _ask_save_path(self, title: str, name: str, filters: str = "") -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, title, str(self.save_folder() / name),
                                              filters)
        if not path:
            return None
        self.remember_save_folder(Path(path))
        return Path(path)

    @Slot()
    def on_save_eml(self) -> None:
        if self.message is None:
            return
        name = safe_filename(f"message-{self.message.id}.eml")
        path = self._ask_save_path("Save message", name, "Email (*.eml)")
        if path is not None:
            self.save_eml_to(path)

    @Slot()
    def on_save_attachment(self) -> None:
        rows = self.attachments_view.selectionModel().selectedRows()
        attachment = self.attachments_model.row_at(rows[0].row()) if rows else None
        if attachment is None:
            return
        path = self._ask_save_path("Save attachment", self.attachment_file_name(attachment))
        if path is not None:
            self.save_attachment_to(attachment.index, path)

