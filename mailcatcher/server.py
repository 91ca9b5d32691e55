"""The catching SMTP server: an aiosmtpd handler that stores every message, and its controller.

Following aiosmtpd's split, `CatchingHandler` decides what happens to each command
(accept any sender and recipient, store the DATA bytes exactly as received, inject
the chaos rules in force) and never deals with threads; `CatcherServer` decides how it
runs: an event loop in a thread of its own, a writer thread that group-commits to the
store, and a small pool that parses big messages off the event loop.

What the server promises:

* Bound to 127.0.0.1 unless told otherwise; advertises SIZE (the size limit),
  8BITMIME and SMTPUTF8; lines up to `line_length_limit` bytes (1 MiB by default,
  not SMTP's 1,000) are accepted.
* The stored bytes are exactly the bytes the client meant to send: the DATA bytes
  with SMTP transparency (dot-stuffing) undone, and nothing else changed. The rules
  (`CatchingSMTP.smtp_DATA` applies them itself, to collect the message in one
  buffer):

  - DATA ends only at CRLF "." CRLF. A bare LF never ends a line for that purpose,
    so `\\n.\\n`, `\\n.\\r\\n`, `\\r\\n.\\n` and their cousins are content, never
    an end (SMTP smuggling, CVE-2023-51764 and kin; aiosmtpd >= 1.4.5 reads the same
    way).
  - A line after a CRLF that begins with "." loses that dot (RFC 5321 4.5.2).
  - After a bare LF, a line that begins with ".." loses one dot; one that begins with
    a single "." followed by anything else (".x", ".\\r\\n", ".\\n") is kept as it is.
    Why: senders split on bare LF differently. smtplib, given LF-only bytes (the
    common `sendmail(from, to, msg.as_bytes())`), stuffs a dot after *every* LF, so a
    dot-led line after a bare LF always arrives as "..", and undoing exactly that
    gives back what the application passed in (Postfix, Mailpit and aiosmtpd before
    1.4.5 unstuff there too). aiosmtpd >= 1.4.5 reads lines only at CRLF and keeps
    that extra dot (aiosmtpd issue #561, a side effect of its smuggling fix), so a
    URL wrapped before ".1" would show as `127.0.0..1`. A sender that stuffs only
    after CRLF sends a single dot there, which a stuffing sender never produces, so
    that is kept. The one ambiguous case, a line beginning with ".." after a bare LF
    from a sender that does not stuff there, is read the common way (one dot
    removed) and flagged. The rule only ever removes a dot that follows a bare LF,
    inside a line that a CRLF ends, so it can neither end DATA nor create a CRLF.
  - Bare LF line endings are accepted and kept, never converted to CRLF, and the
    message is flagged in its notes ("bare LF line endings"); when a dot was removed
    after a bare LF the notes say that too (`NOTE_DOT_AFTER_BARE_LF`).
  - smtplib appends CRLF to a message that does not end with CRLF; that CRLF is on
    the wire as the last line's end and is stored (it cannot be told apart from a
    message that really ends that way).
* Over the size limit the reply is `552 5.3.4 Message size exceeds the limit of N
  bytes`, and the rejection is written to the fault log (rule_id None).
* The 250 reply is sent only after the message is committed to the store.
* Chaos rules are read from the store when a connection opens and again at every
  MAIL FROM, so a rule added or removed by another process applies from the next
  connection, and from the next message on a connection kept open (connection-pooling
  senders). Every injected fault is logged with its rule id before it takes effect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import random
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import (
    DATA_SIZE_DEFAULT,
    MISSING,
    SMTP,
    Envelope,
    Session,
    __ident__,
    _AuthMechAttr,
    login_always_fail,
    make_loop,
    syntax,
)

from mailcatcher.chaos import (
    ChaosDecision,
    ChaosRule,
    ConnectionRolls,
    FaultKind,
    Stage,
    decide,
)
from mailcatcher.store import (
    NOTE_DOT_AFTER_BARE_LF,
    BaseMessageStore,
    BatchWriter,
    make_fault_row,
    prepare_message,
)

__all__ = ["CatcherServer", "CatchingEnvelope", "CatchingHandler", "CatchingSMTP"]

log = logging.getLogger(__name__)

DEFAULT_SIZE_LIMIT = 50 * 1024 * 1024
DEFAULT_LINE_LENGTH_LIMIT = 1024 * 1024
# Messages above this size are parsed in a worker thread, not on the event loop.
INLINE_PARSE_LIMIT = 256 * 1024
SERVER_HOSTNAME = "mailroom.localhost"
IDENT = "Mailroom catcher"
# A connection silent this long is closed (aiosmtpd's default, RFC 5321 4.5.3.2.7).
IDLE_TIMEOUT = 300.0


def format_peer(peer: Any) -> str:
    """`host:port` (IPv6 hosts in brackets) from an asyncio peername."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer or "")


def _clean_text(value: str) -> str:
    """An SMTP argument as storable text (aiosmtpd keeps invalid UTF-8 as surrogates)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# --------------------------------------------------------------- per-message fast paths

# RFC 5322 atext: a plain dot-atom local part or domain, ASCII only.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*)>")
_PRINTABLE_ASCII = re.compile(r"[ -~]*")


def _plain_path(arg: str, local_part_limit: int) -> tuple[str | None, str | None] | None:
    """What aiosmtpd 1.4.6's ``SMTP._getaddr`` returns for ``<local@domain>`` or ``<>``.

    None when arg is anything else (quoted or obsolete local parts, source routes,
    domain literals, non-ASCII, comments, control characters): the caller then
    asks aiosmtpd. The rest after the path is returned as aiosmtpd returns it:
    after ``<>`` as it is, after an address without its leading blanks.
    """
    if arg.startswith("<>"):
        rest = arg[2:]
        return ("<>", rest) if _PRINTABLE_ASCII.fullmatch(rest) else None
    match = _PLAIN_PATH.match(arg)
    if match is None:
        return None
    rest = arg[match.end() :]
    if rest:
        if not _PRINTABLE_ASCII.fullmatch(rest):
            return None
        rest = rest.lstrip(" ")
        if rest.startswith("("):
            return None  # a comment: aiosmtpd's parser reads it
    address = match.group(1)
    if local_part_limit and len(address.rpartition("@")[0]) > local_part_limit:
        return None, None
    return address, rest


# The keyword arguments _init_like_aiosmtpd mirrors; any other goes to aiosmtpd's own.
_FAST_INIT_KWARGS = frozenset(
    {"data_size_limit", "enable_SMTPUTF8", "decode_data", "hostname", "ident", "timeout", "loop"}
)


class _MethodTables(NamedTuple):
    """Attribute names behind aiosmtpd's per-connection lookup tables, per class."""

    auth: tuple[tuple[str, str, bool], ...]  # (mechanism, attribute, on the SMTP object)
    hooks: tuple[tuple[str, str], ...]  # (command, handler attribute)
    ehlo_hook_ver: str | None
    commands: tuple[tuple[str, str], ...]  # (command, SMTP attribute)


_METHOD_TABLES: dict[tuple[type, type], _MethodTables] = {}


def _method_tables(smtp_class: type[SMTP], handler_class: type) -> _MethodTables:
    """The tables SMTP.__init__ builds with inspect.getmembers and dir, built once per class."""
    tables = _METHOD_TABLES.get((smtp_class, handler_class))
    if tables is None:
        tables = _METHOD_TABLES[(smtp_class, handler_class)] = _build_method_tables(
            smtp_class, handler_class
        )
    return tables


def _build_method_tables(smtp_class: type[SMTP], handler_class: type) -> _MethodTables:
    auth = tuple(
        (
            getattr(member, "__auth_mechanism_name__",
                    name.replace("auth_", "").replace("__", "-")),
            name,
            cls is smtp_class,
        )
        for cls in (smtp_class, handler_class)
        for name, member in inspect.getmembers(cls)
        if name.startswith("auth_")
    )
    hooks = tuple(
        (name.replace("handle_", ""), name) for name in dir(handler_class)
        if name.startswith("handle_")
    )
    ehlo_hook_ver: str | None = None
    ehlo = getattr(handler_class, "handle_EHLO", None)
    if ehlo is not None:
        count = len(inspect.signature(ehlo).parameters) - 1  # unbound: self counts here
        if count not in (4, 5):
            raise RuntimeError("Unsupported EHLO Hook")
        ehlo_hook_ver = "old" if count == 4 else "new"
    commands = tuple(
        (name.replace("smtp_", ""), name) for name in dir(smtp_class) if name.startswith("smtp_")
    )
    return _MethodTables(auth, hooks, ehlo_hook_ver, commands)


@dataclass
class _Connection:
    """What the handler knows about one open connection."""

    peer: str
    rules: list[ChaosRule] = field(default_factory=list)
    rolls: ConnectionRolls = field(default_factory=ConnectionRolls)


class CatchingHandler:
    """Accepts every message for every recipient, stores it, and misbehaves when told to.

    Besides aiosmtpd's hooks (MAIL, RCPT, DATA) it has two of Mailroom's own that
    `CatchingSMTP` calls: `handle_CONNECT` before the greeting and
    `handle_DISCONNECT` at the end; and `record_rejection` for the rejections
    aiosmtpd makes by itself (size, line length).
    """

    def __init__(
        self,
        store: BaseMessageStore,
        writer: BatchWriter,
        *,
        executor: concurrent.futures.Executor | None = None,
        rng: random.Random | None = None,
        inline_parse_limit: int = INLINE_PARSE_LIMIT,
    ) -> None:
        self.store = store
        self.writer = writer
        self.executor = executor
        self.rng = rng or random.Random()
        self.inline_parse_limit = inline_parse_limit
        self._connections: dict[Session, _Connection] = {}
        # Local addresses of our own start-up probe: no chaos, no faults for them.
        self.probes: set[tuple[str, int]] = set()

    # -- connection ------------------------------------------------------------------

    def _state(self, session: Session) -> _Connection:
        state = self._connections.get(session)
        if state is None:
            state = self._connections[session] = _Connection(format_peer(session.peer))
        return state

    async def handle_CONNECT(self, server: SMTP, session: Session) -> bool:
        """Before the greeting: read the rules in force; False if the connection is refused."""
        state = self._state(session)
        if self._is_probe(session):
            return True
        self._load_rules(state)
        if not state.rules:
            return True
        decision = decide(state.rules, "connect", self.rng, rolls=state.rolls)
        status = await self._carry_out(server, state, "connect", decision, None)
        if status is None:
            return True
        await server.push(status)
        if server.transport is not None:
            server.transport.close()
        return False

    def _is_probe(self, session: Session) -> bool:
        peer = session.peer
        return isinstance(peer, tuple) and (peer[0], peer[1]) in self.probes

    def _load_rules(self, state: _Connection) -> None:
        """Read the rules in force (one small query) and roll new per-connection rules."""
        try:
            state.rules = self.store.active_chaos_rules()
        except Exception:  # noqa: BLE001 - a broken rule table must not stop mail
            log.exception("could not read the chaos rules; none applied")
            state.rules = []
        if state.rules:
            state.rolls.add_new(state.rules, self.rng)

    def handle_DISCONNECT(self, session: Session) -> None:
        """The connection is over: forget it."""
        self._connections.pop(session, None)
        peer = session.peer
        if isinstance(peer, tuple):
            self.probes.discard((peer[0], peer[1]))

    # -- commands --------------------------------------------------------------------

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Accept any sender, unless a chaos rule says otherwise.

        The rules are read again here, at the start of every message, so that a rule
        added or removed while a client keeps its connection open (a pooled sender)
        applies from that client's next message.
        """
        state = self._state(session)
        if not self._is_probe(session):
            self._load_rules(state)
        if state.rules:
            decision = decide(state.rules, "mail", self.rng, rolls=state.rolls)
            status = await self._carry_out(
                server, state, "mail", decision, envelope, mail_from=address
            )
            if status is not None:
                return status
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept any recipient, unless a chaos rule (maybe matching it) says otherwise."""
        state = self._state(session)
        if state.rules:
            decision = decide(
                state.rules, "rcpt", self.rng, recipients=[address], rolls=state.rolls
            )
            status = await self._carry_out(
                server, state, "rcpt", decision, envelope, rcpt_to=[address]
            )
            if status is not None:
                return status
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message (then reply 250), unless a chaos rule rejects or drops it."""
        state = self._state(session)
        rcpt_tos = [_clean_text(r) for r in envelope.rcpt_tos]
        decision = ChaosDecision()
        if state.rules:
            decision = decide(
                state.rules, "data", self.rng, recipients=envelope.rcpt_tos, rolls=state.rolls
            )
            if decision.outcome is not None:
                status = await self._carry_out(server, state, "data", decision, envelope)
                assert status is not None
                return status
        raw = envelope.original_content
        assert isinstance(raw, bytes)
        mail_from = _clean_text(envelope.mail_from or "")
        if mail_from == "<>":
            mail_from = ""  # the null reverse-path of bounces
        notes: tuple[str, ...] = ()
        if isinstance(envelope, CatchingEnvelope) and envelope.unstuffed_after_bare_lf:
            notes = (NOTE_DOT_AFTER_BARE_LF,)
        prepare = functools.partial(
            prepare_message, raw, mail_from=mail_from, rcpt_tos=rcpt_tos, peer=state.peer,
            notes=notes,
        )
        if len(raw) > self.inline_parse_limit:
            prepared = await asyncio.get_running_loop().run_in_executor(self.executor, prepare)
        else:
            prepared = prepare()
        try:
            new_id = await self.writer.submit_message_async(prepared)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the sender should try again later
            log.exception("could not store a message from %s", state.peer)
            return "451 4.3.0 Could not store the message; try again later"
        if decision.fired:
            # Accept, but only after a delay: the message is already stored, the 250 waits.
            await self._record(state, "data", decision.fired, envelope)
            await asyncio.sleep(decision.delay_ms / 1000)
        return f"250 2.0.0 Ok: queued as {new_id}"

    # -- chaos -----------------------------------------------------------------------

    async def _carry_out(
        self,
        server: SMTP,
        state: _Connection,
        stage: Stage,
        decision: ChaosDecision,
        envelope: Envelope | None,
        *,
        mail_from: str | None = None,
        rcpt_to: Sequence[str] | None = None,
    ) -> str | None:
        """Log and apply what fired at this stage; the reply to send, or None to carry on."""
        if decision.quiet:
            return None
        await self._record(state, stage, decision.fired, envelope, mail_from, rcpt_to)
        if decision.delay_ms:
            await asyncio.sleep(decision.delay_ms / 1000)
        outcome = decision.outcome
        if outcome is None:
            return None
        if outcome.drop:
            if server.transport is not None:
                server.transport.close()
            return "421 4.4.2 Connection dropped"  # never sent: the connection is closed
        return outcome.reply()

    async def _record(
        self,
        state: _Connection,
        stage: Stage,
        rules: Sequence[ChaosRule],
        envelope: Envelope | None,
        mail_from: str | None = None,
        rcpt_to: Sequence[str] | None = None,
    ) -> None:
        if mail_from is None:
            mail_from = (envelope.mail_from or "") if envelope is not None else ""
        if rcpt_to is None:
            rcpt_to = list(envelope.rcpt_tos) if envelope is not None else []
        futures = []
        for rule in rules:
            kind: FaultKind = rule.action
            if kind == "reject":
                reply = rule.reply()
            elif kind == "drop":
                reply = "(connection dropped)"
            else:
                reply = f"(reply delayed {rule.delay_ms} ms)"
            row = make_fault_row(
                stage=stage, kind=kind, peer=state.peer, reply=reply, rule_id=rule.id,
                mail_from=_clean_text(mail_from), rcpt_to=[_clean_text(r) for r in rcpt_to],
                delay_ms=rule.delay_ms,
            )
            futures.append(self.writer.submit_fault_async(row))
        await self._settle(futures)

    async def record_rejection(
        self, session: Session, envelope: Envelope | None, stage: Stage, kind: FaultKind, reply: str
    ) -> None:
        """Log a rejection the SMTP layer made by itself (too big, line too long)."""
        state = self._state(session)
        row = make_fault_row(
            stage=stage, kind=kind, peer=state.peer, reply=reply,
            mail_from=_clean_text(envelope.mail_from or "") if envelope else "",
            rcpt_to=[_clean_text(r) for r in envelope.rcpt_tos] if envelope else [],
        )
        await self._settle([self.writer.submit_fault_async(row)])

    @staticmethod
    async def _settle(futures: list[asyncio.Future[int]]) -> None:
        for result in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("could not record a fault: %s", result)


class CatchingEnvelope(Envelope):
    """aiosmtpd's envelope plus what DATA had to undo beyond standard SMTP transparency."""

    def __init__(self) -> None:
        super().__init__()
        # Lines after a bare LF whose leading ".." lost one dot (dot-stuffing undone).
        self.unstuffed_after_bare_lf = 0


# DATA is read in blocks up to this size (see CatchingSMTP._read_data).
FAST_DATA_LIMIT = 1024 * 1024


class _DataLines:
    """The DATA of one message as aiosmtpd 1.4.6 reads it, line by line or block by block.

    Lines end at CRLF only (a bare LF never ends one, which is what stops SMTP
    smuggling); the end is a line of exactly "."; a leading dot is removed from every
    other line; an over-long line or too much data is read to the end and then
    refused (`state`). Inside a line, ".." after a bare LF loses one dot, undoing the
    stuffing smtplib does there (aiosmtpd issue #561; the module docstring says why
    this is sound); `unstuffed_after_bare_lf` counts those.
    """

    def __init__(self, size_limit: int | None, line_limit: int) -> None:
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.content = bytearray()
        self.received = 0
        self.state: Literal["ok", "too-long", "too-much"] = "ok"  # the first problem wins
        self.in_long_line = False  # the rest of a line that overran the reader's limit
        self.unstuffed_after_bare_lf = 0

    def overrun(self) -> None:
        """The reader met a line longer than its limit (what comes next is its start)."""
        if self.state == "ok":
            self.state = "too-long"
            self.content = bytearray()

    def feed_line(self, line: bytes) -> bool:
        """One line as read (or the start of an over-long one); True at the final dot."""
        if line == b".\r\n" and not self.in_long_line:
            return True
        self._take(line)
        return False

    def feed_block(self, block: bytes) -> bool:
        """Whole lines ending in ".\\r\\n", from a reader that stopped at the first such;
        True if the block's last line is the final dot."""
        final = block == b".\r\n" or block.endswith(b"\r\n.\r\n")
        lines = block[:-3] if final else block
        if (
            self.state == "ok"
            and (not self.size_limit or self.received + len(lines) <= self.size_limit)
            and lines.count(b"\n") == lines.count(b"\r\n")  # no bare LF
            and max(map(len, lines.split(b"\r\n"))) + 2 <= self.line_limit
        ):
            self.received += len(lines)
            self.content += (b"\r\n" + lines).replace(b"\r\n.", b"\r\n")[2:]
        else:
            for line in lines.split(b"\r\n")[:-1]:
                self._take(line + b"\r\n")
        return final

    def _take(self, line: bytes) -> None:
        self.received += len(line)
        if self.state == "ok" and self.size_limit and self.received > self.size_limit:
            self.state = "too-much"
            self.content = bytearray()
        if not line.endswith(b"\r\n"):
            self.in_long_line = True
            return
        self.in_long_line = False
        if self.state != "ok":
            return
        if len(line) > self.line_limit:
            self.state = "too-long"
            self.content = bytearray()
            return
        start = 1 if line[:1] == b"." else 0  # the dot-stuffing after a CRLF
        if b"\n.." in line:
            # Every LF before the line's final CRLF is a bare LF: undo the
            # dot-stuffing after it too (see the module docstring).
            body = line[start:]
            self.unstuffed_after_bare_lf += body.count(b"\n..")
            self.content += body.replace(b"\n..", b"\n.")
        elif start:
            self.content += memoryview(line)[1:]
        else:
            self.content += line


class CatchingSMTP(SMTP):
    """aiosmtpd's SMTP protocol with longer lines, a connect hook and named size rejections."""

    def __init__(
        self,
        handler: CatchingHandler,
        *,
        line_length_limit: int = DEFAULT_LINE_LENGTH_LIMIT,
        live: set[CatchingSMTP] | None = None,
        **kwargs: Any,
    ) -> None:
        # SMTP.__init__ sizes its StreamReader from this attribute.
        self.line_length_limit = line_length_limit
        self._catcher = handler
        self._live = live
        if _FAST_INIT_KWARGS.issuperset(kwargs):
            self._init_like_aiosmtpd(handler, **kwargs)
        else:
            super().__init__(handler, **kwargs)

    def _init_like_aiosmtpd(
        self,
        handler: CatchingHandler,
        *,
        data_size_limit: int | None = DATA_SIZE_DEFAULT,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
        hostname: str | None = None,
        ident: str | None = None,
        timeout: float = 300,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """What aiosmtpd 1.4.6's SMTP.__init__ does without TLS, AUTH, PROXY or call limits.

        The same attributes with the same values (a test compares them), but the
        command, hook and AUTH tables come from a per-class cache: aiosmtpd rebuilds
        them with ``inspect.getmembers`` and ``dir`` on every connection.
        """
        self.__ident__ = ident or __ident__
        self.loop = loop if loop else make_loop()
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=self.loop,
        )
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        self.command_size_limits.clear()
        self.hostname = hostname if hostname else socket.getfqdn()
        self.tls_context = None
        self.require_starttls = None
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._auth_callback = login_always_fail
        self._authenticator = None
        self._auth_required = False
        tables = _method_tables(type(self), type(handler))
        self._auth_methods = {
            mech: _AuthMechAttr(getattr(self if builtin else handler, name), builtin)
            for mech, name, builtin in tables.auth
        }
        self._handle_hooks = {hook: getattr(handler, name) for hook, name in tables.hooks}
        self._ehlo_hook_ver = tables.ehlo_hook_ver
        self._smtp_methods = {command: getattr(self, name) for command, name in tables.commands}
        self._enforce_call_limit = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parser, with a fast path for plain ``<local@domain>`` and ``<>``.

        aiosmtpd's own defines a class and runs the email package's header parser
        on every MAIL FROM and RCPT TO (about a quarter of the catcher's CPU). Paths
        the fast path does not know (quoted local parts, source routes, non-ASCII,
        comments) go to aiosmtpd's; for the rest it returns exactly what that would
        (a test compares them).
        """
        plain = _plain_path(arg, self.local_part_limit)
        if plain is not None:
            return plain
        result: tuple[str | None, str | None] = super()._getaddr(arg)
        return result

    def _create_envelope(self) -> CatchingEnvelope:
        return CatchingEnvelope()

    _deadline = 0.0

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Push the idle deadline back (aiosmtpd calls this before every command).

        aiosmtpd cancels its timer and schedules a new one each time, which filled the
        event loop's timer heap with cancelled timers; here one timer re-arms itself
        for the deadline when it fires early.
        """
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > self._deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)

    def _check_timeout(self) -> None:
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)
        else:
            self._timeout_cb()  # type: ignore[no-untyped-call]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._live is not None:
            self._live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._live is not None:
            self._live.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        assert self.session is not None
        session = self.session
        try:
            if await self._catcher.handle_CONNECT(self, session):
                await super()._handle_client()
        except ConnectionResetError:
            pass  # a dropped connection (chaos) or a client that vanished
        finally:
            self._catcher.handle_DISCONNECT(session)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        """DATA read as aiosmtpd 1.4.6 reads it (see _DataLines), with three differences.

        Memory: aiosmtpd keeps one bytearray per line (about 4x the message size at
        peak for base64 attachments); this keeps one buffer and then one copy. Speed:
        small messages are read in a few blocks rather than a line at a time. Dots:
        inside a line, ".." after a bare LF loses one dot, undoing the stuffing smtplib
        does there; the count goes to the envelope.
        """
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = _DataLines(self.data_size_limit, self.line_length_limit)
        try:
            await self._read_data(data)
        except asyncio.CancelledError:
            self._writer.close()
            raise
        if data.state != "ok":
            if data.state == "too-long":
                await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            else:
                await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        content, unstuffed_after_bare_lf = data.content, data.unstuffed_after_bare_lf
        del data  # the copy below must be the only one left once content goes
        original = bytes(content)
        del content
        self.envelope.content = original
        self.envelope.original_content = original
        if isinstance(self.envelope, CatchingEnvelope):
            self.envelope.unstuffed_after_bare_lf = unstuffed_after_bare_lf
        del original
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self, data: _DataLines) -> None:
        """Read the data up to its final dot into `data`.

        Most messages arrive as a few blocks that each end in ".\\r\\n" (the final
        dot's line, or a line ending in a full stop): those are read whole and, when
        plain, unstuffed at C speed. A block over FAST_DATA_LIMIT bytes, and all that
        follows it, is read line by line, exactly as aiosmtpd 1.4.6 reads DATA.
        """
        reader = self._reader
        line_limit: int = reader._limit  # type: ignore[attr-defined]
        reader._limit = max(line_limit, FAST_DATA_LIMIT)  # type: ignore[attr-defined]
        try:
            while self.transport is not None:
                try:
                    block = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError:
                    break
                if data.feed_block(block):
                    return
        finally:
            reader._limit = line_limit  # type: ignore[attr-defined]
        while self.transport is not None:
            try:
                line = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as error:
                data.overrun()
                line = await reader.read(error.consumed)
            if data.feed_line(line):
                return

    async def push(self, status: str | bytes) -> None:
        """Send a reply; aiosmtpd's own size and line-length rejections get named and logged."""
        text = status if isinstance(status, str) else ""
        rejection = self._own_rejection(text)
        if rejection is not None and self.session is not None:
            stage, kind, status = rejection
            await self._catcher.record_rejection(self.session, self.envelope, stage, kind, status)
        if self.transport is None or self.transport.is_closing():
            return
        if isinstance(status, str):
            await super().push(status)
        else:
            await super().push(status)

    def _own_rejection(self, text: str) -> tuple[Stage, FaultKind, str] | None:
        if text.startswith("552 Error: message size exceeds"):
            return "mail", "too-big", self._too_big()
        if text.startswith("552 Error: Too much mail data"):
            return "data", "too-big", self._too_big()
        if text.startswith("500 Line too long"):
            return (
                "data",
                "line-too-long",
                f"500 5.5.2 Line too long: at most {self.line_length_limit} bytes per line",
            )
        return None

    def _too_big(self) -> str:
        return f"552 5.3.4 Message size exceeds the limit of {self.data_size_limit} bytes"


class _Controller(Controller):
    """aiosmtpd's threaded controller, making CatchingSMTP and probing without chaos."""

    def __init__(
        self, handler: CatchingHandler, *, line_length_limit: int, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self.catching_handler = handler
        self.line_length_limit = line_length_limit
        self.live: set[CatchingSMTP] = set()

    def factory(self) -> CatchingSMTP:
        return CatchingSMTP(
            self.catching_handler,
            line_length_limit=self.line_length_limit,
            live=self.live,
            **self.SMTP_kwargs,
        )

    def _trigger_server(self) -> None:
        # aiosmtpd connects once at start-up to make sure the factory works; tell the
        # handler which local address that probe uses so that no chaos rule hits it.
        # A wildcard listener is probed over loopback, from a known local address.
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(
            self.hostname, self.hostname
        )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.bind((host, 0))
            local = sock.getsockname()
            self.catching_handler.probes.add((local[0], local[1]))
            sock.connect((host, self.port))
            sock.recv(1024)

    async def close_connections(self) -> None:
        """Close every open client connection and let their tasks finish."""
        if self.server is not None:
            self.server.close()
        for proto in list(self.live):
            if proto.transport is not None:
                proto.transport.close()
        for _ in range(50):
            if not self.live:
                break
            await asyncio.sleep(0.01)


def _check_bindable(host: str, port: int) -> None:
    """Raise OSError at once if host:port cannot be bound (aiosmtpd would wait seconds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


class CatcherServer:
    """The catcher, running: an SMTP listener on host:port feeding a MessageStore.

    Use start()/stop() or a with-block. `address` is the (host, port) it listens on.
    """

    def __init__(
        self,
        store: BaseMessageStore,
        *,
        host: str = "127.0.0.1",
        port: int = 1025,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        line_length_limit: int = DEFAULT_LINE_LENGTH_LIMIT,
        server_hostname: str = SERVER_HOSTNAME,
        rng: random.Random | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        if not host:
            raise ValueError("host must be given (aiosmtpd would otherwise pick ::1)")
        if port <= 0:
            raise ValueError("port must be a fixed port number (aiosmtpd cannot use port 0)")
        self.store = store
        self.host, self.port = host, port
        self.size_limit = size_limit
        self.line_length_limit = line_length_limit
        self.server_hostname = server_hostname
        self.rng = rng
        self.idle_timeout = idle_timeout
        self._controller: _Controller | None = None
        self._writer: BatchWriter | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on."""
        return self.host, self.port

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._controller is not None

    def start(self) -> None:
        """Bind and start serving in a background thread; returns once it answers."""
        if self._controller is not None:
            raise RuntimeError("the catcher is already running")
        _check_bindable(self.host, self.port)
        self._writer = BatchWriter(self.store)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="mailcatcher-parse"
        )
        handler = CatchingHandler(self.store, self._writer, executor=self._executor, rng=self.rng)
        controller = _Controller(
            handler,
            hostname=self.host,
            port=self.port,
            line_length_limit=self.line_length_limit,
            server_hostname=self.server_hostname,
            ident=IDENT,
            data_size_limit=self.size_limit,
            decode_data=False,
            enable_SMTPUTF8=True,
            timeout=self.idle_timeout,
        )
        try:
            controller.start()
        except BaseException:
            # aiosmtpd leaves its loop open when binding fails (port taken, say).
            thread = controller._thread
            if thread is not None:
                thread.join(timeout=5)
            if not controller.loop.is_running() and not controller.loop.is_closed():
                controller.loop.close()
            self._shutdown_workers()
            raise
        self._controller = controller

    def stop(self) -> None:
        """Stop listening, close open connections, finish writing; safe to call twice."""
        controller, self._controller = self._controller, None
        if controller is not None:
            try:
                asyncio.run_coroutine_threadsafe(
                    controller.close_connections(), controller.loop
                ).result(timeout=5)
            except Exception:  # noqa: BLE001 - stopping must go on
                log.exception("could not close the catcher's connections cleanly")
            controller.stop()
        self._shutdown_workers()

    def _shutdown_workers(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> CatcherServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
