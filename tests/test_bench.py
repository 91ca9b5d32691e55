"""The benchmarks run at a tiny size and write their JSON (no timing is asserted, ever).

Each benchmark runs as `python -m bench.<name> --quick` in a subprocess against real
servers on loopback, exactly as `make bench` would; the tests check that it finishes and
that the JSON holds what the docs are built from. The helpers (statistics, SMTP
dot-stuffing, message generator) have fast tests of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.common import format_table, percentile, spread, summarize
from bench.messages import MARKER, MARKER_EVERY, realistic_message, small_message
from bench.sinks import MAILDEV_DIR, BareSink
from bench.smtp_load import Envelope, prepare, run_load

ROOT = Path(__file__).resolve().parents[1]


def run_bench(module: str, out: Path, *extra: str, timeout: float = 240) -> dict[str, Any]:
    """Run one benchmark module at quick size into out; return the JSON it wrote."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    name = module.rsplit(".", 1)[1]
    return dict(json.loads((out / f"{name}.json").read_text()))


# -- helpers ------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    """percentile() interpolates linearly: p50 of 1..4 is 2.5, p0/p100 are the extremes."""
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1
    assert percentile([4, 1, 3, 2], 100) == 4
    assert summarize([5.0])["p99"] == 5.0


def test_spread_reports_relative_range() -> None:
    """spread() gives the median and (max - min) / median in percent."""
    s = spread([90.0, 100.0, 110.0])
    assert s["median"] == 100.0 and s["spread_pct"] == pytest.approx(20.0)


def test_table_aligns_columns() -> None:
    """format_table() pads every cell of a column to the same width."""
    lines = format_table("t", ["a", "bb"], [["x", 1.0], ["yyyy", 1234.5]]).splitlines()
    assert len({len(line) for line in lines[1:]}) == 1


def test_prepare_dot_stuffs_and_terminates() -> None:
    """prepare() doubles leading dots, uses CRLF and ends with the lone dot line."""
    assert prepare(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"


def test_realistic_mix_is_deterministic_and_marks_one_percent() -> None:
    """The generator gives the same bytes for the same i, and the marker in 1 % of bodies."""
    assert realistic_message(123).raw == realistic_message(123).raw
    marked = [i for i in range(1000) if realistic_message(i).has_marker]
    assert len(marked) == 1000 // MARKER_EVERY
    assert all(MARKER.encode() in realistic_message(i).raw for i in marked[:3])
    assert MARKER.encode() not in realistic_message(0).raw
    assert any(realistic_message(i).attachments for i in range(100))


def test_load_client_counts_only_accepted_messages(tmp_path: Path) -> None:
    """The SMTP load client counts every message the bare server stored, in every mode."""
    sink = BareSink(tmp_path)
    sink.start()
    try:
        envs = [Envelope(m.mail_from, m.rcpt_tos, prepare(m.raw))
                for m in (small_message(i) for i in range(24))]
        sent = sum(run_load(*sink.address, envs[i::3], mode).sent for i, mode in
                   enumerate(("one-connection", "8-clients", "connection-per-message")))
    finally:
        sink.stop()
    assert sent == 24
    assert sink.stored_count() == 24


# -- the benchmarks at tiny size ------------------------------------------------------------


@pytest.mark.slow
def test_ingest_runs_and_every_accepted_message_is_stored(tmp_path: Path) -> None:
    """bench.ingest --quick writes rates for bare and Mailroom; Mailroom stored all it accepted."""
    result = run_bench("bench.ingest", tmp_path, "--no-maildev")
    assert set(result["rates"]) == {"bare", "mailroom"}
    checks = [r["check"] for r in result["runs"] if "check" in r]
    room = [c for c in checks if c["server"] == "mailroom"]
    assert room and all(c["stored"] == c["accepted"] == c["found_by_search"] for c in room)
    assert all(r["rate"] > 0 for r in result["runs"] if "rate" in r)


@pytest.mark.slow
@pytest.mark.skipif(not (MAILDEV_DIR / "node_modules" / ".bin" / "maildev").exists(),
                    reason="MailDev is not installed (make bench installs it from npm)")
def test_ingest_against_maildev(tmp_path: Path) -> None:
    """With MailDev installed, the ingest comparison includes it and it stored every message."""
    result = run_bench("bench.ingest", tmp_path)
    assert "maildev" in result["rates"]
    checks = [r["check"] for r in result["runs"] if "check" in r and
              r["check"]["server"] == "maildev"]
    assert checks and all(c["stored"] == c["accepted"] for c in checks)


@pytest.mark.slow
def test_signup_latency_runs_every_case(tmp_path: Path) -> None:
    """bench.signup_latency --quick measures both modes at both delays, with hashing apart."""
    result = run_bench("bench.signup_latency", tmp_path)
    assert set(result["cases"]) == {f"{case}@{delay}" for case in
                                    ("sync", "queue", "queue-embedded") for delay in (0, 2000)}
    users = result["sizes"]["users"]
    for case in result["cases"].values():
        assert case["register_ms"]["n"] == users
        assert case["hash_ms"]["p50"] > 0
    assert set(result["targets"]) == {"queued_p99_excluding_hash_ms", "sync_over_queued_p50_at_2s",
                                      "embedded_p99_excluding_hash_ms"}


@pytest.mark.slow
def test_throughput_runs_and_delivers_everything(tmp_path: Path) -> None:
    """bench.throughput --quick delivers every sign-up, from several callers and from one,
    and samples the queue over time."""
    result = run_bench("bench.throughput", tmp_path)
    users = result["sizes"]["users"]
    e2e = result["runs"]["end_to_end"][0]
    assert e2e["sent"] == users and e2e["callers"] == result["sizes"]["callers"] > 1
    assert result["runs"]["end_to_end_one_caller"][0]["sent"] == users
    assert e2e["timeline"] and e2e["timeline"][-1]["captured"] <= users
    assert result["idle_ms"]["n"] == result["sizes"]["idle_samples"]


@pytest.mark.slow
def test_inbox_runs_and_search_finds_the_marked_messages(tmp_path: Path) -> None:
    """bench.inbox --quick fills the store, finds exactly the marked messages, opens the window."""
    result = run_bench("bench.inbox", tmp_path)
    q = result["queries"]
    assert q["rows"] == result["sizes"]["messages"]
    assert q["search_hits"] == q["search_hits_expected"] > 0
    assert all(w["ready"] and w["rows"] == q["rows"] for w in result["window_runs"])
    assert result["disk"]["total_mib"] > 0


@pytest.mark.slow
def test_run_all_entry_point_writes_each_chosen_benchmark(tmp_path: Path) -> None:
    """python -m bench.run_all --quick --only ingest runs and writes ingest.json alone."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--quick", "--only", "ingest", "--no-maildev",
         "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "ingest.json").exists()
    assert not (tmp_path / "inbox.json").exists()
