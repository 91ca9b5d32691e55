"""Open time and memory of the desktop window's inbox over an existing data folder.

Run as its own process by bench.inbox (``python -m bench.inbox_window --data-dir D``) so
that start-up and resident memory are the window's alone. It builds the real MainWindow
offscreen over a Runtime with no catcher, worker or HTTP port (nothing to wait for but
the window), shows the Inbox tab, and times until the inbox model has its count and
first page. Then it asks for a page deep in the list, as scrolling would. It prints one
JSON object on the last line of standard output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()


def rss_mib() -> float:
    """Resident set size of this process in MiB (from /proc, else psutil)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return float(psutil.Process().memory_info().rss) / 1024 / 1024


def tree_memory_mib() -> dict[str, float]:
    """RSS and PSS of this process and its children (Qt WebEngine's helper processes).

    RSS counts shared libraries once per process; PSS shares them out, so the PSS sum is
    the fairer total for a process tree.
    """
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    rss = pss = 0.0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"tree_rss_mib": rss / 1024 / 1024, "tree_pss_mib": pss / 1024 / 1024,
            "processes": float(len(procs))}


def main(argv: list[str] | None = None) -> int:
    """Open the window over --data-dir, time the inbox's first page, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from desktop.app import prepare_qt

    prepare_qt()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from core.settings import Settings
    from desktop.main_window import MainWindow
    from desktop.runtime import Runtime

    app = QApplication(sys.argv[:1])
    t_imported = time.perf_counter()
    settings = Settings(data_dir=args.data_dir)
    runtime = Runtime(settings, run_catcher=False, run_worker=False, run_http=False)
    runtime.start()
    qsettings = QSettings(str(args.data_dir / "bench-gui.ini"), QSettings.Format.IniFormat)
    t_window = time.perf_counter()
    window = MainWindow(runtime, settings_store=qsettings)
    window.resize(1400, 900)
    window.tabs.setCurrentIndex(MainWindow.TAB_INBOX)
    window.show()
    model = window.inbox_model
    deadline = time.perf_counter() + args.timeout
    while not model.loaded_once and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)
    t_ready = time.perf_counter()
    rows = model.rowCount()
    ready = model.loaded_once and (rows == 0 or model.message_at(0) is not None)
    rss_ready = rss_mib()

    # Scroll deep into the list: the page is fetched off the GUI thread.
    deep_row = max(0, rows // 2)
    t_scroll = time.perf_counter()
    window.inbox.table.scrollTo(model.index(deep_row, 0))
    model.data(model.index(deep_row, 0))
    while model.message_at(deep_row) is None and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)
    t_scrolled = time.perf_counter()
    rss_scrolled = rss_mib()
    tree = tree_memory_mib()

    result = {
        "ready": bool(ready),
        "rows": rows,
        "imports_s": t_imported - T_START,
        "process_start_to_ready_s": t_ready - T_START,
        "window_to_first_page_s": t_ready - t_window,
        "deep_page_s": t_scrolled - t_scroll,
        "deep_page_loaded": model.message_at(deep_row) is not None,
        "rss_ready_mib": rss_ready,
        "rss_after_scroll_mib": rss_scrolled,
        **tree,
    }
    import shiboken6

    window.close()
    window.shutdown()
    shiboken6.delete(window)  # before the app goes, as desktop.app does
    runtime.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
