"""SMTP load clients: one connection, N concurrent persistent connections, a connection per
message.

The client is a lean asyncio SMTP speaker (EHLO, MAIL, RCPT, DATA, QUIT; no pipelining, each
reply awaited before the next command, exactly like smtplib) so that the client is cheaper
than the servers it measures. Messages are encoded and dot-stuffed before the clock starts.
Every reply code is checked: a message counts as sent only after the server's 250 to DATA.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

MODES = ("one-connection", "8-clients", "connection-per-message")


class SmtpReplyError(Exception):
    """The server answered with an unexpected code."""

    def __init__(self, command: str, code: int, text: str) -> None:
        super().__init__(f"{command}: {code} {text}")
        self.code = code


def prepare(raw: bytes) -> bytes:
    """DATA payload for raw message bytes: CRLF line ends, dot-stuffed, with the final dot."""
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    if raw.startswith(b"."):
        raw = b"." + raw
    return raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"


@dataclass(frozen=True)
class Envelope:
    """One message ready to send: sender, recipients and the prepared DATA payload."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    payload: bytes


@dataclass
class LoadResult:
    """What one load run achieved."""

    mode: str
    sent: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    capped: bool = False
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Messages per second accepted by the server."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class SmtpConnection:
    """One SMTP session over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, helo: str = "bench.localhost") -> SmtpConnection:
        """Connect, read the greeting and say EHLO."""
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        conn = cls(reader, writer)
        try:
            await conn._expect("greeting", 220)
            await conn.command(f"EHLO {helo}", 250)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _reply(self) -> tuple[int, str]:
        lines: list[bytes] = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        code = int(lines[-1][:3])
        return code, b"".join(lines).decode("utf-8", "replace").strip()

    async def _expect(self, command: str, want: int) -> None:
        code, text = await self._reply()
        if code != want:
            raise SmtpReplyError(command, code, text)

    async def command(self, line: str, want: int) -> None:
        """Send one command line and require the reply code want."""
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self._expect(line.split(" ", 1)[0], want)

    async def send(self, env: Envelope) -> None:
        """One complete mail transaction; returns after the server's 250 to the data."""
        await self.command(f"MAIL FROM:<{env.mail_from}>", 250)
        for rcpt in env.rcpt_tos:
            await self.command(f"RCPT TO:<{rcpt}>", 250)
        await self.command("DATA", 354)
        self.writer.write(env.payload)
        await self._expect("DATA end", 250)

    async def quit(self) -> None:
        """Say QUIT (ignoring a server that hangs up first) and close."""
        try:
            self.writer.write(b"QUIT\r\n")
            await self._reply()
        except (ConnectionError, OSError):
            pass
        await self.close()

    async def close(self) -> None:
        """Close the socket."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def _persistent_client(host: str, port: int, envelopes: Sequence[Envelope],
                             result: LoadResult, deadline: float) -> None:
    conn = await SmtpConnection.open(host, port)
    try:
        for env in envelopes:
            if time.perf_counter() > deadline:
                result.capped = True
                break
            try:
                await conn.send(env)
                result.sent += 1
            except SmtpReplyError as exc:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(str(exc))
                await conn.command("RSET", 250)
    finally:
        await conn.quit()


async def _connection_per_message(host: str, port: int, envelopes: Sequence[Envelope],
                                  result: LoadResult, deadline: float) -> None:
    for env in envelopes:
        if time.perf_counter() > deadline:
            result.capped = True
            break
        try:
            conn = await SmtpConnection.open(host, port)
        except (OSError, SmtpReplyError) as exc:
            result.errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(str(exc))
            continue
        try:
            await conn.send(env)
            result.sent += 1
        except SmtpReplyError as exc:
            result.errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(str(exc))
        finally:
            await conn.quit()


async def run_load_async(host: str, port: int, envelopes: Sequence[Envelope], mode: str,
                         clients: int = 8, max_seconds: float = 600.0) -> LoadResult:
    """Send envelopes to host:port in the given mode; stop early (capped) after max_seconds."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    result = LoadResult(mode)
    start = time.perf_counter()
    deadline = start + max_seconds
    if mode == "one-connection":
        await _persistent_client(host, port, envelopes, result, deadline)
    elif mode == "8-clients":
        shares = [envelopes[i::clients] for i in range(clients)]
        await asyncio.gather(
            *(_persistent_client(host, port, share, result, deadline) for share in shares)
        )
    else:
        await _connection_per_message(host, port, envelopes, result, deadline)
    result.elapsed_s = time.perf_counter() - start
    return result


def run_load(host: str, port: int, envelopes: Sequence[Envelope], mode: str,
             clients: int = 8, max_seconds: float = 600.0) -> LoadResult:
    """Blocking wrapper of run_load_async, with its own event loop."""
    return asyncio.run(run_load_async(host, port, envelopes, mode, clients, max_seconds))
