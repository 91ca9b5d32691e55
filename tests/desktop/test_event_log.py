"""`mailroom serve`'s event log: new events only, and a burst summed up instead of flooding.

The printer reads the real databases of a running product (catcher, worker, store), as
`serve` does; what it prints goes to a string here.
"""

from __future__ import annotations

import io
from typing import Any

from desktop.cli import EventPrinter
from tests.desktop.conftest import PASSWORD
from tests.waiting import wait_until


def _deliver(runtime: Any, first: int, count: int) -> None:
    """Sign up count users and wait until each one's email is captured and its attempt kept."""
    for i in range(first, first + count):
        runtime.engine.register(f"log{i}@example.com", PASSWORD)
    total = first + count
    wait_until(lambda: runtime.store.count_messages() >= total, 30, "captured emails")
    wait_until(lambda: runtime.engine.attempts_after(0)[0] >= total, 30, "recorded attempts")


def _lines(out: io.StringIO) -> list[str]:
    return [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]


def test_a_new_printer_prints_nothing_of_the_past(runtime: Any) -> None:
    """What happened before serve started is not printed again."""
    _deliver(runtime, 0, 3)
    out = io.StringIO()
    EventPrinter(runtime.engine, runtime.store, out).poll()
    assert out.getvalue() == ""


def test_a_burst_prints_the_first_lines_then_how_many_more(runtime: Any) -> None:
    """30 deliveries in one poll: 5 lines of each kind, then one line with the other 25."""
    out = io.StringIO()
    printer = EventPrinter(runtime.engine, runtime.store, out, burst=5)
    _deliver(runtime, 0, 30)
    printer.poll()
    lines = _lines(out)
    assert sum(line.startswith("attempt  outbox #") for line in lines) == 5
    assert sum(line.startswith("captured message #") for line in lines) == 5
    assert "attempt  ... and 25 more (`mailroom outbox` lists them)" in lines
    assert "captured ... and 25 more (`mailroom messages` lists them)" in lines
    assert len(lines) == 12


def test_after_a_burst_the_next_event_is_printed_once(runtime: Any) -> None:
    """The printer skips what it summed up: the next poll shows only what is new."""
    out = io.StringIO()
    printer = EventPrinter(runtime.engine, runtime.store, out, burst=5)
    _deliver(runtime, 0, 12)
    printer.poll()
    out.seek(0)
    out.truncate()
    _deliver(runtime, 12, 1)
    printer.poll()
    lines = _lines(out)
    assert len(lines) == 2, lines
    assert "log12@example.com" in lines[0] and "log12@example.com" in lines[1]
