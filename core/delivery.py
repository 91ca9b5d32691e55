"""Building outbound messages and talking SMTP.

`build_message` turns an outbox row's data into bytes with EmailMessage (never
string-formatted headers); anything that would inject a header is refused with
`MessageBuildError`, which the worker treats as a permanent failure.

`SmtpSender` keeps a small pool of open SMTP connections shared by the worker
threads (one connection per concurrent sender), reusing them across emails and
reconnecting when the server has closed one. `classify` maps a reply to the
outbox's next state: 2xx sent, 4xx retry, 5xx failed.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import secrets
import smtplib
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy, quoprimime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

Outcome = Literal["sent", "retry", "failed"]

# A pooled connection idle longer than this is checked with NOOP before use.
IDLE_CHECK_SECONDS = 20.0


class MessageBuildError(Exception):
    """The message cannot be built safely (for example a header would be injected)."""


@dataclass(frozen=True)
class OutgoingEmail:
    """Everything needed to render one outbound email."""

    outbox_id: int
    kind: str
    sender: str
    to_local: str
    to_domain: str
    to_name: str
    subject: str
    message_id: str
    link: str | None = None
    ttl_hours: float = 48.0
    display_address: str = ""


@dataclass(frozen=True)
class RenderedEmail:
    """A built message and its envelope."""

    mail_from: str
    rcpt_to: str
    data: bytes
    smtputf8: bool


@dataclass(frozen=True)
class SendResult:
    """The outcome of one SMTP conversation."""

    outcome: Outcome
    code: int | None
    reply: str
    error: str | None = None


def _refuse_controls(field: str, value: str) -> None:
    for ch in value:
        if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029":
            raise MessageBuildError(
                f"{field} contains control character U+{ord(ch):04X}; "
                "refusing to build a message whose header could be injected"
            )


def _body_text(mail: OutgoingEmail) -> tuple[str, str]:
    hello = f"Hello {mail.to_name}," if mail.to_name else "Hello,"
    if mail.kind == "activation":
        text = (
            f"{hello}\n\n"
            "Please confirm your email address to activate your Mailroom account:\n\n"
            f"{mail.link}\n\n"
            f"The link works once and expires {mail.ttl_hours:g} hours after this email was sent.\n"
            "If you did not sign up, you can ignore this email.\n"
        )
        link = html.escape(mail.link or "", quote=True)
        body_html = (
            f"<p>{html.escape(hello)}</p>"
            "<p>Please confirm your email address to activate your Mailroom account:</p>"
            f'<p><a href="{link}">Activate my account</a></p>'
            f"<p>Or copy this link: {link}</p>"
            f"<p>The link works once and expires {mail.ttl_hours:g} hours after this email "
            "was sent. If you did not sign up, you can ignore this email.</p>"
        )
    else:
        address = mail.display_address or f"{mail.to_local}@{mail.to_domain}"
        text = (
            f"{hello}\n\n"
            f"Someone just tried to sign up for Mailroom with your address ({address}).\n"
            "You already have an account, so nothing was changed.\n\n"
            "If it was you, you can sign in as usual (or ask for a new activation email if\n"
            "your account is not active yet). If it was not you, you can ignore this email.\n"
        )
        body_html = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p)
    return text, body_html


class _CachedHeaderRegistry(HeaderRegistry):
    """HeaderRegistry builds a new class on every lookup; build each one once."""

    @functools.lru_cache(maxsize=64)  # noqa: B019  (one registry per policy, kept for good)
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


_SMTP = policy.SMTP.clone(header_factory=_CachedHeaderRegistry())
_SMTPUTF8 = policy.SMTPUTF8.clone(header_factory=_CachedHeaderRegistry())


def _policy(utf8: bool) -> EmailPolicy[Any]:
    return _SMTPUTF8 if utf8 else _SMTP


# One MIME boundary per process: it only has to be absent from our own bodies, which
# are 7bit/quoted-printable text where it cannot occur at the start of a line.
_BOUNDARY = f"=_mailroom_{secrets.token_hex(12)}"


def _header_block(utf8: bool, headers: list[tuple[str, Any]]) -> bytes:
    """Header lines rendered (quoted, encoded, folded) by EmailMessage, without the blank line."""
    pol = _policy(utf8)
    msg = EmailMessage(policy=pol)
    for name, value in headers:
        msg[name] = value
    return b"".join(pol.fold_binary(name, value) for name, value in msg.raw_items())


@functools.lru_cache(maxsize=32)
def _fixed_headers(sender: str, subject: str, utf8: bool) -> tuple[bytes, str]:
    """The headers that are the same for every email of a kind, rendered once by EmailMessage.

    Returns (header bytes, envelope sender).
    """
    from_header = _policy(utf8).header_factory("From", sender)
    addresses = from_header.addresses
    if len(addresses) != 1:
        raise MessageBuildError("the sender setting must hold exactly one address")
    block = _header_block(
        utf8,
        [
            ("From", from_header),
            ("Subject", subject),
            ("Auto-Submitted", "auto-generated"),
            ("MIME-Version", "1.0"),
            ("Content-Type", f'multipart/alternative; boundary="{_BOUNDARY}"'),
        ],
    )
    return block, addresses[0].addr_spec


@functools.lru_cache(maxsize=4)
def _date_header(second: int) -> bytes:
    """The Date header for one second (rendered once per second, not once per email)."""
    return _header_block(False, [("Date", format_datetime(datetime.fromtimestamp(second, UTC)))])


def _mime_part(content_type: str, text: str) -> str:
    """One body part: 7bit when it can be, quoted-printable otherwise (always ASCII out)."""
    lines = text.splitlines()
    if text.isascii() and all(len(line) <= 900 for line in lines):
        cte, body = "7bit", "\r\n".join(lines)
    else:
        cte = "quoted-printable"
        # quoprimime encodes code points < 256 as bytes: hand it the UTF-8 bytes as latin-1.
        utf8 = text.encode("utf-8").decode("latin-1")
        body = quoprimime.body_encode(utf8, maxlinelen=76, eol="\r\n")
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n"
    )


# What EmailMessage writes unchanged: a display name of atoms, a dot-atom address with a
# host name, our own Message-ID form. Anything else takes the EmailMessage path.
# (No "=" or "?" in a plain name: "=?...?=" would be read as an encoded word.)
_NAME_ATOM = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_NAME = re.compile(rf"{_NAME_ATOM}(?: {_NAME_ATOM})*")
_PLAIN_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_PLAIN_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PLAIN_MSGID = re.compile(r"<[A-Za-z0-9._-]+@[A-Za-z0-9.-]+>")
_FOLD_AT = 78


def _plain_variable_headers(mail: OutgoingEmail) -> bytes | None:
    """The per-email headers written directly, when they need no quoting, encoding or
    folding (almost every email); None sends the caller to EmailMessage."""
    if not (
        _PLAIN_LOCAL.fullmatch(mail.to_local)
        and _PLAIN_DOMAIN.fullmatch(mail.to_domain)
        and _PLAIN_MSGID.fullmatch(mail.message_id)
        and (not mail.to_name or _PLAIN_NAME.fullmatch(mail.to_name))
    ):
        return None
    address = f"{mail.to_local}@{mail.to_domain}"
    to = f"To: {mail.to_name} <{address}>" if mail.to_name else f"To: {address}"
    message_id = f"Message-ID: {mail.message_id}"
    if len(to) > _FOLD_AT or len(message_id) > _FOLD_AT:
        return None
    return f"{to}\r\n{message_id}\r\nX-Mailroom-Outbox-Id: {mail.outbox_id}\r\n".encode("ascii")


def _variable_headers(mail: OutgoingEmail, smtputf8: bool) -> bytes:
    """To, Message-ID and X-Mailroom-Outbox-Id, as EmailMessage renders them."""
    if not smtputf8:
        plain = _plain_variable_headers(mail)
        if plain is not None:
            return plain
    return _header_block(
        smtputf8,
        [
            ("To", Address(
                display_name=mail.to_name, username=mail.to_local, domain=mail.to_domain
            )),
            ("Message-ID", mail.message_id),
            ("X-Mailroom-Outbox-Id", str(mail.outbox_id)),
        ],
    )


def build_message(mail: OutgoingEmail) -> RenderedEmail:
    """Render the email to bytes; MessageBuildError if it cannot be built safely.

    Headers go through EmailMessage (which quotes and encodes them); the body is
    our own text, encoded here as a multipart/alternative of text and HTML (the
    email package's body machinery costs milliseconds per message).
    """
    for field, value in (
        ("to_name", mail.to_name),
        ("to_address", f"{mail.to_local}@{mail.to_domain}"),
        ("subject", mail.subject),
        ("sender", mail.sender),
        ("message_id", mail.message_id),
    ):
        _refuse_controls(field, value)
    smtputf8 = not mail.to_local.isascii()
    try:
        fixed, mail_from = _fixed_headers(mail.sender, mail.subject, smtputf8)
        text, body_html = _body_text(mail)
        boundary = _BOUNDARY
        body = (
            "This is a multi-part message in MIME format.\r\n"
            f"--{boundary}\r\n"
            + _mime_part("text/plain", text)
            + f"--{boundary}\r\n"
            + _mime_part("text/html", f"<!doctype html><html><body>{body_html}</body></html>")
            + f"--{boundary}--\r\n"
        )
        variable = _variable_headers(mail, smtputf8)
        data = (
            fixed + _date_header(int(time.time())) + variable + b"\r\n"
            + body.encode("ascii")
        )
    except MessageBuildError:
        raise
    except Exception as exc:  # the email package raises many kinds on bad input
        raise MessageBuildError(f"cannot build message: {type(exc).__name__}: {exc}") from exc
    return RenderedEmail(
        mail_from=mail_from,
        rcpt_to=f"{mail.to_local}@{mail.to_domain}",
        data=data,
        smtputf8=smtputf8,
    )


def classify(code: int | None, reply: str, stage: str) -> SendResult:
    """Map an SMTP reply to an outcome: 2xx sent, 4xx retry, 5xx failed, anything else retry."""
    if code is not None and 200 <= code < 300:
        return SendResult("sent", code, reply)
    if code is not None and 500 <= code < 600:
        return SendResult("failed", code, reply, f"{stage} rejected permanently: {code} {reply}")
    return SendResult("retry", code, reply, f"{stage} deferred: {code} {reply}")


def _reply_text(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(raw)


class MailSender(Protocol):
    """Where rendered emails go. `send` never raises for delivery trouble: it reports it."""

    def send(self, email: RenderedEmail) -> SendResult:
        """Deliver one email and say what happened."""
        ...

    def close(self) -> None:
        """Release connections; later sends may open new ones after reopen()."""
        ...

    def reopen(self) -> None:
        """Undo close() so that connections are pooled again."""
        ...


class MemorySender:
    """The in-memory twin of SmtpSender: keeps what it is given, answers as scripted.

    `replies` holds outcomes to give, one per send, before falling back to 250.
    """

    def __init__(self, replies: list[SendResult] | None = None) -> None:
        self.sent: list[RenderedEmail] = []
        self.replies = list(replies or [])
        self._lock = threading.Lock()

    def send(self, email: RenderedEmail) -> SendResult:
        """Accept (or refuse, as scripted) one email."""
        with self._lock:
            if self.replies:
                result = self.replies.pop(0)
                if result.outcome != "sent":
                    return result
            else:
                result = SendResult("sent", 250, "2.0.0 Accepted (memory)")
            self.sent.append(email)
            return result

    def close(self) -> None:
        """Nothing to release."""

    def reopen(self) -> None:
        """Nothing to reopen."""


def _command(
    conn: smtplib.SMTP, verb: str, path: str, options: list[str] | None = None
) -> tuple[int, bytes]:
    """MAIL FROM / RCPT TO with our already-validated address in angle brackets.

    smtplib's mail() and rcpt() re-parse the address with email.utils.parseaddr
    (a tenth of a delivery's CPU); build_message has checked it, so it goes as is.
    """
    if options:
        conn.command_encoding = "utf-8"  # SMTPUTF8 (the caller checked the extension)
        path += " " + " ".join(options)
    conn.putcmd(verb, path)
    return conn.getreply()


class _Stale(Exception):
    """A pooled connection turned out to be closed before anything was sent."""


class SmtpSender:
    """Sends rendered emails over pooled SMTP connections; safe to use from many threads."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._closed = False

    def _acquire(self) -> tuple[smtplib.SMTP, bool]:
        """(connection, reused) — an idle pooled connection, else a new one."""
        with self._lock:
            item = self._idle.pop() if self._idle else None
        if item is not None:
            conn, last_used = item
            if time.monotonic() - last_used > IDLE_CHECK_SECONDS:
                try:
                    code, _ = conn.noop()
                    if code == 250:
                        return conn, True
                except (smtplib.SMTPException, OSError):
                    pass
                _close_quietly(conn)
            else:
                return conn, True
        # A fixed EHLO name: the default (socket.getfqdn) can wait seconds on DNS.
        conn = smtplib.SMTP(
            self.host, self.port, local_hostname="mailroom.localhost", timeout=self.timeout
        )
        return conn, False

    def _release(self, conn: smtplib.SMTP) -> None:
        conn.command_encoding = "ascii"
        with self._lock:
            if not self._closed:
                self._idle.append((conn, time.monotonic()))
                return
        _close_quietly(conn)

    def send(self, email: RenderedEmail) -> SendResult:
        """Deliver one email; never raises for SMTP or network trouble, returns the outcome."""
        for _ in range(2):
            try:
                conn, reused = self._acquire()
            except smtplib.SMTPConnectError as exc:
                return classify(exc.smtp_code, _reply_text(exc.smtp_error), "connect")
            except TimeoutError:
                return SendResult("retry", None, "", f"connect timed out after {self.timeout:g}s")
            except (OSError, smtplib.SMTPException) as exc:
                return SendResult("retry", None, "", f"connect failed: {_describe(exc)}")
            try:
                result = self._transaction(conn, email, reused)
            except _Stale:
                _close_quietly(conn)
                continue
            except TimeoutError:
                _close_quietly(conn)
                return SendResult("retry", None, "", f"timed out after {self.timeout:g}s")
            except (OSError, smtplib.SMTPException) as exc:
                _close_quietly(conn)
                return SendResult("retry", None, "", f"connection lost: {_describe(exc)}")
            self._release(conn)
            return result
        return SendResult("retry", None, "", "connection closed by the server")

    def _transaction(self, conn: smtplib.SMTP, email: RenderedEmail, reused: bool) -> SendResult:
        try:
            conn.ehlo_or_helo_if_needed()
            options: list[str] = []
            if email.smtputf8:
                if not conn.has_extn("smtputf8"):
                    return SendResult(
                        "failed", None, "", "the server does not support SMTPUTF8, "
                        "which this address needs"
                    )
                options = ["SMTPUTF8", "BODY=8BITMIME"]
            code, raw = _command(conn, "mail", f"FROM:<{email.mail_from}>", options)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if reused:
                raise _Stale() from exc
            raise
        if code != 250:
            self._reset(conn)
            return classify(code, _reply_text(raw), "MAIL FROM")
        code, raw = _command(conn, "rcpt", f"TO:<{email.rcpt_to}>")
        if code not in (250, 251):
            self._reset(conn)
            return classify(code, _reply_text(raw), "RCPT TO")
        try:
            code, raw = conn.data(email.data)
        except smtplib.SMTPDataError as exc:
            self._reset(conn)
            return classify(exc.smtp_code, _reply_text(exc.smtp_error), "DATA")
        result = classify(code, _reply_text(raw), "DATA")
        if result.outcome != "sent":
            self._reset(conn)
        return result

    @staticmethod
    def _reset(conn: smtplib.SMTP) -> None:
        conn.rset()

    def close(self) -> None:
        """Close every pooled connection; connections in use are closed when released."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _close_quietly(conn)

    def reopen(self) -> None:
        """Allow pooling again after close()."""
        with self._lock:
            self._closed = False


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        conn.close()
