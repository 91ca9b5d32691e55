"""The catching SMTP server: real aiosmtpd on a loopback port, real smtplib clients, real store."""

from __future__ import annotations

import smtplib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailcatcher.server import CatcherServer
from mailcatcher.store import MemoryMessageStore, MessageStore
from tests.waiting import wait_until

from .smtp_helpers import RawSMTP

SIMPLE = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nhello\r\n"


def test_listens_on_loopback_ipv4_by_default(catcher: CatcherServer) -> None:
    """The server binds 127.0.0.1 (not ::1, not all interfaces) on the port it was given."""
    host, port = catcher.address
    assert host == "127.0.0.1"
    with socket.create_connection((host, port), timeout=5) as sock:
        assert sock.recv(1024).startswith(b"220 ")
    assert CatcherServer.__init__.__kwdefaults__["host"] == "127.0.0.1"  # type: ignore[index]


def test_ehlo_advertises_size_8bitmime_smtputf8(make_catcher: Callable[..., CatcherServer]) -> None:
    """EHLO lists SIZE with the configured limit, 8BITMIME and SMTPUTF8."""
    server = make_catcher(size_limit=1234567)
    with smtplib.SMTP(*server.address, timeout=10) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "1234567"
        assert "8bitmime" in client.esmtp_features
        assert "smtputf8" in client.esmtp_features


def test_message_is_committed_before_250(catcher: CatcherServer, store: MessageStore) -> None:
    """When sendmail returns, the message is already in the store (no waiting needed)."""
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        for i in range(5):
            client.sendmail("a@x.test", ["b@y.test"], SIMPLE.replace(b"hi", b"hi%d" % i))
            assert store.count_messages() == i + 1


def test_envelope_peer_and_time_are_kept(catcher: CatcherServer, store: MessageStore) -> None:
    """The envelope sender, every recipient, the client's address and the time are stored."""
    before = time.time()
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("bounce@x.test", ["one@y.test", "two@z.test"], SIMPLE)
        local_port = client.sock.getsockname()[1]
    (msg,) = store.list_messages()
    assert msg.mail_from == "bounce@x.test"
    assert msg.rcpt_to == ("one@y.test", "two@z.test")
    assert msg.peer == f"127.0.0.1:{local_port}"
    assert before - 1 <= msg.received_at.timestamp() <= time.time() + 1
    assert msg.subject == "hi"


def test_reply_names_the_stored_id(catcher: CatcherServer, store: MessageStore) -> None:
    """The 250 after DATA says which id the message got."""
    with RawSMTP(catcher.address) as raw:
        raw.command("EHLO me")
        raw.command("MAIL FROM:<a@x.test>")
        raw.command("RCPT TO:<b@y.test>")
        assert raw.command("DATA")[0] == 354
        raw.send(SIMPLE + b".\r\n")
        code, text = raw.reply()
    (msg,) = store.list_messages()
    assert code == 250 and text.endswith(f"queued as {msg.id}")


def test_any_sender_and_empty_sender_are_accepted(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """Every sender is accepted, including the null sender of bounces."""
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("", ["b@y.test"], SIMPLE)
        client.sendmail("weird+tag@[127.0.0.1]", ["root@localhost"], SIMPLE)
    assert [m.mail_from for m in store.list_messages()] == ["weird+tag@[127.0.0.1]", ""]


def test_one_hundred_recipients(catcher: CatcherServer, store: MessageStore) -> None:
    """A message for 100 recipients is accepted once, with all 100 in its envelope."""
    rcpts = [f"user{i}@example.test" for i in range(100)]
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        refused = client.sendmail("a@x.test", rcpts, SIMPLE)
    assert refused == {}
    (msg,) = store.list_messages()
    assert msg.rcpt_to == tuple(rcpts)


def test_smtputf8_non_ascii_recipient(catcher: CatcherServer, store: MessageStore) -> None:
    """smtplib's send_message with a non-ASCII recipient uses SMTPUTF8, and it is stored."""
    msg = EmailMessage()
    msg["From"] = "Jürgen <jürgen@bücher.example>"
    msg["To"] = "用户@例子.example"
    msg["Subject"] = "Grüße"
    msg.set_content("Hallo, 世界")
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.send_message(msg)
    (stored,) = store.list_messages()
    assert stored.rcpt_to == ("用户@例子.example",)
    assert stored.mail_from == "jürgen@bücher.example"
    assert stored.subject == "Grüße"
    assert "用户@例子.example" in stored.to
    assert [m.id for m in store.list_messages(search="Hallo")] == [stored.id]


def test_eight_concurrent_clients_lose_nothing(catcher: CatcherServer, store: MessageStore) -> None:
    """Eight clients on persistent connections sending at once: every message stored once."""
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            with smtplib.SMTP(*catcher.address, timeout=10) as smtp:
                for i in range(40):
                    body = b"Subject: c%d-%d\r\nMessage-ID: <c%d-%d@x>\r\n\r\nx\r\n" % (n, i, n, i)
                    smtp.sendmail("a@x.test", ["b@y.test"], body)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    messages = store.list_messages(limit=1000)
    assert len(messages) == 320
    assert len({m.message_id for m in messages}) == 320
    assert all(m.duplicate_of is None for m in messages)


def test_resent_message_id_is_marked_duplicate(catcher: CatcherServer, store: MessageStore) -> None:
    """The same Message-ID delivered twice: the second copy points at the first."""
    body = b"Subject: again\r\nMessage-ID: <same@x.test>\r\n\r\nx\r\n"
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], body)
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        client.sendmail("a@x.test", ["b@y.test"], body)
    second, first = store.list_messages()
    assert first.duplicate_of is None
    assert second.duplicate_of == first.id


def test_big_message_does_not_stall_other_connections(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """While an 8 MiB message is received, parsed and stored, another connection keeps going."""
    line = b"A" * 76 + b"\r\n"
    big = (
        b"Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=Z\r\n\r\n"
        b"--Z\r\nContent-Type: text/plain\r\n\r\nbig one\r\n--Z\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + line * (8 * 1024 * 1024 // len(line))
        + b"--Z--\r\n"
    )
    done = threading.Event()

    def send_big() -> None:
        with smtplib.SMTP(*catcher.address, timeout=30) as client:
            client.sendmail("a@x.test", ["b@y.test"], big)
        done.set()

    sender = threading.Thread(target=send_big)
    sender.start()
    worst = 0.0
    sent = 0
    with smtplib.SMTP(*catcher.address, timeout=30) as client:
        while not done.is_set():
            start = time.monotonic()
            client.sendmail("a@x.test", ["b@y.test"], SIMPLE)
            worst = max(worst, time.monotonic() - start)
            sent += 1
    sender.join()
    assert store.count_messages() == sent + 1
    # Generous: a loaded CI machine is slow, but a stalled loop would wait for the whole message.
    assert worst < 3.0, f"a small message waited {worst:.2f} s behind the big one"


def test_message_half_sent_does_not_block_others(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """A client stuck in the middle of DATA does not hold up another connection's message."""
    with RawSMTP(catcher.address) as slow:
        slow.command("EHLO slow")
        slow.command("MAIL FROM:<slow@x.test>")
        slow.command("RCPT TO:<b@y.test>")
        assert slow.command("DATA")[0] == 354
        slow.send(b"Subject: slow\r\n\r\n" + b"half of it\r\n" * 10_000)
        with smtplib.SMTP(*catcher.address, timeout=5) as fast:
            fast.sendmail("a@x.test", ["b@y.test"], SIMPLE)
        assert [m.subject for m in store.list_messages()] == ["hi"]
        slow.send(b"the rest\r\n.\r\n")
        assert slow.reply()[0] == 250
    assert [m.subject for m in store.list_messages()] == ["slow", "hi"]


def test_stop_with_a_client_connected_is_clean(
    store: MessageStore, free_port: Callable[[], int]
) -> None:
    """stop() closes open client connections and frees the port for a new server."""
    port = free_port()
    server = CatcherServer(store, port=port)
    server.start()
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.ehlo()
    server.stop()
    server.stop()  # twice is harmless
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        client.noop()
    client.close()
    again = CatcherServer(store, port=port)
    with again:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("a@x.test", ["b@y.test"], SIMPLE)
    assert store.count_messages() == 1


def test_port_in_use_fails_loudly(catcher: CatcherServer, store: MessageStore) -> None:
    """Starting a second server on a taken port raises instead of hanging."""
    other = CatcherServer(store, port=catcher.address[1])
    with pytest.raises(OSError):
        other.start()
    assert not other.running


def test_stored_message_is_visible_to_another_process_reader(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """A second MessageStore on the same file (as the CLI would open) sees new mail at once."""
    reader = MessageStore(store.path)
    try:
        with smtplib.SMTP(*catcher.address, timeout=10) as client:
            client.sendmail("a@x.test", ["b@y.test"], SIMPLE)
        assert wait_until(lambda: reader.count_messages() == 1, timeout=2)
    finally:
        reader.close()


def test_serves_into_the_in_memory_store(free_port: Callable[[], int]) -> None:
    """The catcher works the same on the in-memory twin of the store."""
    memory = MemoryMessageStore()
    with CatcherServer(memory, port=free_port()) as server:
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.sendmail("a@x.test", ["b@y.test"], SIMPLE)
    (msg,) = memory.list_messages()
    assert memory.get_raw(msg.id) == SIMPLE and msg.subject == "hi"
    memory.close()


def test_briefly_locked_store_delays_but_loses_nothing(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """While another process holds the write lock for a moment, the 250 waits; nothing is lost."""
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with smtplib.SMTP(*catcher.address, timeout=10) as client:
            start = time.monotonic()
            client.sendmail("a@x.test", ["b@y.test"], SIMPLE)
            assert time.monotonic() - start >= 0.3
    finally:
        release.join()
        other.close()
    assert store.count_messages() == 1


def test_store_locked_too_long_gives_451_then_recovers(
    data_dir: Path, free_port: Callable[[], int]
) -> None:
    """A lock held past the busy timeout gets a temporary 451 (the sender retries), no crash."""
    store = MessageStore(data_dir / "mail.db", busy_timeout_ms=200)
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        with CatcherServer(store, port=free_port()) as server:
            with smtplib.SMTP(*server.address, timeout=10) as client:
                other.execute("BEGIN IMMEDIATE")
                with pytest.raises(smtplib.SMTPDataError) as info:
                    client.sendmail("a@x.test", ["b@y.test"], SIMPLE)
                assert info.value.smtp_code == 451
                other.execute("COMMIT")
                client.sendmail("a@x.test", ["b@y.test"], SIMPLE)  # the retry goes through
        assert store.count_messages() == 1
    finally:
        other.close()
        store.close()


def test_silent_connection_is_closed_after_the_idle_timeout(
    make_catcher: Callable[..., CatcherServer],
) -> None:
    """A client that says nothing for longer than the idle timeout is disconnected."""
    server = make_catcher(idle_timeout=0.3)
    with RawSMTP(server.address) as client:
        assert client.command("EHLO quiet")[0] == 250
        started = time.monotonic()
        client.sock.settimeout(10)
        assert client.sock.recv(1) == b""  # the server closed the connection
        assert time.monotonic() - started >= 0.25


def test_talking_connection_outlives_the_idle_timeout(
    make_catcher: Callable[..., CatcherServer],
) -> None:
    """Every command pushes the idle deadline back: a client sending one every 0.1 s
    stays connected for several times the timeout."""
    server = make_catcher(idle_timeout=0.4)
    with RawSMTP(server.address) as client:
        assert client.command("EHLO busy")[0] == 250
        for _ in range(15):
            time.sleep(0.1)  # the pace of the client is the condition under test
            assert client.command("NOOP")[0] == 250
