"""Plots of the benchmark results (PNG, with matplotlib from the ``bench`` extra).

``make_all(out_dir, results)`` draws what it has results for and returns the files it
wrote: ``bench-latency.png`` (sign-up latency by delivery mode and SMTP delay),
``bench-throughput.png`` (queue depth and captured emails over time) and
``bench-ingest.png`` (messages per second by server and mode). Importing this module
raises ImportError when matplotlib is missing; run_all then prints a note instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERVER_LABELS = {"bare": "bare aiosmtpd (ceiling)", "maildev": "MailDev 3", "mailroom": "Mailroom"}
COLORS = {"bare": "#9e9e9e", "maildev": "#e08a3c", "mailroom": "#2f6fb3",
          "queue": "#2f6fb3", "queue-embedded": "#6fa8dc", "sync": "#c0392b"}
CASE_LABELS = {"sync": "inline (sync)", "queue": "queued",
               "queue-embedded": "queued,\nworker in-process"}
ORDER = {"sync": 0, "queue": 1, "queue-embedded": 2}


def plot_latency(result: dict[str, Any], path: Path) -> Path:
    """Box plots of register() latency per (SMTP delay, mode), log scale."""
    samples: dict[str, list[float]] = result["samples"]
    keys = sorted(samples, key=lambda k: (int(k.split("@")[1]), ORDER.get(k.split("@")[0], 9)))
    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=110)
    data = [samples[k] for k in keys]
    box = ax.boxplot(data, whis=(1, 99), showfliers=False, patch_artist=True)
    for patch, key in zip(box["boxes"], keys, strict=True):
        patch.set_facecolor(COLORS[key.split("@")[0]])
        patch.set_alpha(0.75)
    labels = []
    for k in keys:
        case, delay = k.split("@")
        labels.append(f"{CASE_LABELS.get(case, case)}\nSMTP {int(delay) / 1000:g} s")
    ax.set_xticks(range(1, len(keys) + 1), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("register() time, ms (log)")
    ax.set_title("Sign-up latency: queued vs inline delivery (box: p25-p75, whiskers p1-p99)")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_throughput(result: dict[str, Any], path: Path) -> Path:
    """Queue depth, emails not yet sent and emails captured over time (first run)."""
    runs = result["runs"]["end_to_end"]
    timeline = runs[0]["timeline"] if runs else []
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    t = [s["t_s"] for s in timeline]
    ax.plot(t, [s["outbox_not_sent"] for s in timeline], label="outbox not yet sent",
            color="#c0392b")
    ax.plot(t, [s["queue_depth"] for s in timeline], label="Huey queue depth", color="#e08a3c",
            linestyle="--")
    ax.plot(t, [s["captured"] for s in timeline], label="captured by the catcher",
            color="#2f6fb3")
    if runs:
        ax.axvline(runs[0]["signup_s"], color="#777", linewidth=0.8, linestyle=":")
        ax.text(runs[0]["signup_s"], ax.get_ylim()[1] * 0.95, " last sign-up", color="#555",
                fontsize=8, va="top")
    ax.set_xlabel("seconds since the first sign-up")
    ax.set_ylabel("emails")
    users = result["sizes"]["users"]
    callers = runs[0].get("callers", 1) if runs else 1
    who = "one caller" if callers == 1 else f"{callers} callers"
    ax.set_title(f"{users:,} sign-ups as fast as {who} can; mailroom serve delivering")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_ingest(result: dict[str, Any], path: Path) -> Path:
    """Grouped bars: median msg/s per mode and server, with min-max error bars."""
    rates: dict[str, dict[str, dict[str, float]]] = result["rates"]
    servers = [s for s in ("bare", "maildev", "mailroom") if s in rates]
    modes = list(next(iter(rates.values())).keys())
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        med = [rates[server][m]["median"] or 0 for m in modes]
        lo = [max(0.0, (rates[server][m]["median"] or 0) - (rates[server][m]["min"] or 0))
              for m in modes]
        hi = [max(0.0, (rates[server][m]["max"] or 0) - (rates[server][m]["median"] or 0))
              for m in modes]
        xs = [j + (i - (len(servers) - 1) / 2) * width for j in range(len(modes))]
        ax.bar(xs, med, width, yerr=[lo, hi], label=SERVER_LABELS[server],
               color=COLORS[server], capsize=3)
    ax.set_xticks(range(len(modes)), modes)
    ax.set_ylabel("messages accepted per second")
    ax.set_title("Catcher ingest, small messages (median of runs, bars: min-max)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def make_all(out_dir: Path, results: dict[str, Any]) -> list[Path]:
    """Draw every plot there are results for into out_dir; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if "signup_latency" in results:
        written.append(plot_latency(results["signup_latency"], out_dir / "bench-latency.png"))
    if "throughput" in results:
        written.append(plot_throughput(results["throughput"], out_dir / "bench-throughput.png"))
    if "ingest" in results:
        written.append(plot_ingest(results["ingest"], out_dir / "bench-ingest.png"))
    return written


def main(argv: list[str] | None = None) -> int:
    """Redraw the plots from the JSON files in a results folder: python -m bench.plots DIR."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--to", type=Path, default=None, help="folder for the PNGs")
    args = parser.parse_args(argv)
    results = {}
    for name in ("signup_latency", "throughput", "ingest"):
        path = args.results_dir / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    for written in make_all(args.to or args.results_dir, results):
        print(f"plot {written}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
