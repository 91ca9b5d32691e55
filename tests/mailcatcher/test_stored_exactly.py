"""Stored exactly: what a client sends over SMTP is what get_raw gives back, byte for byte.

"Exactly" means the message bytes the client meant, after SMTP transparency is undone.
The catcher's policy (mailcatcher/server.py has the full reasoning):

* smtplib.sendmail(bytes) sends the bytes as they are: no line-ending conversion
  (only str messages get CRLF-fixed). It dot-stuffs every line that begins with a
  dot, after a CRLF *or after a bare LF*, and appends CRLF when the message does not
  end with one (that CRLF is on the wire as the last line's end, so it is stored).
* Only CRLF "." CRLF ends DATA: `\\n.\\r\\n` and its cousins are content (SMTP
  smuggling), stored as sent.
* A line after a CRLF loses its leading stuffed dot. After a bare LF, a line that
  begins with ".." loses one dot (what smtplib stuffed there; aiosmtpd >= 1.4.5 alone
  would keep it, aiosmtpd issue #561) and the message is flagged
  ("dot-stuffing undone after a bare LF"); a single dot followed by anything else
  (only a sender that does not stuff after a bare LF sends that) is kept as it is.
  So LF-only bytes from `sendmail(from, to, msg.as_bytes())` come back exactly, dots
  and all.
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
from email import policy
from email.message import EmailMessage

import psutil
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailcatcher.server import CatcherServer
from mailcatcher.store import (
    NOTE_BARE_LF,
    NOTE_DOT_AFTER_BARE_LF,
    MessageStore,
    MessageSummary,
)

from .smtp_helpers import RawSMTP

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = pathlib.Path(__file__).resolve().parents[1] / "data" / "mail-gem"
CORPUS_FILES = sorted(CORPUS.rglob("*.eml"))


def _sent_by_smtplib(original: bytes) -> bytes:
    """What smtplib.sendmail transmits for `original`, once its dot-stuffing is undone.

    That is `original` itself, plus the CRLF smtplib appends when it does not end with one.
    """
    return original if original.endswith(b"\r\n") else original + b"\r\n"


def _newest(store: MessageStore) -> MessageSummary:
    (msg,) = store.list_messages(limit=1)
    return msg


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
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("sender@example.test", ["rcpt@example.test"], original)
    (msg,) = store.list_messages()
    assert store.get_raw(msg.id) == _sent_by_smtplib(original)
    assert msg.size == len(_sent_by_smtplib(original))
    has_bare_lf = original.count(b"\n") != original.count(b"\r\n")
    assert (NOTE_BARE_LF in msg.notes) == has_bare_lf
    stuffed_after_bare_lf = re.search(rb"(?:^|[^\r])\n\.", original) is not None
    assert (NOTE_DOT_AFTER_BARE_LF in msg.notes) == stuffed_after_bare_lf


def test_corpus_has_lf_only_messages() -> None:
    """The corpus run above covers LF-only files (sent with smtplib as they are)."""
    lf_only = [p for p in CORPUS_FILES if b"\r\n" not in p.read_bytes()]
    assert len(lf_only) >= 3


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


def test_lf_only_message_from_smtplib_round_trips_dots_and_all(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """`sendmail(from, to, msg.as_bytes())` with LF endings: dot-led lines come back unchanged.

    smtplib stuffs a dot after every bare LF; the catcher undoes it, so a wrapped URL
    keeps its single dot (`127.0.0.1`, not `127.0.0..1`) and "." / ".." lines survive.
    """
    msg = EmailMessage(policy=policy.default)  # linesep "\n": as_bytes() is LF-only
    msg["From"] = "app@x.test"
    msg["To"] = "user@y.test"
    msg["Subject"] = "activate"
    msg.set_content(
        "Open http://127.0.0\n.1:8025/activate/abc\n.\n..\n...three\n.leading\n. \nend.\n"
    )
    original = msg.as_bytes()
    assert b"\r\n" not in original and b"\n.1:8025" in original and b"\n..\n" in original
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("app@x.test", ["user@y.test"], original)
    stored = _newest(store)
    assert store.get_raw(stored.id) == original + b"\r\n"  # smtplib's own final CRLF
    assert NOTE_BARE_LF in stored.notes and NOTE_DOT_AFTER_BARE_LF in stored.notes


def test_lf_only_message_ending_in_crlf_is_exactly_what_was_passed(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """Bare-LF lines with dots, ended by CRLF (so smtplib appends nothing): stored == passed."""
    original = b"Subject: lf\n\nline one\n.dot line\n..two\n.\n..\nend\r\n"
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], original)
    stored = _newest(store)
    assert store.get_raw(stored.id) == original
    assert stored.subject == "lf"


def test_any_mix_of_dots_and_line_breaks_round_trips_through_smtplib(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """For any bytes of dots, CR, LF and letters, smtplib's stuffing is undone exactly.

    Hypothesis looks for a message where bare LF, bare CR and CRLF around dots would
    make the unstuffing drop or keep a dot it should not, or end DATA early.
    """
    with smtplib.SMTP(*catcher.address, timeout=10) as client:

        @settings(max_examples=150, deadline=None, database=None)
        @given(st.binary(max_size=40).map(lambda b: bytes(b".\r\na"[x % 4] for x in b)))
        def check(body: bytes) -> None:
            original = b"Subject: mix\r\n\r\n" + body
            client.sendmail("a@x.test", ["b@y.test"], original)
            assert store.get_raw(_newest(store).id) == _sent_by_smtplib(original)

        check()


def test_single_dot_after_bare_lf_from_a_non_stuffing_client_is_kept(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """A client that stuffs only after CRLF (RFC 5321 lines) gets its single dots back as sent.

    After a bare LF, ".x", "." + CRLF and "." + LF are never what a stuffing sender
    sends, so they are kept; ".." is read as stuffed (the documented ambiguity) and
    flagged.
    """
    content = b"From: a@x.test\nSubject: lf\n\nline one\n.dot after a bare LF\n.\nx\n.\r\n"
    with RawSMTP(catcher.address) as raw:
        code, _ = _smtp_transaction(raw, content + b".\r\n")
        assert code == 250
        code, _ = _smtp_transaction(raw, b"Subject: two\n\n..two dots\r\n.\r\n")
        assert code == 250
    first, second = sorted(store.list_messages(), key=lambda m: m.id)
    assert store.get_raw(first.id) == content
    assert NOTE_BARE_LF in first.notes and NOTE_DOT_AFTER_BARE_LF not in first.notes
    assert first.subject == "lf"
    assert store.get_raw(second.id) == b"Subject: two\n\n.two dots\r\n"
    assert NOTE_DOT_AFTER_BARE_LF in second.notes


@pytest.mark.parametrize(
    ("fake_end", "stored_as"),
    [
        (b"\n.\r\n", b"\n.\r\n"),
        (b"\n.\n", b"\n.\n"),
        (b"\n..\r\n", b"\n.\r\n"),  # a stuffed lone dot after a bare LF, unstuffed
        (b"\n..\n", b"\n.\n"),
        (b"\r.\r\n", b"\r.\r\n"),
        (b"\r\n.\n", b"\r\n\n"),  # after CRLF the leading dot is stuffing (RFC 5321)
        (b"\r\n.\r", b"\r\n\r"),
    ],
    ids=repr,
)
def test_smuggled_end_of_data_does_not_end_the_message(
    catcher: CatcherServer, store: MessageStore, fake_end: bytes, stored_as: bytes
) -> None:
    """A fake end-of-data (`\\n.\\r\\n` and friends) inside DATA is content, not an end.

    The commands after it are not run: one message is stored, with them in its body,
    and the bytes are those sent with only the dot-stuffing rules applied.
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
    assert store.get_raw(msg.id) == smuggled[: -len(b".\r\n")].replace(fake_end, stored_as)


def test_only_crlf_dot_crlf_ends_data_whatever_comes_before(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """Raw DATA of dots, CR, LF and letters without CRLF.CRLF inside is one message, no more.

    Hypothesis looks for bytes after which the server ends DATA early (and would run
    the rest as commands) or loses its place in the conversation: every transaction
    must get exactly one 250, store one message, and leave NOOP answered in step.
    """
    head = b"Subject: raw\r\n\r\n"
    with RawSMTP(catcher.address) as raw:
        assert raw.command("EHLO me")[0] == 250

        @settings(max_examples=150, deadline=None, database=None)
        @given(st.binary(max_size=40).map(lambda b: bytes(b".\r\na"[x % 4] for x in b)))
        def check(body: bytes) -> None:
            data = head + body + b"\r\n.\r\n"
            assume(data.find(b"\r\n.\r\n") == len(data) - 5)  # no real end inside
            before = store.count_messages()
            assert raw.command("MAIL FROM:<a@x.test>")[0] == 250
            assert raw.command("RCPT TO:<b@y.test>")[0] == 250
            assert raw.command("DATA")[0] == 354
            raw.send(data)
            assert raw.reply()[0] == 250
            assert raw.command("NOOP")[0] == 250
            assert store.count_messages() == before + 1
            stored = store.get_raw(_newest(store).id)
            assert stored is not None and stored.startswith(head)
            assert len(stored) >= len(data) - 5 - (data.count(b"\n.") + 1)

        check()


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
