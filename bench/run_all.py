"""Run every Mailroom benchmark: ``python -m bench.run_all [--quick] [--only NAME ...]``.

``make bench`` calls this. Each benchmark prints its table and writes ``<name>.json`` into
the output folder (default bench/results/); plots go next to them when matplotlib is
installed (the ``bench`` extra). ``--quick`` runs everything at a tiny size (under a
minute), which is what the test suite does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_RESULTS_DIR, BenchConfig, machine_info

BENCHMARKS = ("signup_latency", "throughput", "ingest", "inbox")


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The options every benchmark entry point shares."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds, not minutes)")
    parser.add_argument("--runs", type=int, default=None,
                        help="repetitions for medians and spread (default: 2, the inbox "
                             "window 3; --quick: 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR,
                        help="folder for the JSON results and plots")
    parser.add_argument("--no-maildev", action="store_true",
                        help="skip the MailDev comparison even if npm is present")
    return parser


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """BenchConfig from parsed options."""
    if args.runs is not None and args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    return BenchConfig(quick=args.quick, runs=args.runs, out_dir=args.out,
                       no_maildev=args.no_maildev)


def parse_config(argv: list[str] | None, description: str | None = None) -> BenchConfig:
    """Parse the shared options into a BenchConfig."""
    return config_from_args(build_parser(description).parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks in order; exit non-zero if any of them failed to run."""
    parser = build_parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS),
                        help="run only these benchmarks")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    info = machine_info()
    print(f"Mailroom benchmarks{' (quick)' if config.quick else ''} on {info['cpu']}, "
          f"{info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}, "
          f"SQLite {info['sqlite']}", flush=True)
    failed: list[str] = []
    results: dict[str, Any] = {}
    for name in args.only:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            results[name] = module.run(config)
        except Exception:  # noqa: BLE001 - report and go on with the next benchmark
            traceback.print_exc()
            failed.append(name)
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)
    try:
        from bench import plots

        for path in plots.make_all(config.out_dir, results):
            print(f"plot {path}", flush=True)
    except ImportError as exc:
        print(f"note: no plots ({exc}); install the bench extra for them", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
