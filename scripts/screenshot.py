"""Make docs/screenshot.png: the real window, offscreen, over real data in a temporary folder.

It starts the real Runtime (catcher, worker, HTTP port) on free loopback ports, signs
up a few users through the window's controller, waits until their emails are
captured, activates one, selects a user so that the sign-up path shows, and grabs
the window. Usage: python scripts/screenshot.py [OUTPUT.png] [--tab N]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def use_dark_palette(app: Any) -> None:
    """What a desktop in dark mode hands the application: Fusion with a dark palette."""
    from PySide6.QtGui import QColor, QPalette

    app.setStyle("Fusion")
    pal = QPalette()
    R = QPalette.ColorRole  # noqa: N806
    for role, color in ((R.Window, "#2b2b2b"), (R.WindowText, "#e6e6e6"), (R.Base, "#1e1e1e"),
                        (R.AlternateBase, "#262626"), (R.Text, "#e6e6e6"), (R.Button, "#353535"),
                        (R.ButtonText, "#e6e6e6"), (R.Highlight, "#2f65ca"),
                        (R.HighlightedText, "#ffffff"), (R.Link, "#6ea8fe"),
                        (R.PlaceholderText, "#8c8c8c"), (R.ToolTipBase, "#353535"),
                        (R.ToolTipText, "#e6e6e6")):
        pal.setColor(role, QColor(color))
    app.setPalette(pal)


def main() -> int:
    """Run the window, fill it with a few sign-ups, save a PNG of it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--tab", type=int, default=0, help="tab to show (0 Registrations)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=820)
    parser.add_argument("--dark", action="store_true", help="a dark palette (Fusion style)")
    args = parser.parse_args()

    from desktop.app import prepare_qt

    prepare_qt()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from core.settings import RetryPolicy, Settings
    from desktop.main_window import MainWindow
    from desktop.runtime import Runtime
    from mailcatcher.chaos import ChaosRule

    app = QApplication(sys.argv[:1])
    if args.dark:
        use_dark_palette(app)
    with tempfile.TemporaryDirectory(prefix="mailroom-shot-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            smtp_port=free_port(),
            http_port=free_port(),
            retry=RetryPolicy(max_attempts=5, base_seconds=2, cap_seconds=10),
        )
        runtime = Runtime(settings, workers=2)
        runtime.start()
        qsettings = QSettings(str(Path(tmp) / "gui.ini"), QSettings.Format.IniFormat)
        window = MainWindow(runtime, settings_store=qsettings)
        window.resize(args.width, args.height)
        window.show()

        def pump(seconds: float, until: object = None) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                app.processEvents()
                if callable(until) and until():
                    return
                time.sleep(0.02)

        engine, store = runtime.engine, runtime.store
        # Faults first (the catcher reads its rules when a connection opens): one address
        # is refused, one domain is slow, so that the chart shows inline vs queued.
        store.add_chaos_rule(ChaosRule(stage="rcpt", code=550, match="katherine@*",
                                       message="5.1.1 Mailbox unavailable"))
        store.add_chaos_rule(ChaosRule(stage="data", delay_ms=1500, match="*@slow.example"))
        people = [
            ("ada@example.com", "Ada Lovelace", "queue"),
            ("grace@example.com", "Grace Hopper", "sync"),
            ("alan@bücher.example", "Alan Turing", "queue"),
            ("edsger@example.org", "Edsger Dijkstra", "queue"),
            ("barbara@example.net", "Barbara Liskov", "queue"),
            ("katherine@example.com", "Katherine Johnson", "queue"),
        ]
        people += [(f"inline{i}@slow.example", f"Inline {i}", "sync") for i in range(1, 4)]
        people += [(f"queued{i}@slow.example", f"Queued {i}", "queue") for i in range(1, 4)]
        answers: list[object] = []
        window.controller.registered.connect(answers.append)
        window.controller.register_failed.connect(answers.append)
        for number, (email, name, mode) in enumerate(people, 1):  # one after another
            window.controller.register(email, "correct horse battery", name, mode)
            pump(15, lambda number=number: len(answers) >= number)
        window.controller.register_many(12, "queue")

        def settled() -> bool:
            rows = engine.list_outbox()
            return len(rows) >= len(people) + 12 and all(
                o.status in ("sent", "failed") for o in rows)

        pump(60, settled)
        # Activate Ada through the link in her captured email, as a browser would.
        ada = engine.find_user("ada@example.com")
        if ada is not None:
            path = engine.get_signup_path(ada.id)
            captured = store.find_by_message_id(path.outbox[0].message_id) if path else []
            if captured:
                from mailcatcher.parsing import parse_message

                text = parse_message(store.get_raw(captured[0].id) or b"").text or ""
                link = next((w for w in text.split() if "/activate" in w), "")
                if link:
                    engine.activate(link)
            pump(3, lambda: window.users_model.row_of(ada.id) is not None)
            window.registrations.select_user(int(ada.id))
            pump(3, lambda: "Activated" in window.registrations.path_view.steps())
            if args.tab == MainWindow.TAB_INBOX and captured:
                window.open_message(captured[0].id)
                pump(5, lambda: window.inbox.preview.message is not None)
        if args.tab == MainWindow.TAB_OUTBOX:
            window.outbox.table.selectRow(0)
        window.tabs.setCurrentIndex(args.tab)
        pump(2)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(args.output)
        window.close()
        runtime.close()
    print(f"saved {args.output}" if ok else f"could not save {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
