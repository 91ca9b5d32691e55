"""Markdown tables of the latest results, for docs/benchmarks.md.

``python -m bench.report [DIR]`` reads the JSON files that ``bench.run_all`` wrote (default
bench/results/) and prints one Markdown section per benchmark: the same figures as the
printed tables, with the targets and whether each was met. The prose around them in
docs/benchmarks.md is written by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_RESULTS_DIR, fmt


def _n(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt(float(value), digits)


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table; the first column left-aligned, the rest right-aligned."""
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join([" --- "] + [" ---: "] * (len(headers) - 1)) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _met(t: dict[str, Any]) -> str:
    return "met" if t.get("met") else "**missed**"


def machine(results: dict[str, Any]) -> str:
    """One line per benchmark with the machine facts and the load average at its end."""
    lines = []
    for name, r in results.items():
        m = r["machine"]
        lines.append(f"- `{name}`: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
                     f"Python {m['python']}, SQLite {m['sqlite']}, commit {m.get('commit', '?')}, "
                     f"{m['time_utc']}, load "
                     f"average {'/'.join(str(x) for x in m.get('load_average_1_5_15', []))}")
    return "\n".join(lines)


CASES = {"sync": "inline (sync)", "queue": "queued (worker in serve)",
         "queue-embedded": "queued, worker also in the app process"}


def latency(r: dict[str, Any]) -> str:
    """Benchmark 1 tables."""
    rows = []
    keys = [f"{case}@{d}" for d in r["sizes"]["delays_ms"]
            for case in ("sync", "queue", "queue-embedded")]
    for key in keys:
        c = r["cases"].get(key)
        if not c:
            continue
        w, x, h = c["register_ms"], c["excluding_hash_ms"], c["hash_ms"]
        rows.append([f"{c['delay_ms'] / 1000:g} s", CASES.get(c.get("case", c["mode"]), ""),
                     _n(w["p50"]), _n(w["p95"]), _n(w["p99"]), _n(x["p50"], 2),
                     _n(x["p95"], 2), _n(x["p99"], 2), _n(h["p50"]),
                     _n(c["p50_with_default_hash_ms"]),
                     f"±{_n(c['p50_over_runs']['spread_pct'], 0)} %"])
    size = r["sizes"]
    dh = r["default_hash_ms"]
    text = [f"{size['users']} sign-ups per case per run, {size['runs']} run(s) pooled; "
            f"argon2id t=2, m=19 MiB, p=1 in the runs; argon2-cffi's default cost "
            f"(t={dh['time_cost']}, m={dh['memory_kib'] // 1024} MiB, p={dh['parallelism']}) "
            f"takes {_n(dh['p50'])} ms per hash here (p50 of {dh['n']}).", "",
            md_table(["SMTP delay", "mode", "p50", "p95", "p99", "excl. hashing p50", "p95",
                      "p99", "hashing p50", "p50 with default argon2", "p50 spread (runs)"],
                     rows), ""]
    ratio_rows = [[f"{int(d) / 1000:g} s", f"{_n(v['p50'])}×",
                   f"{_n(v['p50_excluding_hash'], 0)}×", f"{_n(v['p50_with_default_hash'])}×",
                   f"{_n(v.get('p50_vs_embedded'))}×"] for d, v in r["ratios"].items()]
    text += ["Inline / queued, p50:", "",
             md_table(["SMTP delay", "register()", "excluding hashing",
                       "with default argon2 cost", "vs queued with in-process worker"],
                      ratio_rows), ""]
    text += [_targets(r["targets"], {
        "queued_p99_excluding_hash_ms": "queued p99 excluding hashing < 5 ms (worst delay)",
        "embedded_p99_excluding_hash_ms": "the same with the worker in the app process",
        "sync_over_queued_p50_at_2s": "inline / queued p50 at 2 s > 30"}, unit={
        "queued_p99_excluding_hash_ms": "ms", "embedded_p99_excluding_hash_ms": "ms",
        "sync_over_queued_p50_at_2s": "×"})]
    return "\n".join(text)


def _targets(targets: dict[str, Any], names: dict[str, str], unit: dict[str, str]) -> str:
    rows = []
    for k, t in targets.items():
        value = (f"{_n(t['value'] * 100, 0)} %" if unit.get(k) == "%"
                 else f"{_n(t['value'], 2)} {unit.get(k, '')}".strip())
        rows.append([names.get(k, k), value, _met(t)])
    return md_table(["target", "measured", ""], rows)


def throughput(r: dict[str, Any]) -> str:
    """Benchmark 2 tables."""
    size = r["sizes"]
    callers = size.get("callers", 1)
    rows = [[f"end to end (sign-ups and delivery together), {callers} callers, emails/s",
             r["end_to_end"]],
            [f"sign-ups by {callers} callers, per s", r["signups_per_s"]]]
    if "end_to_end_one_caller" in r:
        rows += [["end to end, one caller, emails/s", r["end_to_end_one_caller"]],
                 ["sign-ups by one caller, per s", r["signups_per_s_one_caller"]]]
    rows += [[f"drain, queue pre-filled, {size['workers']} worker threads, emails/s",
              r["drain"]]]
    if "drain_more_workers" in r:
        rows.append([f"drain, {size.get('more_workers', 8)} worker threads, emails/s",
                     r["drain_more_workers"]])
    table = md_table(["measure", "median", "min", "max"],
                     [[name, _n(s["median"], 0), _n(s["min"], 0), _n(s["max"], 0)]
                      for name, s in rows])
    idle = r["idle_ms"]
    idle_table = md_table(["samples", "p50", "p95", "p99", "max"],
                          [[idle["n"], _n(idle["p50"]), _n(idle["p95"]), _n(idle["p99"]),
                            _n(idle["max"])]])
    return "\n".join([
        f"{size['users']:,} sign-ups per run, {size['runs']} run(s); `mailroom serve` with "
        f"{size['workers']} worker threads (the default).", "", table, "",
        "Idle: one sign-up at a time, 0.3–1 s apart; ms from the start of `register()` to the "
        "catcher's receipt:", "", idle_table, "",
        _targets(r["targets"], {"end_to_end_emails_per_s": "≥ 500 emails/s end to end",
                                "idle_p50_ms": "idle p50 < 100 ms",
                                "idle_p99_ms": "idle p99 < 300 ms"},
                 {"end_to_end_emails_per_s": "emails/s", "idle_p50_ms": "ms",
                  "idle_p99_ms": "ms"})])


def ingest(r: dict[str, Any]) -> str:
    """Benchmark 3 tables."""
    rates, ratios = r["rates"], r["ratios"]
    has_dev = "maildev" in rates
    rows = []
    for mode in rates["bare"]:
        b, m = rates["bare"][mode], rates["mailroom"][mode]
        d = rates["maildev"][mode] if has_dev else None
        row = [mode, f"{_n(b['median'], 0)} ({_n(b['min'], 0)}–{_n(b['max'], 0)})"]
        if d:
            row.append(f"{_n(d['median'], 0)} ({_n(d['min'], 0)}–{_n(d['max'], 0)})")
        row += [f"{_n(m['median'], 0)} ({_n(m['min'], 0)}–{_n(m['max'], 0)})",
                f"{_n(ratios[mode]['mailroom_vs_bare'] * 100, 0)} %"]
        if d:
            row.append(f"{_n(ratios[mode]['mailroom_vs_maildev'], 2)}×")
        rows.append(row)
    headers = ["mode", "bare aiosmtpd"] + (["MailDev 3"] if has_dev else []) + [
        "Mailroom", "Mailroom / bare"] + (["Mailroom / MailDev"] if has_dev else [])
    size = r["sizes"]
    checks = [x["check"] for x in r["runs"] if "check" in x]
    stored_ok = all(c["stored"] == c["accepted"] for c in checks)
    search_ok = all(c.get("found_by_search", c["accepted"]) == c["accepted"] for c in checks)
    return "\n".join([
        f"Messages per second accepted (250 after DATA), median of {size['runs']} run(s) "
        f"(min–max). {size['messages']:,} messages per persistent mode per run; the "
        f"connection-per-message mode sends up to {size['per_connection_messages']:,} "
        f"and stops after {size['per_connection_cap_s']:g} s.", "",
        md_table(headers, rows), "",
        f"After every run each server held every message it had accepted: "
        f"{'yes' if stored_ok else '**no**'}; Mailroom's full-text search found every one: "
        f"{'yes' if search_ok else '**no**'}.", "",
        _targets(r["targets"], {"mailroom_vs_bare_8_clients": "≥ 60 % of bare with 8 clients",
                                "mailroom_vs_maildev_every_mode": "≥ 2.5× MailDev in every "
                                                                  "mode (worst mode shown)"},
                 {"mailroom_vs_bare_8_clients": "%", "mailroom_vs_maildev_every_mode": "×"}),
        *(["", "Notes: " + "; ".join(r["notes"])] if r.get("notes") else [])])


def inbox(r: dict[str, Any]) -> str:
    """Benchmark 4 tables."""
    q, w = r["queries"], r["window"]
    names = [("newest page (list)", "newest_page_ms"), ("count of all messages", "count_ms"),
             ("inbox refresh = count + newest page", "refresh_ms"),
             ("a page in the middle (OFFSET)", "deep_page_ms"),
             ("search: first page", "search_page_ms"), ("search: count", "search_count_ms"),
             ("search refresh = count + first page", "search_refresh_ms"),
             ("open one message (summary, raw, parse)", "open_message_ms"),
             ("open the largest message", "open_largest_ms")]
    rows = [[n, _n(q[k]["p50"], 2), _n(q[k]["p95"], 2), _n(q[k]["max"], 2)]
            for n, k in names if k in q]
    rows.append(["refresh on a just-opened store (one call)", _n(q["cold_refresh_ms"], 2), "",
                 ""])
    rows.append(["search refresh on a just-opened store", _n(q["cold_search_ms"], 2), "", ""])
    wrows = [[n, _n(w[k]["p50"], 2), _n(w[k]["max"], 2)] for n, k in (
        ("window created → inbox has its first page, s", "window_to_first_page_s"),
        ("process start → inbox ready, s", "process_start_to_ready_s"),
        ("  of which imports and QApplication, s", "imports_s"),
        ("a page in the middle after scrolling, s", "deep_page_s"),
        ("resident memory when ready, MiB", "rss_ready_mib"),
        ("resident memory after scrolling, MiB", "rss_after_scroll_mib"),
        ("with Qt WebEngine's helper processes, RSS sum, MiB", "tree_rss_mib"),
        ("with Qt WebEngine's helper processes, PSS sum, MiB", "tree_pss_mib")) if k in w]
    size, fill, disk = r["sizes"], r["fill"], r["disk"]
    return "\n".join([
        f"{size['messages']:,} messages (average {r['average_message_bytes'] / 1024:.1f} KiB), "
        f"filled in {fill['fill_s']:.0f} s ({fill['fill_per_s']:.0f}/s, parsing on 2 "
        f"processes); store on disk {disk['total_mib']:,.0f} MiB. Store calls in ms, "
        f"{size['repeats']} repeats after one warm-up; the inbox's page is {q['page_size']} "
        f"rows. The search finds {q['search_hits']:,} messages "
        f"({q['search_hits_expected']:,} expected).", "",
        md_table(["operation", "p50", "p95", "max"], rows), "",
        f"The desktop window, offscreen, each of {len(r['window_runs'])} runs a fresh "
        f"process (median, max):", "",
        md_table(["measure", "median", "max"], wrows), "",
        _targets(r["targets"], {"page_ms": "newest page / refresh < 100 ms (p95)",
                                "search_ms": "search < 100 ms (p95)",
                                "window_ready_s": "window ready < 1 s",
                                "resident_mb": "resident memory < 300 MB (main process)"},
                 {"page_ms": "ms", "search_ms": "ms", "window_ready_s": "s",
                  "resident_mb": "MB"})])


SECTIONS = (("signup_latency", latency), ("throughput", throughput), ("ingest", ingest),
            ("inbox", inbox))


def main(argv: list[str] | None = None) -> int:
    """Print the Markdown for every result file found."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results_dir", type=Path, nargs="?", default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    results = {}
    for name, _ in SECTIONS:
        path = args.results_dir / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    print("Machine:\n")
    print(machine(results))
    for name, render in SECTIONS:
        if name in results:
            print(f"\n### {name}\n")
            print(render(results[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
