"""Helpers for the catcher's tests: a raw SMTP client (exact bytes on the wire) and waiting."""

from __future__ import annotations

import socket
from typing import TypeVar

T = TypeVar("T")





class RawSMTP:
    """An SMTP client that sends exactly the bytes it is given (no dot-stuffing, no EOL fixes)."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> tuple[int, str]:
        """Read one (possibly multi-line) reply."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            lines.append(line[4:].rstrip(b"\r\n").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def command(self, line: str | bytes) -> tuple[int, str]:
        """Send one command line (CRLF added) and read the reply."""
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")
        return self.reply()

    def send(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def close(self) -> None:
        """Close the connection."""
        self.file.close()
        self.sock.close()

    def __enter__(self) -> RawSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
