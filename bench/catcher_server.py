"""The Mailroom catcher as a stand-alone process for the ingest benchmark.

``python -m bench.catcher_server --data-dir D --port N`` serves mailcatcher's CatcherServer
over a MessageStore in D (exactly the parts ``mailroom serve`` runs for SMTP, without the
engine, worker or HTTP port), prints "ready" when it listens, and stops cleanly on SIGTERM.
A process of its own gives it a core of its own, like the bare ceiling server and MailDev.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.common import run_until_signalled
from mailcatcher.server import CatcherServer
from mailcatcher.store import MessageStore


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    store = MessageStore(args.data_dir / "mail.db", synchronous=args.synchronous)
    server = CatcherServer(store, host=args.host, port=args.port)
    server.start()
    run_until_signalled()
    server.stop()
    print(f"messages {store.count_messages()}", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
