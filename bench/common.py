"""Shared pieces of the benchmarks: statistics, tables, JSON output, ports and waiting.

Nothing here measures anything by itself; the benchmark modules use these helpers so that
every result is summarised, printed and written the same way.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS_DIR = ROOT / "bench" / "results"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class BenchConfig:
    """How big a benchmark run is and where its output goes."""

    quick: bool = False
    # Repetitions of each measurement; None lets each benchmark pick what fits the budget.
    runs: int | None = None
    out_dir: Path = DEFAULT_RESULTS_DIR
    # Skip the comparison with MailDev even if npm is present.
    no_maildev: bool = False


# --------------------------------------------------------------------------- statistics


def percentile(samples: Sequence[float], pct: float) -> float:
    """The pct-th percentile (0-100) of samples, by linear interpolation between ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    frac = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * frac)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99, mean, min, max and count of a list of samples."""
    if not samples:
        return {"n": 0, "p50": math.nan, "p95": math.nan, "p99": math.nan,
                "mean": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "mean": statistics.fmean(samples),
        "min": float(min(samples)),
        "max": float(max(samples)),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of one figure over several runs, plus the relative spread."""
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "spread_pct": math.nan,
                "runs": 0}
    med = statistics.median(values)
    lo, hi = float(min(values)), float(max(values))
    return {
        "median": float(med),
        "min": lo,
        "max": hi,
        "spread_pct": (hi - lo) / med * 100.0 if med else math.nan,
        "runs": len(values),
    }


def ratio(a: float, b: float) -> float:
    """a / b, or NaN when b is zero or either is missing."""
    if not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


# --------------------------------------------------------------------------- output


def fmt(value: Any, digits: int = 1) -> str:
    """A number formatted for a table (thousands separators, fixed decimals); text as is."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def format_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]],
                 digits: int = 1) -> str:
    """A plain-text table with a title line, right-aligned numbers and a rule under the header."""
    text_rows = [[fmt(cell, digits) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in text_rows:
        cells = []
        for i, cell in enumerate(row):
            cells.append(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]],
                digits: int = 1) -> None:
    """Print format_table(...) followed by a blank line."""
    print(format_table(title, headers, rows, digits), flush=True)
    print(flush=True)


def _clean(value: Any) -> Any:
    """NaN and infinity become None so that the JSON is strict."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(out_dir: Path, name: str, result: dict[str, Any]) -> Path:
    """Write result as out_dir/<name>.json (with machine facts added) and return the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), **result}
    path.write_text(json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")
    return path


def machine_info() -> dict[str, Any]:
    """The facts about this machine that a reader needs to compare numbers."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": _sqlite_version(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "commit": _commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _commit() -> str:
    """The commit measured: BENCH_COMMIT if set (an exported tree has no .git), else git's."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                            "core", "mailcatcher", "desktop", "bench"],
                           capture_output=True, text=True, timeout=10, check=False).stdout
    return out.stdout.strip() + ("+uncommitted changes" if dirty.strip() else "")


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


# --------------------------------------------------------------------------- ports and waiting


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on host right now (aiosmtpd cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01,
               what: str = "condition") -> float:
    """Poll predicate until true; return the seconds waited; TimeoutError past timeout."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        if predicate():
            return time.perf_counter() - start
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 20.0,
                  proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait until host:port accepts connections; fail early if proc has exited."""

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited with code {proc.returncode} before "
                               f"listening on {host}:{port}")
        return port_open(host, port)

    wait_until(ready, timeout, interval=0.05, what=f"{host}:{port} to listen")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate a child process we started, then kill it if it does not stop in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def python_module_cmd(module: str, *args: str) -> list[str]:
    """The command that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env() -> dict[str, str]:
    """Environment for benchmark child processes: the repo importable, Qt offscreen."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def run_until_signalled() -> None:
    """Say "ready" (the benchmark waits for that line), then block until SIGTERM or SIGINT.

    The sink servers run as processes of their own; this is their whole life after start.
    """
    import signal
    import threading

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("ready", flush=True)
    stop.wait()
