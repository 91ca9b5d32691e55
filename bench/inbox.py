"""Benchmark 4: the inbox at scale (100,000 realistic messages).

Fills a Mailroom message store with the realistic mix of bench.messages (varied sizes,
HTML alternatives, attachments, the marker word in 1 % of bodies), preparing messages on
every core and writing them in batches, then measures what a person waits for:

- the newest page (the store's list and count calls the inbox makes on refresh),
- a full-text search for the marker word (expected hits known: 1 % of the messages),
- opening one message (summary, raw bytes and the parse the preview shows),
- the desktop window (offscreen, its own process): time until the inbox model has its
  first page, and its resident memory,
- the store's size on disk.

Targets (issue 6): page and search < 100 ms, window ready < 1 s, resident memory < 300 MB.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    BenchConfig,
    child_env,
    print_table,
    python_module_cmd,
    summarize,
    write_json,
)
from bench.messages import MARKER, MARKER_EVERY, realistic_message

TARGET_QUERY_MS = 100.0
TARGET_WINDOW_S = 1.0
TARGET_RSS_MB = 300.0
CHUNK = 500


def sizes(config: BenchConfig) -> dict[str, Any]:
    """Messages in the store, query repetitions and window runs for this run size."""
    if config.quick:
        return {"messages": 2000, "repeats": 5, "window_runs": 1}
    return {"messages": 100_000, "repeats": 20, "window_runs": config.runs or 3}


def _prepare_chunk(bounds: tuple[int, int]) -> list[Any]:
    from mailcatcher.store import prepare_message

    out = []
    for i in range(*bounds):
        m = realistic_message(i)
        out.append(prepare_message(m.raw, mail_from=m.mail_from, rcpt_tos=m.rcpt_tos,
                                   peer="127.0.0.1:25025"))
    return out


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, CHUNK):
        yield start, min(total, start + CHUNK)


def fill_store(path: Path, total: int) -> dict[str, Any]:
    """Fill a new store at path with total realistic messages; return timing facts."""
    from mailcatcher.store import MessageStore

    t0 = time.perf_counter()
    store = MessageStore(path)
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes=max(1, min(2, multiprocessing.cpu_count()))) as pool:
            for prepared in pool.imap(_prepare_chunk, _chunks(total)):
                store.add_prepared(prepared)
    finally:
        store.close()
    elapsed = time.perf_counter() - t0
    return {"messages": total, "fill_s": elapsed, "fill_per_s": total / elapsed}


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[dict[str, float], Any]:
    fn()  # one untimed call: compiled statements and warm page cache, like a second look
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return summarize(times), result


def _cold(fn: Callable[[Any], Any], path: Path) -> float:
    """ms for fn(store) on a store just opened (a fresh connection, OS cache still warm)."""
    from mailcatcher.store import MessageStore

    with MessageStore(path) as store:
        t0 = time.perf_counter()
        fn(store)
        return (time.perf_counter() - t0) * 1000.0


def measure_queries(path: Path, total: int, repeats: int) -> dict[str, Any]:
    """Time the store calls behind the inbox: page, count, search, open."""
    from desktop.models.inbox import PAGE_SIZE
    from mailcatcher.parsing import parse_message
    from mailcatcher.store import MessageStore

    out: dict[str, Any] = {"page_size": PAGE_SIZE}
    with MessageStore(path) as store:
        out["newest_page_ms"], page = _timed(
            lambda: store.list_messages(limit=PAGE_SIZE, offset=0), repeats)
        out["count_ms"], count = _timed(lambda: store.count_messages(), repeats)
        out["refresh_ms"], _ = _timed(  # what the inbox model runs on every refresh
            lambda: (store.count_messages(), store.list_messages(limit=PAGE_SIZE)), repeats)
        out["deep_page_ms"], _ = _timed(
            lambda: store.list_messages(limit=PAGE_SIZE, offset=total // 2), repeats)
        out["search_page_ms"], hits = _timed(
            lambda: store.list_messages(limit=PAGE_SIZE, search=MARKER), repeats)
        out["search_count_ms"], hit_count = _timed(
            lambda: store.count_messages(search=MARKER), repeats)
        out["search_refresh_ms"], _ = _timed(
            lambda: (store.count_messages(search=MARKER),
                     store.list_messages(limit=PAGE_SIZE, search=MARKER)), repeats)
        ids = [m.id for m in page]
        target = ids[len(ids) // 2] if ids else 1

        def open_one(message_id: int = target) -> Any:
            summary = store.get_message(message_id)
            raw = store.get_raw(message_id) or b""
            return summary, parse_message(raw)

        out["open_message_ms"], _ = _timed(open_one, repeats)
        biggest = store._conn().execute(  # the largest message: the worst case to open
            "SELECT id FROM messages ORDER BY size DESC LIMIT 1").fetchone()
        if biggest:
            out["open_largest_ms"], _ = _timed(lambda: open_one(int(biggest[0])), repeats)
        out["rows"] = count
        out["search_hits"] = hit_count
        out["search_hits_expected"] = len([i for i in range(total) if i % MARKER_EVERY == 37])
        out["search_first_page_rows"] = len(hits)
    out["cold_refresh_ms"] = _cold(
        lambda s: (s.count_messages(), s.list_messages(limit=PAGE_SIZE)), path)
    out["cold_search_ms"] = _cold(
        lambda s: (s.count_messages(search=MARKER), s.list_messages(limit=PAGE_SIZE,
                                                                     search=MARKER)), path)
    return out


def measure_window(data_dir: Path, runs: int) -> list[dict[str, Any]]:
    """Open the window runs times, each in a fresh process; the JSON each printed."""
    results = []
    for _ in range(runs):
        proc = subprocess.run(
            python_module_cmd("bench.inbox_window", "--data-dir", str(data_dir)),
            capture_output=True, text=True, env=child_env(), timeout=300, check=False,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the window probe failed ({proc.returncode}): "
                               f"{(proc.stderr or proc.stdout)[-800:]}")
        results.append(json.loads(lines[-1]))
    return results


def disk_size(data_dir: Path) -> dict[str, float]:
    """Size of the mail store files (database, WAL) in MiB."""
    files = {p.name: p.stat().st_size / 1024 / 1024 for p in data_dir.glob("mail.db*")}
    return {"total_mib": sum(files.values()), **{f"{k}_mib": v for k, v in files.items()}}


def run(config: BenchConfig) -> dict[str, Any]:
    """Fill, measure, print tables; return the JSON-ready result."""
    size = sizes(config)
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        store_path = data_dir / "mail.db"
        fill = fill_store(store_path, size["messages"])
        print(f"  filled {fill['messages']:,} messages in {fill['fill_s']:.0f} s "
              f"({fill['fill_per_s']:.0f}/s)", flush=True)
        raw_bytes = sum(len(realistic_message(i).raw) for i in range(0, size["messages"], 97))
        avg_size = raw_bytes / len(range(0, size["messages"], 97))
        queries = measure_queries(store_path, size["messages"], size["repeats"])
        disk = disk_size(data_dir)
        windows = measure_window(data_dir, size["window_runs"])

    win = {k: summarize([w[k] for w in windows]) for k in
           ("process_start_to_ready_s", "window_to_first_page_s", "imports_s", "deep_page_s",
            "rss_ready_mib", "rss_after_scroll_mib", "tree_rss_mib", "tree_pss_mib")}
    rows = [
        ["newest page (list)", queries["newest_page_ms"]],
        ["count (all)", queries["count_ms"]],
        ["inbox refresh = count + newest page", queries["refresh_ms"]],
        ["page in the middle (offset)", queries["deep_page_ms"]],
        [f"search '{MARKER}': first page", queries["search_page_ms"]],
        ["search: count", queries["search_count_ms"]],
        ["search refresh = count + first page", queries["search_refresh_ms"]],
        ["open one message (summary + raw + parse)", queries["open_message_ms"]],
    ]
    if "open_largest_ms" in queries:
        rows.append(["open the largest message", queries["open_largest_ms"]])
    print_table(
        f"Inbox at {size['messages']:,} messages, ms ({size['repeats']} repeats after one warm-up; "
        f"search finds {queries['search_hits']:,} of {queries['search_hits_expected']:,} expected)",
        ["operation", "p50", "p95", "max"],
        [[name, s["p50"], s["p95"], s["max"]] for name, s in rows], digits=2,
    )
    print_table(
        f"Desktop window over the same store (offscreen, {len(windows)} fresh process(es))",
        ["measure", "median", "max"],
        [["window created -> inbox first page, s", win["window_to_first_page_s"]["p50"],
          win["window_to_first_page_s"]["max"]],
         ["process start -> inbox ready, s", win["process_start_to_ready_s"]["p50"],
          win["process_start_to_ready_s"]["max"]],
         ["  of which imports + QApplication, s", win["imports_s"]["p50"], win["imports_s"]["max"]],
         ["page in the middle after scrolling, s", win["deep_page_s"]["p50"],
          win["deep_page_s"]["max"]],
         ["resident memory when ready, MiB", win["rss_ready_mib"]["p50"],
          win["rss_ready_mib"]["max"]],
         ["resident memory after scrolling, MiB", win["rss_after_scroll_mib"]["p50"],
          win["rss_after_scroll_mib"]["max"]],
         ["  with Qt WebEngine helper processes (RSS sum), MiB", win["tree_rss_mib"]["p50"],
          win["tree_rss_mib"]["max"]],
         ["  with Qt WebEngine helper processes (PSS sum), MiB", win["tree_pss_mib"]["p50"],
          win["tree_pss_mib"]["max"]]],
        digits=2,
    )
    print_table("Store on disk", ["file", "MiB"],
                [[k, v] for k, v in disk.items()] + [["average message, KiB", avg_size / 1024]])
    page_ms = max(queries["refresh_ms"]["p95"], queries["newest_page_ms"]["p95"])
    search_ms = queries["search_refresh_ms"]["p95"]
    rss_mb = win["rss_after_scroll_mib"]["max"] * 1.048576
    targets = {
        "page_ms": {"target": TARGET_QUERY_MS, "value": page_ms, "met": page_ms < TARGET_QUERY_MS},
        "search_ms": {"target": TARGET_QUERY_MS, "value": search_ms,
                      "met": search_ms < TARGET_QUERY_MS},
        "window_ready_s": {"target": TARGET_WINDOW_S,
                           "value": win["window_to_first_page_s"]["p50"],
                           "met": win["window_to_first_page_s"]["p50"] < TARGET_WINDOW_S},
        "resident_mb": {"target": TARGET_RSS_MB, "value": rss_mb, "met": rss_mb < TARGET_RSS_MB},
    }
    result = {"sizes": size, "fill": fill, "average_message_bytes": avg_size,
              "queries": queries, "window": win, "window_runs": windows, "disk": disk,
              "targets": targets}
    path = write_json(config.out_dir, "inbox", result)
    print(f"wrote {path}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m bench.inbox [--quick] [--runs N] [--out DIR]."""
    from bench.run_all import parse_config

    run(parse_config(argv, description=__doc__))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
