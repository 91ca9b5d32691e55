"""Stored exactly: what a client sends over SMTP is what get_raw gives back, byte for byte.

"Exactly" means the DATA bytes after SMTP transparency is undone. How the clients used
here put a message on the wire, and so which bytes are expected back:

* smtplib.sendmail(bytes) sends the bytes as they are: no line-ending conversion
  (only str messages get CRLF-fixed). It dot-stuffs every line that begins with a
  dot, after a CRLF *or after a bare LF*, and appends CRLF when the message does not
  end with one (that CRLF is part of what it sent, so it is stored).
* The catcher (aiosmtpd >= 1.4.5, the SMTP-smuggling fix) sees lines only at CRLF:
  it removes the stuffed dot of a line after CRLF, and keeps a dot after a bare LF
  as it is. So with smtplib, a line beginning with a dot after a bare LF comes back
  with smtplib's extra dot (aiosmtpd issue #561); the message is flagged in its
  notes. A client that treats a bare LF as no line break (RFC 5321: only CRLF ends a
  line) and therefore does not stuff there gets its bytes back exactly.
* Bare LF line endings are accepted and kept, never converted, and flagged in the
  notes ("bare LF line endings").
"""

from __future__ import annotations

import base64
import email.generator
import io
import os
import pathlib
import re
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage

import psutil
import pytest

from mailcatcher.server import CatcherServer
from mailcatcher.store import NOTE_BARE_LF, NOTE_DOT_AFTER_BARE_LF, MessageStore

from .smtp_helpers import RawSMTP

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = pathlib.Path(__file__).resolve().parents[1] / "data" / "mail-gem"
CORPUS_FILES = sorted(CORPUS.rglob("*.eml"))


def _sent_by_smtplib(original: bytes) -> bytes:
    """What smtplib.sendmail transmits for `original`, once the stuffed dots after CRLF are gone.

    Valid for messages without a dot-led line after a bare LF (the corpus test checks that).
    """
    return original if original.endswith(b"\r\n") else original + b"\r\n"


def _smtp_transaction(raw: RawSMTP, data: bytes, rcpt: str = "b@y.test") -> tuple[int, str]:
    raw.command("EHLO me")
    assert raw.command("MAIL FROM:<a@x.test>")[0] == 250
    assert raw.command(f"RCPT TO:<{rcpt}>")[0] == 250
    assert raw.command("DATA")[0] == 354
    raw.send(data)
    return raw.reply()


def test_corpus_is_present() -> None:
    """The mail-gem corpus (with its licence) is in the repository, not read from elsewhere."""
    assert (CORPUS / "LICENSE").is_file()
    assert len(CORPUS_FILES) >= 69


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_message_round_trips(
    catcher: CatcherServer, store: MessageStore, path: pathlib.Path
) -> None:
    """Every corpus message sent with smtplib comes back from get_raw exactly as transmitted."""
    original = path.read_bytes()
    assert not re.search(rb"(?:^|[^\r])\n\.", original), "dot after bare LF: expectation differs"
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("sender@example.test", ["rcpt@example.test"], original)
    (msg,) = store.list_messages()
    assert store.get_raw(msg.id) == _sent_by_smtplib(original)
    assert msg.size == len(_sent_by_smtplib(original))
    has_bare_lf = original.count(b"\n") != original.count(b"\r\n")
    assert (NOTE_BARE_LF in msg.notes) == has_bare_lf


def test_dot_lines_after_crlf_round_trip(catcher: CatcherServer, store: MessageStore) -> None:
    """Lines that begin with one or more dots (after CRLF) come back unchanged via smtplib."""
    original = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n...three\r\nend.\r\n. \r\n"
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], original)
    (msg,) = store.list_messages()
    assert store.get_raw(msg.id) == original


def test_every_byte_value_round_trips(catcher: CatcherServer, store: MessageStore) -> None:
    """8-bit bytes (NUL and 0x80-0xFF included) in the body are kept exactly."""
    body = bytes(b for b in range(256) if b not in (10, 13))
    original = b"Subject: bytes\r\n\r\n" + body + b"\r\n" + body[::-1] + b"\r\n"
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], original)
    (msg,) = store.list_messages()
    assert store.get_raw(msg.id) == original


def test_line_of_100000_characters(catcher: CatcherServer, store: MessageStore) -> None:
    """A body line of 100,000 characters is accepted and stored exactly."""
    original = b"Subject: long line\r\n\r\n" + b"x" * 100_000 + b"\r\nshort\r\n"
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], original)
    (msg,) = store.list_messages()
    assert store.get_raw(msg.id) == original


def test_line_over_the_limit_is_refused_and_logged(
    make_catcher: Callable[..., CatcherServer], store: MessageStore
) -> None:
    """A line longer than line_length_limit gets a 500 naming the limit, logged as a fault."""
    server = make_catcher(line_length_limit=4096)
    with smtplib.SMTP(*server.address, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail("a@x.test", ["b@y.test"], b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n")
        assert info.value.smtp_code == 500
        assert b"4096" in info.value.smtp_error
        client.sendmail("a@x.test", ["b@y.test"], b"Subject: ok\r\n\r\nfine\r\n")  # still usable
    assert [m.subject for m in store.list_messages()] == ["ok"]
    (fault,) = store.list_faults()
    assert (fault.stage, fault.kind, fault.rule_id) == ("data", "line-too-long", None)


def test_over_size_declared_in_mail_from_gets_552_naming_the_limit(
    make_catcher: Callable[..., CatcherServer], store: MessageStore
) -> None:
    """smtplib declares SIZE; over the limit, MAIL FROM gets 552 naming the limit, logged."""
    server = make_catcher(size_limit=1_000_000)
    big = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 1100
    with smtplib.SMTP(*server.address, timeout=10) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail("a@x.test", ["b@y.test"], big)
    assert info.value.smtp_code == 552
    assert b"limit of 1000000 bytes" in info.value.smtp_error
    assert store.count_messages() == 0
    (fault,) = store.list_faults()
    assert (fault.stage, fault.kind, fault.rule_id) == ("mail", "too-big", None)
    assert fault.reply == "552 5.3.4 Message size exceeds the limit of 1000000 bytes"


def test_over_size_without_declaration_gets_552_after_data(
    make_catcher: Callable[..., CatcherServer], store: MessageStore
) -> None:
    """A client that does not declare SIZE gets the 552 after the final dot, logged as a fault."""
    server = make_catcher(size_limit=1_000_000)
    big = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 1100
    with RawSMTP(server.address) as raw:
        code, text = _smtp_transaction(raw, big + b".\r\n")
        assert code == 552 and "limit of 1000000 bytes" in text
        assert raw.command("NOOP")[0] == 250  # the connection goes on
    assert store.count_messages() == 0
    (fault,) = store.list_faults()
    assert (fault.stage, fault.kind, fault.rule_id) == ("data", "too-big", None)
    assert fault.rcpt_to == ("b@y.test",)


def test_bare_lf_message_round_trips_and_is_flagged(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """Bare LF endings (and a dot-led line after one) are kept exactly from a non-stuffing client.

    The client here stuffs only after CRLF, as RFC 5321 defines lines; the catcher keeps
    every byte, converts nothing, and flags the message.
    """
    content = b"From: a@x.test\nSubject: lf\n\nline one\n.dot after a bare LF\n..two dots\nend\r\n"
    with RawSMTP(catcher.address) as raw:
        code, _ = _smtp_transaction(raw, content + b".\r\n")
    assert code == 250
    (msg,) = store.list_messages()
    assert store.get_raw(msg.id) == content
    assert NOTE_BARE_LF in msg.notes
    assert msg.subject == "lf"


def test_bare_lf_dot_line_from_smtplib_keeps_its_stuffed_dot(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """smtplib stuffs a dot after a bare LF; aiosmtpd keeps it (issue #561); the note says so.

    This is the one place where bytes differ from what the application handed to
    smtplib; the stored bytes are still exactly those that crossed the wire.
    """
    original = b"Subject: lf\n\nline one\n.dot line\nend\n"
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], original)
    (msg,) = store.list_messages()
    assert store.get_raw(msg.id) == b"Subject: lf\n\nline one\n..dot line\nend\n\r\n"
    assert NOTE_BARE_LF in msg.notes and NOTE_DOT_AFTER_BARE_LF in msg.notes


@pytest.mark.parametrize(
    "fake_end", [b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r"], ids=repr
)
def test_smuggled_end_of_data_does_not_end_the_message(
    catcher: CatcherServer, store: MessageStore, fake_end: bytes
) -> None:
    """A fake end-of-data (`\\n.\\r\\n` and friends) inside DATA is content, not an end.

    The commands after it are not run: one message is stored, with them in its body.
    """
    smuggled = (
        b"Subject: outer\r\n\r\nhello" + fake_end
        + b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@x.test>\r\nDATA\r\n"
        + b"Subject: smuggled\r\n\r\nbad\r\n.\r\n"
    )
    with RawSMTP(catcher.address) as raw:
        code, _ = _smtp_transaction(raw, smuggled)
        assert code == 250
        assert raw.command("NOOP")[0] == 250  # no stray replies queued up
    (msg,) = store.list_messages()
    assert msg.subject == "outer"
    assert msg.rcpt_to == ("b@y.test",)
    stored = store.get_raw(msg.id)
    assert stored is not None
    assert b"RCPT TO:<victim@x.test>" in stored and b"Subject: smuggled" in stored


def test_smtputf8_message_from_send_message_is_stored_exactly(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """send_message with a non-ASCII address goes out with SMTPUTF8 and is stored as sent."""
    msg = EmailMessage()
    msg["From"] = "Jürgen <jürgen@bücher.example>"
    msg["To"] = "Ünïcødé <ünïcødé@例子.example>"
    msg["Subject"] = "Grüße aus Köln"
    msg.set_content("Hallo, 世界\n")
    expected = io.BytesIO()
    email.generator.BytesGenerator(expected, policy=msg.policy.clone(utf8=True)).flatten(
        msg, linesep="\r\n"
    )
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.send_message(msg)
    (stored,) = store.list_messages()
    assert stored.rcpt_to == ("ünïcødé@例子.example",)
    assert store.get_raw(stored.id) == expected.getvalue()


SERVER_SCRIPT = r"""
import pathlib, sys
from mailcatcher.server import CatcherServer
from mailcatcher.store import MessageStore
store = MessageStore(pathlib.Path(sys.argv[1]))
server = CatcherServer(store, port=int(sys.argv[2]))
server.start()
print("ready", flush=True)
sys.stdin.readline()
server.stop()
store.close()
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, from before exec).
status = pathlib.Path("/proc/self/status")
text = status.read_text() if status.exists() else ""
peak = [int(l.split()[1]) * 1024 for l in text.splitlines() if l.startswith("VmHWM:")]
print(peak[0] if peak else 0, flush=True)
"""


@pytest.mark.slow
def test_40_mib_attachment_is_stored_with_bounded_memory(
    tmp_path: pathlib.Path, free_port: Callable[[], int]
) -> None:
    """A 40 MiB message is accepted and stored exactly; the server's RSS grows < 4x its size.

    The catcher runs in its own process so that its memory is measured alone (psutil,
    sampled every few ms while the message is received, and the kernel's peak RSS).
    Measured here: about 3x (the receive buffer, its copy, and parsing afterwards).
    """
    db, port = tmp_path / "mail.db", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(db), str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == b"ready"
        payload = base64.encodebytes(os.urandom(30 * 1024 * 1024)).replace(b"\n", b"\r\n")
        message = (
            b"From: a@x.test\r\nTo: b@y.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=Z\r\n\r\n--Z\r\n"
            b"Content-Type: text/plain\r\n\r\nsee the attachment\r\n--Z\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b'Content-Disposition: attachment; filename="big.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"--Z--\r\n"
        )
        assert len(message) > 40 * 1024 * 1024
        server = psutil.Process(proc.pid)
        baseline = peak = server.memory_info().rss
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, server.memory_info().rss)
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                client.sendmail("a@x.test", ["b@y.test"], message)
        finally:
            done.set()
            sampler.join()
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        kernel_peak = int(proc.stdout.readlines()[-1])
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    growth = max(peak, kernel_peak) - baseline
    assert growth < 4 * len(message), f"peak grew by {growth / len(message):.1f}x the size"
    store = MessageStore(db)
    try:
        (msg,) = store.list_messages()
        assert msg.attachment_count == 1 and msg.size == len(message)
        assert store.get_raw(msg.id) == message
    finally:
        store.close()
