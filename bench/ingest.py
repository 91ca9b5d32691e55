"""Benchmark 3: catcher ingest, Mailroom vs a bare aiosmtpd ceiling vs MailDev 3.

Small messages in three modes (one client on one connection; 8 concurrent clients on
persistent connections; a new connection per message), against each server in its own
process, side by side in the same run and repeated over several runs with the servers
interleaved. A message counts when the server has answered 250 to its data; after each
server's run the benchmark checks that it holds every message (Mailroom: in its SQLite
store, and found by full-text search; MailDev: as files in its mail directory).

Targets (issue 6): Mailroom >= 60 % of the bare ceiling with 8 clients, and >= 2.5x MailDev
in every mode.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import BenchConfig, print_table, ratio, spread, write_json
from bench.messages import small_message
from bench.sinks import MailDevSink, MailroomSink, SinkUnavailable, maildev_version, make_sink
from bench.smtp_load import MODES, Envelope, prepare, run_load

TARGET_BARE_SHARE = 0.60
TARGET_VS_MAILDEV = 2.5


def sizes(config: BenchConfig) -> dict[str, Any]:
    """Messages per mode and time caps for this run size."""
    if config.quick:
        return {"messages": 300, "per_connection_messages": 40, "cap_s": 10.0,
                "per_connection_cap_s": 5.0, "runs": 1}
    return {"messages": 20_000, "per_connection_messages": 2_000, "cap_s": 120.0,
            "per_connection_cap_s": 12.0, "runs": config.runs or 2}


def _envelopes(start: int, count: int) -> list[Envelope]:
    out = []
    for i in range(start, start + count):
        msg = small_message(i)
        out.append(Envelope(msg.mail_from, msg.rcpt_tos, prepare(msg.raw)))
    return out


def run(config: BenchConfig) -> dict[str, Any]:
    """Run the ingest comparison; print tables; return the JSON-ready result."""
    size = sizes(config)
    n, n_pc = size["messages"], size["per_connection_messages"]
    kinds = ["bare", "mailroom"]
    notes: list[str] = []
    if config.no_maildev:
        notes.append("MailDev skipped (--no-maildev)")
    else:
        try:
            from bench.sinks import maildev_binary

            maildev_binary()
            kinds.insert(1, "maildev")
            notes.append(f"MailDev {maildev_version()} from npm")
        except SinkUnavailable as exc:
            notes.append(str(exc))
            print(f"note: {exc}", flush=True)

    counts = {"one-connection": n, "8-clients": n, "connection-per-message": n_pc}
    offsets = {"one-connection": 0, "8-clients": n, "connection-per-message": 2 * n}
    envelopes = {m: _envelopes(offsets[m], counts[m]) for m in MODES}

    rates: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in kinds}
    runs_detail: list[dict[str, Any]] = []
    for run_no in range(size["runs"]):
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{kind}-") as tmp:
                sink = make_sink(kind, Path(tmp))
                sink.start()
                sent_total = 0
                try:
                    for mode in MODES:
                        cap = size["per_connection_cap_s"] if mode == "connection-per-message" \
                            else size["cap_s"]
                        res = run_load(*sink.address, envelopes[mode], mode, max_seconds=cap)
                        sent_total += res.sent
                        rates[kind][mode].append(res.rate)
                        runs_detail.append({
                            "run": run_no + 1, "server": kind, "mode": mode, "sent": res.sent,
                            "errors": res.errors, "elapsed_s": res.elapsed_s, "rate": res.rate,
                            "capped": res.capped, "error_samples": res.error_samples,
                        })
                        print(f"  run {run_no + 1} {sink.name:17s} {mode:24s} "
                              f"{res.sent:6d} msgs {res.rate:8.1f} msg/s"
                              f"{' (time cap)' if res.capped else ''}"
                              f"{f' errors={res.errors}' if res.errors else ''}", flush=True)
                    if isinstance(sink, MailDevSink):
                        sink.wait_stored(sent_total)
                finally:
                    sink.stop()
                stored = sink.stored_count()
                check: dict[str, Any] = {"run": run_no + 1, "server": kind,
                                         "accepted": sent_total, "stored": stored}
                if isinstance(sink, MailroomSink):
                    check["found_by_search"] = sink.search_count("Activate")
                runs_detail.append({"check": check})
                if stored != sent_total:
                    notes.append(f"run {run_no + 1}: {sink.name} stored {stored} of "
                                 f"{sent_total} accepted messages")

    summary: dict[str, dict[str, dict[str, float]]] = {
        k: {m: spread(v) for m, v in by_mode.items()} for k, by_mode in rates.items()
    }
    rows = []
    ratios: dict[str, dict[str, float]] = {}
    for mode in MODES:
        bare = summary["bare"][mode]["median"]
        room = summary["mailroom"][mode]["median"]
        dev = summary["maildev"][mode]["median"] if "maildev" in summary else float("nan")
        ratios[mode] = {"mailroom_vs_bare": ratio(room, bare),
                        "mailroom_vs_maildev": ratio(room, dev)}
        rows.append([
            mode, bare, dev, room,
            f"{ratio(room, bare) * 100:.0f} %" if bare else "-",
            f"{ratio(room, dev):.2f}x" if dev == dev else "-",
            f"±{max(s[mode]['spread_pct'] for s in summary.values()):.0f} %",
        ])
    print_table(
        f"Catcher ingest, msg/s (median of {size['runs']} run(s); {n:,} msgs per persistent mode, "
        f"up to {n_pc:,} per connection-per-message)",
        ["mode", "bare aiosmtpd", "MailDev 3", "Mailroom", "Mailroom/bare", "Mailroom/MailDev",
         "max spread"],
        rows,
    )
    eight = ratios["8-clients"]
    targets = {
        "mailroom_vs_bare_8_clients": {"target": TARGET_BARE_SHARE,
                                       "value": eight["mailroom_vs_bare"],
                                       "met": eight["mailroom_vs_bare"] >= TARGET_BARE_SHARE},
        "mailroom_vs_maildev_every_mode": {
            "target": TARGET_VS_MAILDEV,
            "value": min((r["mailroom_vs_maildev"] for r in ratios.values()),
                         default=float("nan")),
            "met": ("maildev" in summary
                    and all(r["mailroom_vs_maildev"] >= TARGET_VS_MAILDEV
                            for r in ratios.values())),
        },
    }
    for line in notes:
        print(f"note: {line}", flush=True)
    result = {"sizes": size, "servers": kinds, "rates": summary, "ratios": ratios,
              "targets": targets, "runs": runs_detail, "notes": notes}
    path = write_json(config.out_dir, "ingest", result)
    print(f"wrote {path}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m bench.ingest [--quick] [--runs N] [--out DIR] [--no-maildev]."""
    from bench.run_all import parse_config

    config = parse_config(argv, description=__doc__)
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
