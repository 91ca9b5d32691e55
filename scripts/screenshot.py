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

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    """Run the window, fill it with a few sign-ups, save a PNG of it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--tab", type=int, default=0, help="tab to show (0 Registrations)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
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
        people = [
            ("ada@example.com", "Ada Lovelace", "queue"),
            ("grace@example.com", "Grace Hopper", "sync"),
            ("alan@bücher.example", "Alan Turing", "queue"),
            ("edsger@example.org", "Edsger Dijkstra", "queue"),
            ("barbara@example.net", "Barbara Liskov", "queue"),
        ]
        # A temporary failure for one address, so that its path shows a retry.
        rule = store.add_chaos_rule(ChaosRule(stage="rcpt", code=451, match="katherine@*",
                                              message="4.7.1 Greylisted, try again later"))
        for email, name, mode in people:
            window.controller.register(email, "correct horse battery", name, mode)
        window.controller.register("katherine@example.com", "correct horse battery",
                                   "Katherine Johnson", "queue")
        pump(20, lambda: store.count_messages() >= len(people)
             and any(o.status == "retrying" for o in engine.list_outbox()))
        store.remove_chaos_rule(rule.id or 0)
        window.controller.register_many(12, "queue")
        pump(30, lambda: store.count_messages() >= len(people) + 13
             and not any(o.status != "sent" for o in engine.list_outbox()))
        # Activate Ada through the link in her email.
        first = engine.find_user("ada@example.com")
        if first is not None:
            path = engine.get_signup_path(first.id)
            if path is not None and path.outbox:
                captured = store.find_by_message_id(path.outbox[0].message_id)
                if captured:
                    from mailcatcher.parsing import parse_message

                    raw = store.get_raw(captured[0].id) or b""
                    text = parse_message(raw).text or ""
                    link = next((w for w in text.split() if "/activate" in w), "")
                    if link:
                        engine.activate(link)
        pump(2)
        target = engine.find_user("katherine@example.com")
        if target is not None:
            pump(3, lambda: window.users_model.row_of(target.id) is not None)
            window.registrations.select_user(int(target.id))
            pump(3, lambda: window.registrations.path_view.tree.topLevelItemCount() > 0)
        window.tabs.setCurrentIndex(args.tab)
        pump(1.5)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(args.output)
        window.close()
        runtime.close()
    print(f"saved {args.output}" if ok else f"could not save {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
