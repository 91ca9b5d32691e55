"""The main window: tabs for Registrations, Outbox, Inbox and Chaos, a live status bar.

The window owns the models, a TaskRunner (the thread pool every query runs on),
the Controller (commands) and the ChangeWatcher (what to refresh). A write by any
process shows within about one poll interval; nothing here blocks on a database.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QGuiApplication,
    QKeySequence,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QMainWindow,
    QMessageBox,
    QStyle,
    QSystemTrayIcon,
    QTabWidget,
    QWidget,
)

from desktop.controllers import Controller, PathView, Services, error_text
from desktop.models.chaos import ChaosRulesModel, FaultsModel
from desktop.models.inbox import InboxModel
from desktop.models.outbox import AttemptsModel, OutboxModel, attempts_with_current
from desktop.models.users import UsersModel
from desktop.tasks import Refresher, TaskRunner
from desktop.views.chaos import ChaosView
from desktop.views.inbox import InboxView
from desktop.views.outbox import OutboxView
from desktop.views.registrations import RegistrationsView
from desktop.views.widgets import ElidedLabel
from desktop.watcher import POLL_INTERVAL_MS, ChangeWatcher

FAULTS_LIMIT = 200
DEFAULT_SIZE = QSize(1280, 820)
# First-run shares (per cent) of each splitter's two panes.
PANE_SHARES = {
    "registrations_list": (50, 50),
    "inbox": (50, 50),
    "registrations": (65, 35),
    "outbox": (65, 35),
    "chaos": (35, 65),
}
STATS_INTERVAL_MS = 1000
CLASSIFY_DELAY_MS = 1500


def default_size(available: QSize) -> QSize:
    """The first window: 1280×820, or 90 % of the screen's free area where that is smaller."""
    return QSize(min(DEFAULT_SIZE.width(), int(available.width() * 0.9)),
                 min(DEFAULT_SIZE.height(), int(available.height() * 0.9)))


def _address(value: tuple[str, int] | None) -> str:
    return f"{value[0]}:{value[1]}" if value else "off"


class MainWindow(QMainWindow):
    """Mailroom's console over one running set of services (a `desktop.runtime.Runtime`)."""

    TAB_REGISTRATIONS, TAB_OUTBOX, TAB_INBOX, TAB_CHAOS = range(4)

    def __init__(
        self,
        services: Services,
        *,
        settings_store: QSettings | None = None,
        poll_interval_ms: int = POLL_INTERVAL_MS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.settings_store = settings_store or QSettings("Mailroom", "Mailroom")
        self.setWindowTitle("Mailroom")
        # How links leave the window: the system browser. Returns False when none opened.
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl
        # Two pools: queries keep the window live; commands (a sign-up that sends inline
        # to a slow server) may take seconds and must not hold the queries up.
        self.runner = TaskRunner(self)
        self.runner.error.connect(self.on_error)
        self.command_runner = TaskRunner(self)
        self.command_runner.error.connect(self.on_error)
        self.controller = Controller(services, self.command_runner, self,
                                     query_runner=self.runner)

        # Models
        self.users_model = UsersModel(services.engine, self.runner, self)
        self.outbox_model = OutboxModel(services.engine, self.runner, self)
        self.attempts_model = AttemptsModel(self)
        self.inbox_model = InboxModel(services.store, self.runner, self)
        self.rules_model = ChaosRulesModel(self)
        self.faults_model = FaultsModel(self)

        # Views
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.registrations = RegistrationsView(self.users_model, self.tabs)
        self.outbox = OutboxView(self.outbox_model, self.attempts_model, self.tabs)
        self.inbox = InboxView(self.inbox_model, self.tabs)
        self.inbox.preview.settings_store = self.settings_store
        self.chaos = ChaosView(self.rules_model, self.faults_model, self.tabs)
        self.tabs.addTab(self.registrations, "Registrations")
        self.tabs.addTab(self.outbox, "Outbox")
        self.tabs.addTab(self.inbox, "Inbox")
        self.tabs.addTab(self.chaos, "Chaos")
        self.setCentralWidget(self.tabs)

        # Status bar: addresses and counts, which a message (a result, a hint, an error)
        # covers for its few seconds: permanent widgets would leave it no room at all.
        # Elided labels: a longer count never widens the window, a narrow one cuts nothing.
        self.address_label = ElidedLabel("", self)
        self.counts_label = ElidedLabel("", self)
        self.queue_label = ElidedLabel("", self)
        self.queue_label.setObjectName("status_queue")
        self.statusBar().addWidget(self.address_label, 3)
        self.statusBar().addWidget(self.counts_label, 4)
        self.statusBar().addWidget(self.queue_label, 3)
        self._show_addresses()

        # State
        self._inbox_seen_total: int | None = None
        self._known_user_ids: set[int] | None = None
        self._own_signups: set[int] = set()
        self._unclassified: dict[int, Any] = {}
        self.stats: Any = None

        # Queries (one in flight per kind)
        engine, store = services.engine, services.store
        self._attempts = Refresher(self.runner, self._attempts_job, self._apply_attempts)
        self._path = Refresher(self.runner, self._path_job, self._apply_path)
        # Arrowing through the inbox asks for many messages: only the latest is loaded.
        self._message = Refresher(
            self.runner, lambda: self.controller.message_job(self.inbox.selected_id),
            self._apply_message)
        self._stats = Refresher(self.runner, lambda: engine.queue_stats, self._apply_stats)
        self._chaos = Refresher(
            self.runner,
            lambda: lambda: (store.list_chaos_rules(), store.chaos_enabled(),
                             store.list_faults(limit=FAULTS_LIMIT)),
            self._apply_chaos,
        )

        self._wire()
        self._make_menu_and_shortcuts()
        self._restore_settings()

        self.watcher = ChangeWatcher(engine.change_watcher(), store.change_watcher(), self,
                                     interval_ms=poll_interval_ms)
        self.watcher.app_changed.connect(self.refresh_app)
        self.watcher.mail_changed.connect(self.refresh_mail)
        self.watcher.error.connect(self.on_error)
        self.stats_timer = QTimer(self)
        self.stats_timer.setInterval(STATS_INTERVAL_MS)
        self.stats_timer.timeout.connect(self._stats.request)
        self.refresh_app()
        self.refresh_mail()
        self.watcher.start()
        self.stats_timer.start()

    # Wiring ----------------------------------------------------------------------------
    def _wire(self) -> None:
        c = self.controller
        r, o, i, ch = self.registrations, self.outbox, self.inbox, self.chaos
        r.register_requested.connect(c.register)
        r.bulk_requested.connect(c.register_many)
        r.user_selected.connect(lambda _: self._path.request())
        r.path_view.open_message_requested.connect(self.open_message)
        r.open_activation_requested.connect(c.find_activation_link)
        r.resend_requested.connect(c.resend)
        c.activation_link_found.connect(self._open_activation_link)
        i.preview.link_open_failed.connect(self._on_link_open_failed)
        c.registered.connect(self._on_registered)
        c.register_failed.connect(r.show_register_failed)
        c.bulk_progress.connect(r.show_bulk_progress)
        c.bulk_finished.connect(r.show_bulk_finished)
        r.bulk_stop_requested.connect(c.stop_bulk)
        c.signup_timed.connect(self._on_signup_timed)
        o.retry_requested.connect(c.retry)
        o.retry_failed_requested.connect(c.retry_failed)
        o.outbox_selected.connect(lambda _: self._attempts.request())
        o.status_filter_changed.connect(self._on_outbox_filter)
        i.message_selected.connect(lambda _: self._message.request())
        i.delete_requested.connect(c.delete_messages)
        i.clear_requested.connect(self.on_clear_inbox)
        i.mark_read_requested.connect(c.mark_read)
        i.check_message_requested.connect(self._check_message)
        ch.add_rule_requested.connect(c.add_chaos_rule)
        ch.remove_rule_requested.connect(c.remove_chaos_rule)
        ch.clear_rules_requested.connect(c.clear_chaos_rules)
        ch.enabled_toggled.connect(c.set_chaos_enabled)
        c.changed_app.connect(self.refresh_app)
        c.changed_mail.connect(self.refresh_mail)
        c.info.connect(lambda text: self.statusBar().showMessage(text, 8000))
        c.failed.connect(lambda text: self.statusBar().showMessage(text, 15000))
        self.inbox_model.refreshed.connect(self._on_inbox_refreshed)
        self.users_model.refreshed.connect(self._on_users_refreshed)
        self.outbox_model.refreshed.connect(self.outbox.rows_changed)

    def _make_menu_and_shortcuts(self) -> None:
        menu = self.menuBar().addMenu("&Mailroom")
        self.notify_action = QAction("Notify on new mail", self)
        self.notify_action.setCheckable(True)
        self.notify_action.toggled.connect(self._on_notify_toggled)
        menu.addAction(self.notify_action)
        menu.addSeparator()
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)
        self._shortcut(QKeySequence(QKeySequence.StandardKey.Find), self, self.on_find)
        self._shortcut(QKeySequence("Ctrl+R"), self, self.on_retry_shortcut)
        delete = self._shortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.inbox.table,
                                self.inbox.on_delete)
        delete.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)  # only in the inbox list
        for n in range(4):
            switch = partial(self.tabs.setCurrentIndex, n)
            self._shortcut(QKeySequence(f"Alt+{n + 1}"), self, switch)
        self.tray: QSystemTrayIcon | None = None

    @staticmethod
    def _shortcut(key: QKeySequence, parent: QWidget, slot: Callable[[], object]) -> QShortcut:
        shortcut = QShortcut(key, parent)
        shortcut.activated.connect(slot)
        return shortcut

    # Refresh ---------------------------------------------------------------------------
    @Slot()
    def refresh_app(self) -> None:
        """Reload what lives in the app database (users, outbox, attempts, path, stats)."""
        self.users_model.refresh()
        self.outbox_model.refresh()
        self._stats.request()
        if self.outbox.selected_id is not None:
            self._attempts.request()
        if self.registrations.selected_user_id is not None:
            self._path.request()

    @Slot()
    def refresh_mail(self) -> None:
        """Reload what lives in the mail store (inbox, chaos rules and faults, path)."""
        self.inbox_model.refresh()
        self._chaos.request()
        if self.registrations.selected_user_id is not None:
            self._path.request()

    @property
    def busy(self) -> bool:
        """True while any query is running or due (tests wait for this to settle)."""
        refreshers = (self._attempts, self._path, self._stats, self._chaos, self._message)
        models = (self.users_model, self.outbox_model, self.inbox_model)
        return (any(r.busy for r in refreshers) or any(m.busy for m in models)
                or self.runner.pending > 0 or self.command_runner.pending > 0)

    def _attempts_job(self) -> Any:
        engine, outbox_id = self.services.engine, self.outbox.selected_id
        if not outbox_id:
            return lambda: (outbox_id, [], None)
        return lambda: (outbox_id, engine.list_attempts(outbox_id), engine.get_outbox(outbox_id))

    def _path_job(self) -> Any:
        user_id = self.registrations.selected_user_id
        return self.controller.path_job(user_id)

    def _on_users_refreshed(self) -> None:
        self.registrations.restore_selection()
        users = self.users_model.first_page()
        if self._known_user_ids is None:
            self._known_user_ids = {int(u.id) for u in users}  # those before the window
        else:
            for user in users:
                uid = int(user.id)
                if uid not in self._known_user_ids:
                    self._known_user_ids.add(uid)
                    self._unclassified[uid] = user
            if self._unclassified:
                # Our own sign-ups report their time through the controller, which may
                # arrive a moment after the list: decide a little later which were not ours.
                QTimer.singleShot(CLASSIFY_DELAY_MS, self._plot_other_signups)
        self._update_counts()

    def _plot_other_signups(self) -> None:
        """Put sign-ups made by other processes (CLI, scripts) on the chart too."""
        if self.controller.signups_in_flight > 0:
            # An inline sign-up of ours may still be sending: decide when it has answered.
            QTimer.singleShot(CLASSIFY_DELAY_MS, self._plot_other_signups)
            return
        pending, self._unclassified = self._unclassified, {}
        for uid, user in pending.items():
            if uid not in self._own_signups and user.signup_ms is not None:
                at = user.created_at.timestamp()
                self.registrations.chart.add_signup(float(user.signup_ms), "other", at=at)

    def _apply_attempts(self, result: tuple[int | None, list[Any], Any]) -> None:
        outbox_id, attempts, email = result
        if outbox_id != self.outbox.selected_id:
            return
        self.attempts_model.set_rows(attempts_with_current(attempts, email))
        if email is not None:
            self.outbox.attempts_title.setText(
                f"Delivery attempts of email #{email.id} to {email.to} ({email.status})")

    def _apply_message(self, view: Any) -> None:
        if view is not None:
            self.inbox.show_message(view)

    def _apply_path(self, view: PathView | None) -> None:
        if view is not None and int(view.path.user.id) != self.registrations.selected_user_id:
            return
        self.registrations.path_view.show_path(view)

    def _apply_stats(self, stats: Any) -> None:
        self.stats = stats
        depth = int(stats.pending_tasks)
        by = stats.by_status
        waiting = by.get("queued", 0) + by.get("retrying", 0) + by.get("sending", 0)
        self.registrations.chart.add_depth(waiting)
        if self.services.worker_running:
            worker = f"{stats.workers_alive} worker(s) alive"
        elif stats.workers_alive:
            worker = f"{stats.workers_alive} external worker(s) alive"
        else:
            worker = "no worker running"
        text = (f"Queue: {depth} task(s) waiting, {stats.scheduled_tasks} scheduled · "
                f"{waiting} email(s) to deliver · {worker}")
        self.outbox.show_queue(text)
        self.outbox.show_failed_count(int(by.get("failed", 0)))
        self.queue_label.setText(f"queue {depth} · {worker}")
        self._update_counts()

    def _apply_chaos(self, result: tuple[list[Any], bool, list[Any]]) -> None:
        rules, enabled, faults = result
        self.rules_model.set_rows(rules)
        self.faults_model.set_rows(faults)
        self.chaos.set_enabled_state(enabled)
        active = enabled and bool(rules)
        self.tabs.setTabText(self.TAB_CHAOS, f"Chaos ({len(rules)} on)" if active else "Chaos")

    def _on_inbox_refreshed(self) -> None:
        total = self.inbox_model.total
        if self.inbox_model.search is None:
            previous = self._inbox_seen_total
            self._inbox_seen_total = total
            if previous is not None and total > previous:
                self._notify(total - previous)
            self.tabs.setTabText(self.TAB_INBOX, f"Inbox ({total})")
        self._update_counts()

    def _update_counts(self) -> None:
        by = self.stats.by_status if self.stats is not None else {}
        outbox = ", ".join(f"{by[s]} {s}" for s in ("queued", "sending", "retrying", "sent",
                                                     "failed") if by.get(s))
        inbox = self._inbox_seen_total if self._inbox_seen_total is not None else 0
        self.counts_label.setText(
            f"{self.users_model.total} user{'' if self.users_model.total == 1 else 's'} · "
            f"outbox: {outbox or 'empty'} · {inbox} captured")

    def _show_addresses(self) -> None:
        s = self.services
        smtp = _address(s.smtp_address)
        catcher = "catcher" if s.catcher_running else "external SMTP"
        self.address_label.setText(f"SMTP {smtp} ({catcher}) · HTTP {_address(s.http_address)}")

    # Actions ---------------------------------------------------------------------------
    def _on_registered(self, outcome: Any) -> None:
        if outcome.result.user_id is not None:
            self._own_signups.add(int(outcome.result.user_id))
        self.registrations.show_registered(outcome)

    def _on_signup_timed(self, elapsed_ms: float, mode: str, user_id: int,
                         hash_ms: float) -> None:
        if user_id:
            self._own_signups.add(user_id)
        self.registrations.chart.add_signup(elapsed_ms, mode, hash_ms=hash_ms)

    def _on_outbox_filter(self, status: str | None) -> None:
        self.outbox_model.set_query(status)

    @Slot(int)
    def open_message(self, message_id: int) -> None:
        """Switch to the Inbox and show one message (from the sign-up path)."""
        if self.inbox_model.search:
            self.inbox.search_edit.clear()
            self.inbox.apply_search()
        self.tabs.setCurrentIndex(self.TAB_INBOX)
        self.inbox.open_message(message_id)

    def _open_activation_link(self, user_id: int, link: str) -> None:
        """Open a user's activation link in the browser; activate here if none opens."""
        if not link:
            self.statusBar().showMessage(
                f"User #{user_id}: no captured activation email with a link (sent to another "
                "server, deleted, or not sent yet); Resend queues a new one", 15000)
            return
        if self.open_url(QUrl(link)):
            # A desktop can say it opened a link that no browser then shows: keep it at hand.
            QGuiApplication.clipboard().setText(link)
            self.statusBar().showMessage(f"Opened the activation link of user #{user_id} in "
                                         "the browser (also copied to the clipboard)", 8000)
        else:
            self.controller.activate(
                link, note="No browser could be opened; activated through the engine: ")

    def _on_link_open_failed(self, url: str) -> None:
        self.statusBar().showMessage(
            f"Could not open a browser for {url}: copy the link from the Text tab", 15000)

    def on_find(self) -> None:
        self.tabs.setCurrentIndex(self.TAB_INBOX)
        self.inbox.focus_search()

    def on_retry_shortcut(self) -> None:
        """Ctrl+R: retry the email selected in the Outbox, visibly, from any tab."""
        self.tabs.setCurrentIndex(self.TAB_OUTBOX)
        if self.outbox.retry_button.isEnabled():
            self.outbox.retry_button.animateClick()  # pressed on screen, then clicked
        else:
            self.statusBar().showMessage(
                "Ctrl+R retries the failed or retrying email selected in the Outbox: "
                "select one first", 8000)

    def on_clear_inbox(self) -> None:
        total = self.services.store.count_messages()  # every message, whatever the search
        text = f"Delete all {total} captured messages?"
        if self.inbox_model.search:
            text += (f"\n\nClear all does not follow the search: {self.inbox_model.total} "
                     "of them match it, and the others go too.")
        answer = QMessageBox.question(self, "Clear the inbox", text)
        if answer == QMessageBox.StandardButton.Yes:
            self.inbox.clear_preview()
            self.controller.clear_messages()

    def _check_message(self, message_id: int) -> None:
        """Clear the preview if its message was deleted (by any process)."""
        store = self.services.store

        def gone(exists: object) -> None:
            if not exists:
                self.inbox.message_gone(message_id)

        self.runner.submit(lambda: store.get_message(message_id) is not None, gone)

    @Slot(object)
    def on_error(self, exc: object) -> None:
        self.statusBar().showMessage(f"Error: {error_text(exc)}", 15000)

    # Notifications ---------------------------------------------------------------------
    def _on_notify_toggled(self, on: bool) -> None:
        self.settings_store.setValue("notify_new_mail", on)
        if on and self.tray is None and QSystemTrayIcon.isSystemTrayAvailable():
            icon = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation)
            self.tray = QSystemTrayIcon(icon, self)
            self.tray.setToolTip("Mailroom")
            self.tray.show()
        elif not on and self.tray is not None:
            self.tray.hide()

    def _notify(self, new: int) -> None:
        if self.notify_action.isChecked() and self.tray is not None:
            self.tray.showMessage("Mailroom", f"{new} new message(s) captured",
                                  QSystemTrayIcon.MessageIcon.Information, 4000)

    # Settings --------------------------------------------------------------------------
    def _splitters(self) -> dict[str, Any]:
        return {
            "registrations": self.registrations.splitter,
            "registrations_list": self.registrations.list_splitter,
            "outbox": self.outbox.splitter,
            "inbox": self.inbox.splitter,
            "chaos": self.chaos.splitter,
        }

    def _restore_settings(self) -> None:
        s = self.settings_store
        geometry = s.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(default_size(self.screen().availableGeometry().size()))
        self._panes_to_share: set[str] = set()
        for name, splitter in self._splitters().items():
            state = s.value(f"splitter/{name}")
            if isinstance(state, QByteArray):
                splitter.restoreState(state)
            else:
                self._panes_to_share.add(name)
        self.tabs.currentChanged.connect(self._share_panes_soon)
        tab = s.value("tab", 0)
        try:
            self.tabs.setCurrentIndex(int(str(tab)))
        except (TypeError, ValueError):
            pass
        self.notify_action.setChecked(str(s.value("notify_new_mail", "false")).lower() == "true")

    def save_settings(self) -> None:
        """Remember geometry, splitters and the current tab."""
        s = self.settings_store
        s.setValue("geometry", self.saveGeometry())
        for name, splitter in self._splitters().items():
            s.setValue(f"splitter/{name}", splitter.saveState())
        s.setValue("tab", self.tabs.currentIndex())
        s.sync()

    # Shutdown --------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop polling and wait for running queries; safe to call twice."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self.stats_timer.stop()
        self.watcher.stop()
        self.runner.shutdown()
        self.command_runner.shutdown()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        self._share_panes_soon()

    def _share_panes_soon(self, *_: object) -> None:
        if self._panes_to_share:
            # After the layout has given the splitters their size; dies with the window.
            QTimer.singleShot(0, self, self._share_panes)

    def _share_panes(self) -> None:
        """On the first run, share each splitter's panes by its real size once it is shown.

        Sizes given before a splitter has its size are not kept, and a tab not yet shown
        has none: each splitter is shared when its tab first shows. The window itself is
        never resized.
        """
        for name, splitter in self._splitters().items():
            share = PANE_SHARES.get(name)
            if name not in self._panes_to_share or share is None or not splitter.isVisible():
                continue
            total = (splitter.width() if splitter.orientation() == Qt.Orientation.Horizontal
                     else splitter.height())
            if total > 0:
                splitter.setSizes([total * share[0] // 100, total * share[1] // 100])
                self._panes_to_share.discard(name)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)
        app = QApplication.instance()
        if app is not None and self.tray is not None:
            self.tray.hide()

