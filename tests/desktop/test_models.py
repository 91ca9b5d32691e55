"""The window's item models, without widgets, over real stores: qtmodeltester and paging."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QThread

from core.engine import Engine
from desktop.models.attachments import AttachmentsModel
from desktop.models.chaos import ChaosRulesModel, FaultsModel
from desktop.models.inbox import PAGE_SIZE, InboxModel
from desktop.models.outbox import AttemptsModel, OutboxModel
from desktop.models.users import UsersModel
from desktop.tasks import Refresher, TaskRunner
from mailcatcher.chaos import ChaosRule
from mailcatcher.parsing import parse_message
from mailcatcher.store import MessageStore, prepare_message
from tests.desktop.conftest import PASSWORD, gui_settings


def make_raw(n: int, subject: str | None = None, body: str = "hello") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"sender{n}@example.com"
    msg["To"] = "inbox@example.com"
    msg["Subject"] = subject or f"Message number {n}"
    msg["Message-ID"] = f"<m{n}@example.com>"
    msg.set_content(body)
    return msg.as_bytes()


def fill(store: MessageStore, count: int, start: int = 0, word: str = "") -> None:
    """Store count messages in one transaction; every tenth body holds `word`."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    store.add_prepared([
        prepare_message(make_raw(n, body=f"body {word if n % 10 == 0 else ''}"),
                        mail_from="a@example.com", rcpt_tos=["inbox@example.com"],
                        peer="127.0.0.1:1", received_at=base + timedelta(seconds=n))
        for n in range(start, start + count)
    ])


@pytest.fixture
def store(data_dir: Path) -> Iterator[MessageStore]:
    s = MessageStore(data_dir / "mail.db")
    yield s
    s.close()


@pytest.fixture
def runner(qapp: Any) -> Iterator[TaskRunner]:
    r = TaskRunner()
    yield r
    r.shutdown()


@pytest.fixture
def engine(data_dir: Path, free_port: Callable[[], int]) -> Iterator[Engine]:
    """An engine whose SMTP server is absent: emails stay queued (no worker runs)."""
    e = Engine(gui_settings(data_dir, free_port(), free_port()))
    yield e
    e.close()


def refreshed(qtbot: Any, model: Any) -> None:
    """Refresh a paged model and wait for the count and first page."""
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.refresh()


def test_users_model_passes_modeltester_and_inserts_new_users_on_top(
    qtbot: Any, qtmodeltester: Any, engine: Engine, runner: TaskRunner
) -> None:
    """New users are inserted at the top (no reset), so a view keeps its selection."""
    for name in ("ada", "grace"):
        engine.register(f"{name}@example.com", PASSWORD, name.title())
    model = UsersModel(engine, runner)
    refreshed(qtbot, model)
    qtmodeltester.check(model)
    assert model.data(model.index(0, model.COL_EMAIL)) == "grace@example.com"

    engine.register("alan@example.com", PASSWORD, "Alan")
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    with qtbot.waitSignal(model.rowsInserted) as inserted:
        refreshed(qtbot, model)
    assert inserted.args[1:] == [0, 0]
    assert resets == []
    assert [model.data(model.index(r, model.COL_EMAIL)) for r in range(3)] == [
        "alan@example.com", "grace@example.com", "ada@example.com"]
    qtmodeltester.check(model)


def test_outbox_state_changes_update_rows_in_place(
    qtbot: Any, engine: Engine, runner: TaskRunner
) -> None:
    """A delivery attempt changes the row's state in place (dataChanged, no reset)."""
    engine.register("ada@example.com", PASSWORD, "Ada")
    model = OutboxModel(engine, runner)
    refreshed(qtbot, model)
    assert model.data(model.index(0, model.COL_STATUS)) == "queued"
    engine.deliver(model.row_at(0).id)  # nobody listens on the SMTP port: retry later
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    with qtbot.waitSignal(model.dataChanged):
        refreshed(qtbot, model)
    assert resets == []
    assert model.data(model.index(0, model.COL_STATUS)) == "retrying"
    assert model.data(model.index(0, model.COL_ATTEMPTS)) == "1 (3 left)"


def test_outbox_model_filters_by_state(
    qtbot: Any, engine: Engine, runner: TaskRunner
) -> None:
    """The state filter lists only rows in that state, and counts only those."""
    engine.register("ada@example.com", PASSWORD, "Ada")
    engine.register("grace@example.com", PASSWORD, "Grace")
    model = OutboxModel(engine, runner)
    refreshed(qtbot, model)
    engine.deliver(model.row_at(0).id)
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.set_query("retrying")
    assert model.rowCount() == 1 and model.row_at(0).status == "retrying"
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.set_query(None)
    assert model.rowCount() == 2


def test_outbox_and_attempts_models_pass_modeltester(
    qtmodeltester: Any, runtime: Any, qtbot: Any, runner: TaskRunner
) -> None:
    """Outbox rows and delivery attempts from a real delivery show state, reply and timing."""
    engine = runtime.engine
    engine.register("ada@example.com", PASSWORD, "Ada")
    qtbot.waitUntil(lambda: engine.list_outbox()[0].status == "sent", timeout=15000)
    outbox = OutboxModel(engine, runner)
    refreshed(qtbot, outbox)
    qtmodeltester.check(outbox)
    assert outbox.data(outbox.index(0, outbox.COL_STATUS)) == "sent"
    attempts = AttemptsModel()
    attempts.set_rows(engine.list_attempts(outbox.row_at(0).id))
    qtmodeltester.check(attempts)
    assert attempts.data(attempts.index(0, attempts.COL_CODE)) == "250"
    assert attempts.data(attempts.index(0, attempts.COL_DURATION)).endswith(("ms", "s"))


def test_rows_model_moves_rows_instead_of_resetting(qtbot: Any, qtmodeltester: Any) -> None:
    """A small list (rules, attempts) takes new rows on top and drops old ones without a reset."""
    model = ChaosRulesModel()
    rules = [ChaosRule(stage="rcpt", code=451, id=i) for i in (3, 2, 1)]
    model.set_rows(rules[1:])
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    with qtbot.waitSignals([model.rowsRemoved, model.rowsInserted]):
        model.set_rows(rules[:2])
    assert resets == []
    assert [r.id for r in model.rows] == [3, 2]
    changed = [dataclasses.replace(rules[0], code=550), rules[1]]
    with qtbot.waitSignal(model.dataChanged) as signal:
        model.set_rows(changed)
    assert signal.args[0].row() == 0 and resets == []
    qtmodeltester.check(model)


def test_inbox_model_loads_pages_on_demand(
    qtbot: Any, store: MessageStore, runner: TaskRunner
) -> None:
    """The inbox knows the total at once but fetches only the pages that are looked at."""
    total = PAGE_SIZE * 2 + 50
    fill(store, total)
    model = InboxModel(store, runner)
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.refresh()
    assert model.rowCount() == total
    assert model.message_at(0).subject == f"Message number {total - 1}"  # newest first
    last = total - 1
    assert model.message_at(last) is None  # not fetched yet
    assert model.data(model.index(last, model.COL_SUBJECT)) == "…"
    with qtbot.waitSignal(model.page_loaded, timeout=10000) as loaded:
        pass
    assert loaded.args == [2]
    assert model.message_at(last).subject == "Message number 0"
    assert model.message_at(PAGE_SIZE) is None  # the page in between was never asked for


def test_inbox_model_passes_modeltester(
    qtbot: Any, qtmodeltester: Any, store: MessageStore, runner: TaskRunner
) -> None:
    """The windowed inbox model is a well-behaved table (placeholders included)."""
    fill(store, 30)
    model = InboxModel(store, runner)
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.refresh()
    qtmodeltester.check(model)


def test_inbox_model_inserts_new_mail_on_top(
    qtbot: Any, store: MessageStore, runner: TaskRunner
) -> None:
    """Mail arriving while the list is shown is inserted above, without a reset."""
    fill(store, 5)
    model = InboxModel(store, runner)
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.refresh()
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    fill(store, 2, start=5)
    with qtbot.waitSignals([model.rowsInserted, model.refreshed], timeout=10000):
        model.refresh()
    assert resets == []
    assert model.rowCount() == 7
    assert model.message_at(0).subject == "Message number 6"


def test_inbox_model_search_filters_off_the_gui_thread(
    qtbot: Any, store: MessageStore, runner: TaskRunner
) -> None:
    """Search narrows the list to matching messages; clearing it brings all back."""
    fill(store, 100, word="zebra")
    model = InboxModel(store, runner)
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.set_search("zebra")
    assert model.rowCount() == 10
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.set_search("")
    assert model.rowCount() == 100


def test_chaos_models_pass_modeltester(qtmodeltester: Any, runtime: Any, qtbot: Any) -> None:
    """Rules and recorded faults show their effect and cause (rule or server)."""
    import smtplib

    store = runtime.store
    store.add_chaos_rule(ChaosRule(stage="rcpt", code=451, delay_ms=10, match="*@slow.test"))
    rules = ChaosRulesModel()
    rules.set_rows(store.list_chaos_rules())
    qtmodeltester.check(rules)
    assert rules.data(rules.index(0, rules.COL_EFFECT)).startswith("delay 10 ms, then 451")
    host, port = runtime.smtp_address
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("a@example.com", ["x@slow.test"], b"Subject: x\r\n\r\nx\r\n")
    qtbot.waitUntil(lambda: len(store.list_faults(limit=10)) >= 1, timeout=10000)
    faults = FaultsModel()
    faults.set_rows(store.list_faults(limit=10))
    qtmodeltester.check(faults)
    causes = {faults.data(faults.index(r, faults.COL_CAUSE)) for r in range(faults.rowCount())}
    assert any(c.startswith("rule #") for c in causes)


def test_attachments_model_passes_modeltester(qtmodeltester: Any) -> None:
    """Attachments list their decoded name, type and size."""
    msg = EmailMessage()
    msg["Subject"] = "files"
    msg.set_content("see attached")
    msg.add_attachment(b"x" * 2048, maintype="application", subtype="pdf", filename="report.pdf")
    model = AttachmentsModel()
    model.set_rows(list(parse_message(msg.as_bytes()).attachments))
    qtmodeltester.check(model)
    assert [model.data(model.index(0, c)) for c in (0, 1, 2)] == [
        "report.pdf", "application/pdf", "2.0 KiB"]


def test_task_runner_delivers_results_in_the_gui_thread(qtbot: Any, runner: TaskRunner) -> None:
    """Work runs on a pool thread; its callback runs in the GUI thread."""
    gui = QThread.currentThread()
    seen: dict[str, Any] = {}

    def work() -> str:
        seen["worker"] = threading.current_thread() is not threading.main_thread()
        return "done"

    runner.submit(work, lambda result: seen.update(result=result,
                                                   gui=QThread.currentThread() == gui))
    qtbot.waitUntil(lambda: "result" in seen, timeout=5000)
    assert seen == {"worker": True, "result": "done", "gui": True}


def test_refresher_coalesces_requests_made_while_a_query_runs(
    qtbot: Any, runner: TaskRunner
) -> None:
    """Many refresh requests during a slow query cause exactly one more query, not many."""
    calls: list[int] = []
    applied: list[int] = []
    gate = threading.Event()

    def make_job() -> Callable[[], int]:
        def job() -> int:
            calls.append(1)
            gate.wait(5)
            return len(calls)
        return job

    refresher = Refresher(runner, make_job, applied.append)
    refresher.request()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=5000)
    for _ in range(10):
        refresher.request()
    gate.set()
    qtbot.waitUntil(lambda: len(applied) == 2 and not refresher.busy, timeout=5000)
    assert len(calls) == 2


def test_scrolling_far_fetches_the_latest_pages_first_and_skips_the_passed_over(
    qtbot: Any, store: MessageStore, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are fetched one at a time, newest wish first; pages scrolled past are dropped."""
    from desktop.models import paged

    monkeypatch.setattr(paged, "PAGE_SIZE", 10)
    fill(store, 120)  # 12 pages of 10
    model = InboxModel(store, runner)
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.refresh()
    loaded: list[int] = []
    model.page_loaded.connect(loaded.append)
    for page in range(1, 12):  # a fast drag down the scrollbar, all before any answer
        model.data(model.index(page * 10, model.COL_SUBJECT))
    qtbot.waitUntil(lambda: len(loaded) == 1 + paged.MAX_WANTED, timeout=10000)
    assert loaded == [1, 11, 10, 9, 8, 7, 6, 5, 4]
    assert model.message_at(20) is None and model.message_at(30) is None  # passed over
    assert model.message_at(110).subject == "Message number 9"


def test_new_mail_keeps_the_rows_on_screen_while_scrolled_deep(
    qtbot: Any, store: MessageStore, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mail arriving while a deep page is shown moves its rows down without a placeholder."""
    from desktop.models import paged

    monkeypatch.setattr(paged, "PAGE_SIZE", 10)
    fill(store, 100)
    model = InboxModel(store, runner)
    with qtbot.waitSignal(model.refreshed, timeout=10000):
        model.refresh()
    for row in (50, 60):  # pages 5 and 6 are on screen
        model.data(model.index(row, model.COL_SUBJECT))
    qtbot.waitUntil(lambda: model.message_at(50) is not None and model.message_at(60) is not None,
                    timeout=10000)
    shown = model.message_at(55).subject
    fill(store, 3, start=100)
    with qtbot.waitSignal(model.rowsInserted, timeout=10000):
        model.refresh()
    # At once, before any page is fetched again: the same message, three rows lower.
    assert model.message_at(58).subject == shown
    assert model.data(model.index(58, model.COL_SUBJECT)) == shown
    # Then the kept pages are fetched again (they may hold changed rows) and still agree.
    with qtbot.waitSignal(model.page_loaded, timeout=10000):
        pass
    assert model.message_at(58).subject == shown


def test_a_page_fetched_while_mail_arrives_holds_the_rows_of_its_refresh(
    qtbot: Any, store: MessageStore, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mail stored after a refresh does not push a page fetched later down: each row
    shows the message the refreshed count put there, none twice, none skipped."""
    from desktop.models import paged

    monkeypatch.setattr(paged, "PAGE_SIZE", 10)
    fill(store, 100)
    model = InboxModel(store, runner)
    refreshed(qtbot, model)
    fill(store, 3, start=100)  # arrives before the view scrolls (no refresh yet)
    with qtbot.waitSignal(model.page_loaded, timeout=10000):
        model.data(model.index(55, model.COL_SUBJECT))
    assert model.rowCount() == 100
    assert [model.message_at(r).subject for r in range(50, 60)] == [
        f"Message number {99 - r}" for r in range(50, 60)]
    # The next refresh shows the new mail on top, and the same page one step lower.
    with qtbot.waitSignal(model.rowsInserted, timeout=10000):
        model.refresh()
    assert model.rowCount() == 103
    assert model.message_at(58).subject == "Message number 44"


def test_a_users_page_fetched_after_new_sign_ups_keeps_its_rows(
    qtbot: Any, engine: Engine, runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The users list pages by the refresh's newest user too (sign-ups stream in)."""
    from desktop.models import paged

    monkeypatch.setattr(paged, "PAGE_SIZE", 5)
    for i in range(20):
        engine.register(f"u{i:02d}@example.com", PASSWORD)
    model = UsersModel(engine, runner)
    refreshed(qtbot, model)
    for i in range(20, 24):
        engine.register(f"u{i:02d}@example.com", PASSWORD)
    with qtbot.waitSignal(model.page_loaded, timeout=10000):
        model.data(model.index(12, model.COL_EMAIL))
    assert model.rowCount() == 20
    assert [model.data(model.index(r, model.COL_EMAIL)) for r in range(10, 15)] == [
        f"u{19 - r:02d}@example.com" for r in range(10, 15)]


def test_the_inbox_shows_recipients_by_address_and_names_in_the_tooltip(
    qtbot: Any, store: MessageStore, runner: TaskRunner
) -> None:
    """The To column shows addresses (what tells sign-ups apart); the tooltip adds the
    names and the envelope."""
    msg = EmailMessage()
    msg["From"] = "App <app@example.com>"
    msg["To"] = "Test user 12 <test-12@example.com>, plain@example.com"
    msg["Subject"] = "hi"
    msg.set_content("x")
    store.add_prepared([prepare_message(msg.as_bytes(), mail_from="app@example.com",
                                        rcpt_tos=["test-12@example.com"], peer="p")])
    model = InboxModel(store, runner)
    refreshed(qtbot, model)
    index = model.index(0, model.COL_TO)
    assert model.data(index) == "test-12@example.com, plain@example.com"
    tooltip = model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert "Test user 12 <test-12@example.com>" in tooltip and "Envelope:" in tooltip
