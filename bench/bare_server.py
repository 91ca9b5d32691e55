"""The ceiling for this stack: a bare aiosmtpd server that appends DATA bytes to a list.

Run as its own process (``python -m bench.bare_server --port N``) so that it gets a core of
its own, exactly like the Mailroom catcher and MailDev in the ingest benchmark. It uses
the same aiosmtpd Controller settings as a plain catcher would (loopback, bytes kept,
no decoding) and does nothing else: no parsing, no storage. It prints "ready" when it
listens and the number of messages it holds when it is stopped (SIGTERM or stdin EOF).
"""

from __future__ import annotations

import argparse
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.common import run_until_signalled


class ListHandler:
    """Keeps every message's bytes in memory."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Append the DATA bytes and accept."""
        content = envelope.content
        assert isinstance(content, bytes)
        self.messages.append(content)
        return "250 OK"


def make_controller(host: str, port: int) -> tuple[Controller, ListHandler]:
    """A stopped controller serving a fresh ListHandler on host:port."""
    handler = ListHandler()
    controller = Controller(handler, hostname=host, port=port, data_size_limit=50 * 1024 * 1024)
    return controller, handler


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT or end of standard input."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    controller, handler = make_controller(args.host, args.port)
    controller.start()
    run_until_signalled()
    controller.stop()
    print(f"messages {len(handler.messages)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
