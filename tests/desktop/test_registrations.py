"""The Registrations tab tells the truth about a sign-up: the inline outcome, existing
accounts, timings without password hashing, generated passwords, and the path in time order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from PySide6.QtCore import Qt

from core.queries import OutboxView, SignupPath, UserView
from desktop.controllers import PathView
from desktop.models.format import fmt_attempts, fmt_ms
from desktop.views.signup_path import SignupPathView
from mailcatcher.chaos import ChaosRule
from tests.desktop.conftest import PASSWORD

LONG = 15000


def sign_up(qtbot: Any, window: Any, email: str, password: str = PASSWORD, name: str = "",
            mode: str = "queue") -> str:
    """Fill the form, click Sign up, wait for the answer; returns the result line."""
    view = window.registrations
    view.mode_combo.setCurrentIndex(view.mode_combo.findData(mode))
    view.email_edit.setText(email)
    view.name_edit.setText(name)
    view.password_edit.setText(password)
    view.result_label.setText("")
    qtbot.mouseClick(view.signup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.result_label.text()[:1] in ("✓", "✗"), timeout=LONG)
    return str(view.result_label.text())


def test_inline_signup_whose_attempt_fails_says_it_failed_and_will_retry(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A sync sign-up answered 451 says "inline attempt failed: … 451 …; will retry", not sent
    (the code once: the reason quotes it)."""
    runtime.store.add_chaos_rule(ChaosRule(stage="rcpt", code=451, message="4.3.0 Try later"))
    text = sign_up(qtbot, window, "ada@example.com", mode="sync")
    assert "inline attempt failed: RCPT TO deferred: 451 4.3.0" in text, text
    assert "will retry" in text and text.count("451") == 1, text
    assert "sent inline" not in text


def test_inline_signup_that_is_accepted_says_sent_inline(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """A sync sign-up the server accepts reports "sent inline"."""
    text = sign_up(qtbot, window, "grace@example.com", mode="sync")
    assert "sent inline" in text and "failed" not in text, text


def test_existing_address_is_reported_as_an_existing_account(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Signing up a taken address says it is an existing account, never 'check your inbox'."""
    sign_up(qtbot, window, "alan@example.com")
    text = sign_up(qtbot, window, "alan@example.com")
    assert "existing account" in text and "notice" in text, text
    assert "inbox" not in text.lower() and "user #" not in text


def test_result_line_shows_the_time_without_password_hashing(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """The result line gives the total and the engine's time without password hashing."""
    text = sign_up(qtbot, window, "edsger@example.com")
    assert "without password hashing" in text, text


def test_generated_password_is_shown_and_focus_returns_to_email(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """An empty password is generated, shown in the result line, and Email has the focus after."""
    window.activateWindow()
    text = sign_up(qtbot, window, "barbara@example.com", password="")
    assert "Generated password: " in text, text
    password = text.split("Generated password: ", 1)[1].strip()
    assert len(password) >= 12
    assert window.registrations.email_edit.hasFocus()


def test_a_name_pasted_with_a_line_break_is_sent_on_one_line(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Line breaks in the name become one space in the field and in the stored user."""
    view = window.registrations
    view.email_edit.setText("zoe@example.com")
    view.password_edit.setText(PASSWORD)
    view.name_edit.setText("Zoë\r\n  Smith\n")
    qtbot.mouseClick(view.signup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.result_label.text().startswith("✓"), timeout=LONG)
    user = runtime.engine.find_user("zoe@example.com")
    assert user is not None and user.display_name == "Zoë Smith"


def test_what_is_typed_during_a_slow_signup_is_kept(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Typing the next user while an inline sign-up waits on a slow server loses nothing:
    the answer clears the form only if it still holds what was sent."""
    runtime.store.add_chaos_rule(ChaosRule(stage="data", delay_ms=1500))
    view = window.registrations
    view.mode_combo.setCurrentIndex(view.mode_combo.findData("sync"))
    view.email_edit.setText("dave@example.com")
    view.password_edit.setText(PASSWORD)
    view.result_label.setText("")
    qtbot.mouseClick(view.signup_button, Qt.MouseButton.LeftButton)
    view.email_edit.setText("erin@example.com")  # the next one, typed while waiting
    qtbot.waitUntil(lambda: view.result_label.text()[:1] in ("✓", "✗"), timeout=LONG)
    assert view.email_edit.text() == "erin@example.com"
    assert view.password_edit.text() == PASSWORD


def test_chart_without_hashing_plots_the_engine_time_of_own_signups(qtbot: Any) -> None:
    """With "without hashing" on, a sign-up is plotted at total minus hashing; others not at all."""
    from desktop.views.chart import LiveChart

    chart = LiveChart()
    qtbot.addWidget(chart)
    chart.add_signup(260.0, "queue", at=100.0, hash_ms=250.0)
    chart.add_signup(300.0, "other", at=101.0)
    assert [ms for _, ms, _ in chart.plotted_signups()] == [260.0, 300.0]
    chart.set_without_hashing(True)
    assert chart.plotted_signups() == [(100.0, 10.0, "queue")]


def test_durations_are_formatted_one_way() -> None:
    """Milliseconds read "5.8 ms", "17 ms", "2.4 s": never "10.00 ms"."""
    assert [fmt_ms(v) for v in (5.8, 9.996, 17.2, 470.2, 999.6, 2400, 75000)] == [
        "5.8 ms", "10 ms", "17 ms", "470 ms", "1.0 s", "2.4 s", "75 s"]


def test_attempts_show_a_count_and_what_the_budget_leaves() -> None:
    """Attempts read as a count and the attempts left while delivery goes on, not 2/9."""
    assert fmt_attempts(2, 9, "retrying") == "2 (7 left)"
    assert fmt_attempts(3, 3, "failed") == "3"


def _outbox(oid: int, kind: str, created: datetime) -> OutboxView:
    return OutboxView(id=oid, user_id=1, kind=kind, to="ada@example.com", subject=kind,
                      status="sent", attempts=1, max_attempts=8, next_attempt_at=None,
                      last_code=250, last_error=None, message_id=f"<{oid}@x>",
                      created_at=created, sent_at=created + timedelta(seconds=1))


def test_path_lists_steps_in_time_order(qtbot: Any) -> None:
    """An activation made before a later notice email is listed before that email."""
    t0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    activated = t0 + timedelta(minutes=1)
    user = UserView(id=1, email="ada@example.com", display_name="Ada", status="active",
                    created_at=t0, activated_at=activated, signup_ms=12.0)
    path = SignupPath(user=user,
                      outbox=[_outbox(1, "activation", t0), _outbox(2, "signup_notice",
                                                                    t0 + timedelta(minutes=5))],
                      attempts={}, activated_at=activated, created_at=t0, signup_ms=12.0)
    view = SignupPathView()
    qtbot.addWidget(view)
    view.show_path(PathView(path, {}))
    assert view.steps() == ["Sign-up request", "Email #1 (activation)", "Activated",
                            "Email #2 (signup notice)"]


def test_an_emails_steps_are_listed_as_they_happened(
    qtbot: Any, window: Any, runtime: Any
) -> None:
    """Under an email, the attempt, the catcher's capture and "Sent" come in the order of
    their times (the catcher stores a message before its 250; the worker marks it sent
    after)."""
    result = runtime.engine.register("order@example.com", PASSWORD, "Order")
    user_id = int(result.user_id)
    qtbot.waitUntil(lambda: window.users_model.row_of(user_id) is not None, timeout=LONG)
    window.registrations.select_user(user_id)
    path = window.registrations.path_view
    qtbot.waitUntil(lambda: path.user_id == user_id and bool(path.open_buttons)
                    and "Sent" in _email_steps(path), timeout=LONG)
    steps = _email_steps(path)
    assert steps == ["Attempt 1", "Captured by the catcher", "Sent"]
    times = [_email_step_times(path)[s] for s in steps]
    assert times == sorted(times)


def _email_item(path: Any) -> Any:
    tree = path.tree
    return next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                if tree.topLevelItem(i).text(0).startswith("Email #"))


def _email_steps(path: Any) -> list[str]:
    email = _email_item(path)
    return [email.child(i).text(0) for i in range(email.childCount()) if email.child(i).text(0)]


def _email_step_times(path: Any) -> dict[str, str]:
    email = _email_item(path)
    return {email.child(i).text(0): email.child(i).text(1) for i in range(email.childCount())}


def _bulk_done(view: Any) -> bool:
    return view.bulk_button.text() == "Sign up N test users" and "Signed up" in \
        view.result_label.text()


def test_sign_up_n_signs_n_test_users_up(qtbot: Any, window: Any, runtime: Any) -> None:
    """"Sign up N test users" creates N users and says how long they took."""
    view = window.registrations
    view.bulk_spin.setValue(6)
    qtbot.mouseClick(view.bulk_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _bulk_done(view), timeout=LONG)
    assert view.result_label.text().startswith("Signed up 6 of 6 test users")
    assert runtime.engine.count_users() == 6


def test_a_running_sign_up_n_can_be_stopped(qtbot: Any, window: Any, runtime: Any) -> None:
    """While N users are being signed up the button stops it: those under way finish, no
    more start, and the result says how many were signed up and that it was stopped."""
    view = window.registrations
    view.bulk_spin.setValue(5000)
    qtbot.mouseClick(view.bulk_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.bulk_button.text().startswith("Stop (")
                    and int(view.bulk_button.text()[6:].split("/")[0]) >= 5, timeout=LONG)
    qtbot.mouseClick(view.bulk_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _bulk_done(view), timeout=LONG)
    text = view.result_label.text()
    signed = int(text.split()[2])
    assert 5 <= signed < 5000 and text.endswith("; stopped")
    assert runtime.engine.count_users() == signed
