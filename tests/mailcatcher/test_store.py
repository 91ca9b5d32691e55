"""The message store contract: add, list newest first, page, search, get, raw, delete, clear,
duplicates, chaos rules, the fault log and the change signal.

Every contract test runs against both backends (the SQLite file and the in-memory
twin); the tests that need a file (reopening, locks, other connections) use SQLite only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcatcher.chaos import ChaosRule
from mailcatcher.search import parse_search
from mailcatcher.store import (
    BaseMessageStore,
    MemoryMessageStore,
    MessageStore,
    fts_query,
    split_address,
)


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[BaseMessageStore]:
    """Each backend in turn: the contract holds for both."""
    s: BaseMessageStore
    s = MessageStore(data_dir / "mail.db") if request.param == "sqlite" else MemoryMessageStore()
    yield s
    s.close()


@pytest.fixture
def sqlite_store(data_dir: Path) -> Iterator[MessageStore]:
    """The SQLite backend alone."""
    s = MessageStore(data_dir / "mail.db")
    yield s
    s.close()


def _mail(
    subject: str = "Hello",
    body: str = "Body text",
    *,
    sender: str = "Alice <alice@example.test>",
    to: str = "bob@example.test",
    message_id: str | None = None,
    extra: str = "",
) -> bytes:
    headers = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    if message_id:
        headers += f"Message-ID: {message_id}\r\n"
    return (headers + extra + "\r\n" + body + "\r\n").encode()


def _add(store: BaseMessageStore, raw: bytes, rcpt: str = "bob@example.test") -> int:
    return store.add_message(
        raw, mail_from="alice@example.test", rcpt_tos=[rcpt], peer="127.0.0.1:1"
    )


def test_add_then_get_gives_summary_and_exact_raw(store: BaseMessageStore) -> None:
    """A stored message comes back with its envelope, decoded summary and the exact bytes."""
    raw = _mail(
        "=?utf-8?q?Gr=C3=BC=C3=9Fe?=",
        extra="Date: Tue, 1 Dec 2026 10:00:00 +0100\r\n",
        message_id="<a1@example.test>",
    )
    when = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    new_id = store.add_message(
        raw, mail_from="alice@example.test", rcpt_tos=["bob@example.test", "carol@example.test"],
        peer="127.0.0.1:5555", received_at=when,
    )
    summary = store.get_message(new_id)
    assert summary is not None
    assert summary.subject == "Grüße"
    assert summary.mail_from == "alice@example.test"
    assert summary.rcpt_to == ("bob@example.test", "carol@example.test")
    assert summary.peer == "127.0.0.1:5555"
    assert summary.received_at == when and summary.received_at.tzinfo is not None
    assert "alice@example.test" in summary.from_
    assert summary.to == "bob@example.test"
    assert summary.date == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert summary.size == len(raw)
    assert summary.message_id == "<a1@example.test>"
    assert summary.duplicate_of is None and summary.read is False
    assert store.get_raw(new_id) == raw


def test_missing_ids_give_none(store: BaseMessageStore) -> None:
    """get_message and get_raw of an id that does not exist answer None."""
    assert store.get_message(42) is None
    assert store.get_raw(42) is None


def test_attachment_count_counts_attachments(store: BaseMessageStore) -> None:
    """The summary counts the attachments of a multipart message."""
    raw = (
        b"From: a@x.test\r\nTo: b@x.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b'--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
        b'--B\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename="b.csv"\r\n'
        b"\r\na,b\r\n--B--\r\n"
    )
    summary = store.get_message(_add(store, raw))
    assert summary is not None and summary.attachment_count == 2


def test_list_is_newest_first_and_pages(store: BaseMessageStore) -> None:
    """list_messages returns newest first; limit/offset and before_id page without overlap."""
    ids = [_add(store, _mail(f"m{i}")) for i in range(7)]
    assert [m.id for m in store.list_messages(limit=3)] == ids[::-1][:3]
    assert [m.id for m in store.list_messages(limit=3, offset=3)] == ids[::-1][3:6]
    assert [m.id for m in store.list_messages(limit=3, before_id=ids[4])] == ids[::-1][3:6]
    assert store.count_messages() == 7


def test_count_before_an_id_matches_the_pages_before_it(store: BaseMessageStore) -> None:
    """count_messages(before_id=...) counts exactly what list_messages pages with the same
    bound, with and without a search (the inbox's stable pages while mail arrives)."""
    ids = [_add(store, _mail(f"m{i}", body="zebra" if i % 2 else "plain")) for i in range(9)]
    for before in (ids[0], ids[4], ids[8], ids[8] + 1):
        for search in (None, "zebra"):
            listed = store.list_messages(limit=100, before_id=before, search=search)
            assert store.count_messages(search, before_id=before) == len(listed)
    assert store.count_messages(before_id=ids[4]) == 4


def test_list_messages_since_follows_new_arrivals(store: BaseMessageStore) -> None:
    """list_messages_since gives the messages after an id, oldest first."""
    ids = [_add(store, _mail(f"m{i}")) for i in range(4)]
    assert [m.id for m in store.list_messages_since(ids[1])] == ids[2:]
    assert store.list_messages_since(ids[-1]) == []


def test_messages_after_counts_the_newer_ones_and_names_the_newest(
    store: BaseMessageStore,
) -> None:
    """messages_after(id) is (how many are newer, the newest id); (0, id) when none is."""
    ids = [_add(store, _mail(f"m{i}")) for i in range(5)]
    store.delete_messages([ids[3]])
    assert store.messages_after(ids[0]) == (3, ids[4])
    assert store.messages_after(ids[4]) == (0, ids[4])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("invoice", {"invoice"}),  # subject word
        ("INVOICE", {"invoice"}),  # case-insensitive
        ("zebra", {"body"}),  # body word
        ("zeb", {"body"}),  # word prefix
        ("dora@example.test", {"addr"}),  # header address
        ("envelope-only", {"env"}),  # envelope recipient
        ("zebra giraffe", {"body"}),  # every word must occur
        ("zebra nothing", set()),
        ('"unbalanced AND (', set()),  # FTS syntax is not interpreted
        ("cafe", {"accent"}),  # diacritics folded
    ],
)
def test_search_covers_subject_addresses_and_body(
    store: BaseMessageStore, query: str, expected: set[str]
) -> None:
    """Full-text search finds words in the subject, the addresses and the body text."""
    names = {
        _add(store, _mail("Your invoice")): "invoice",
        _add(store, _mail("Plain", "a zebra and a giraffe")): "body",
        _add(store, _mail("Other", to="Dora <dora@example.test>")): "addr",
        _add(store, _mail("Third"), rcpt="envelope-only@example.test"): "env",
        _add(store, _mail("Fourth", "un café noir")): "accent",
    }
    found = {names[m.id] for m in store.list_messages(search=query)}
    assert found == expected
    assert store.count_messages(query) == len(expected)


def test_search_reads_html_when_there_is_no_text(store: BaseMessageStore) -> None:
    """An HTML-only message is searchable by its words, not its tags."""
    raw = (
        b"From: a@x.test\r\nTo: b@x.test\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Click <b>activate</b></p>\r\n"
    )
    new_id = _add(store, raw)
    assert [m.id for m in store.list_messages(search="activate")] == [new_id]
    assert store.list_messages(search="p") == []


def test_blank_search_lists_everything(store: BaseMessageStore) -> None:
    """A search of only blanks is no search."""
    _add(store, _mail())
    assert fts_query("   ") is None
    assert len(store.list_messages(search="  ")) == 1


def _structured_mailbox(store: BaseMessageStore) -> dict[int, str]:
    """Five messages that differ in one field each; id -> name."""
    pdf = (
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n'
    )
    attached = (
        "--B\r\nContent-Type: text/plain\r\n\r\nsee it\r\n--B\r\n"
        "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf"
        "\r\n\r\nPDF\r\n--B--"
    )
    names = {
        _add(store, _mail("cc test", "a zebra crossing", to="W5 <w5@example.test>",
                          message_id="<one@example.test>")): "to-w5",
        _add(store, _mail("test cc", "stripes", extra="Cc: Carol <carol@example.test>\r\n"),
             rcpt="hidden@example.test"): "cc-carol",
        _add(store, _mail("files", attached, sender="bob@example.test", extra=pdf)): "attached",
        _add(store, _mail("Über", "zebra again", sender="Zoë <zoe@example.test>")): "zoe",
        _add(store, _mail("plain", "nothing")): "plain",
    }
    return names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("to:w5@example.test", {"to-w5"}),
        ("to:W5", {"to-w5"}),  # display name, any case
        ("-to:w5@example.test", {"cc-carol", "attached", "zoe", "plain"}),
        ("from:bob@example.test", {"attached"}),
        ("cc:carol", {"cc-carol"}),
        ("bcc:hidden", {"cc-carol"}),  # an envelope recipient in no header
        ('subject:"cc test"', {"to-w5"}),
        ("subject:cc", {"to-w5", "cc-carol"}),
        ('"cc test"', {"to-w5"}),  # a phrase: words in this order
        ("cc test", {"to-w5", "cc-carol"}),  # words: any order
        ("zebra -crossing", {"zoe"}),
        ("!zebra", {"cc-carol", "attached", "plain"}),
        ("message-id:one@example", {"to-w5"}),
        ("has:attachment", {"attached"}),
        ("-has:attachments", {"to-w5", "cc-carol", "zoe", "plain"}),
        ("is:unread subject:plain", {"plain"}),
        ("is:read", set()),
        ("tag:anything", set()),
        ("after:2000-01-01 before:2999-01-01 subject:plain", {"plain"}),
        ("before:2000-01-01", set()),
        ("larger:1k", set()),  # all are small
        ("smaller:10m subject:files", {"attached"}),
        ("from:zoë zebra", {"zoe"}),
        ("--- ???", {"to-w5", "cc-carol", "attached", "zoe", "plain"}),  # nothing to search
    ],
)
def test_structured_search_follows_mailpit_syntax(
    store: BaseMessageStore, text: str, expected: set[str]
) -> None:
    """parse_search reads Mailpit's syntax; list and count select exactly the matching messages."""
    names = _structured_mailbox(store)
    query = parse_search(text)
    assert {names[m.id] for m in store.list_messages(query=query)} == expected
    assert store.count_messages(query=query) == len(expected)


def test_unreadable_dates_and_sizes_are_ignored_and_said(store: BaseMessageStore) -> None:
    """after:notadate and larger:abc are left out of the search (both alike), and the
    query says which parts it ignored and why."""
    names = _structured_mailbox(store)
    query = parse_search("after:notadate larger:abc zebra -crossing")
    assert {names[m.id] for m in store.list_messages(query=query)} == {"zoe"}
    assert [part.split(" ")[0] for part in query.ignored] == ["after:notadate", "larger:abc"]
    assert "date" in query.ignored[0] and "size" in query.ignored[1]
    assert parse_search("larger:1k").ignored == ()


def test_read_filter_and_search_words_combine(store: BaseMessageStore) -> None:
    """is:read follows mark_read, and search= words and query= filters must both hold."""
    names = _structured_mailbox(store)
    by_name = {v: k for k, v in names.items()}
    store.mark_read([by_name["zoe"], by_name["plain"]])
    read = {names[m.id] for m in store.list_messages(query=parse_search("is:read"))}
    assert read == {"zoe", "plain"}
    both = store.list_messages(search="zebra", query=parse_search("is:read"))
    assert [names[m.id] for m in both] == ["zoe"]
    assert store.count_messages("zebra", query=parse_search("-is:read")) == 1
    assert store.count_messages_unread() == (5, 3)
    assert store.count_messages_unread("zebra", query=parse_search("-from:bob")) == (2, 1)


def test_summary_keeps_header_recipients_bcc_reply_to_and_snippet(
    store: BaseMessageStore,
) -> None:
    """To/Cc come from the headers, Bcc from envelope-only recipients, plus Reply-To and snippet."""
    raw = _mail("s", "line one\r\n\r\n   line   two " + "y" * 300, to="Bea <bea@x.test>",
                extra="Cc: cid@x.test\r\nReply-To: Help <help@x.test>\r\n")
    new_id = store.add_message(
        raw, mail_from="a@x.test", rcpt_tos=["BEA@x.test", "cid@x.test", "bcc@x.test"],
        peer="127.0.0.1:1",
    )
    summary = store.get_message(new_id)
    assert summary is not None
    assert summary.to_addresses == ("Bea <bea@x.test>",)
    assert summary.cc == ("cid@x.test",)
    assert summary.bcc == ("bcc@x.test",)
    assert summary.reply_to == ("Help <help@x.test>",)
    assert summary.snippet.startswith("line one line two yyy") and len(summary.snippet) == 250
    assert split_address("Bea <bea@x.test>") == ("Bea", "bea@x.test")
    assert split_address("bea@x.test") == ("", "bea@x.test")


def test_version_1_file_is_migrated_and_old_rows_stay_searchable(data_dir: Path) -> None:
    """A store file from schema version 1 opens: new columns added, old rows found by to:."""
    path = data_dir / "mail.db"
    with MessageStore(path) as s:
        old = _add(s, _mail("old", to="Olga <olga@x.test>"))
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX messages_read")
    for column in ("to_list", "cc", "bcc", "reply_to", "snippet"):
        conn.execute(f"ALTER TABLE messages DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with MessageStore(path) as s:
        assert [m.id for m in s.list_messages(query=parse_search("to:olga"))] == [old]
        assert s.get_message(old).snippet == ""  # type: ignore[union-attr]
        new = _add(s, _mail("new", extra="Cc: cc@x.test\r\n"))
        assert [m.id for m in s.list_messages(query=parse_search("cc:cc@x.test"))] == [new]
        assert s.count_messages(query=parse_search("is:unread")) == 2
        s.mark_read([old])
        assert s.count_messages_unread() == (2, 1)
        assert s.count_messages_unread(query=parse_search("cc:cc@x.test")) == (1, 1)


def test_delete_and_clear_remove_rows_raw_and_index(store: BaseMessageStore) -> None:
    """delete_messages and clear_messages remove the summary, the bytes and the search entry."""
    a, b, c = (_add(store, _mail("findme", f"n{i}")) for i in range(3))
    assert store.delete_messages([a, 999]) == 1
    assert store.get_message(a) is None and store.get_raw(a) is None
    assert {m.id for m in store.list_messages(search="findme")} == {b, c}
    assert store.delete_messages([]) == 0
    assert store.clear_messages() == 2
    assert store.count_messages() == 0 and store.count_messages("findme") == 0
    assert store.get_raw(b) is None


def test_ids_are_not_reused_after_delete(store: BaseMessageStore) -> None:
    """A new message never gets the id of a deleted one (followers rely on it)."""
    first = _add(store, _mail())
    store.clear_messages()
    assert _add(store, _mail()) > first


def test_mark_read(store: BaseMessageStore) -> None:
    """mark_read sets and clears the read flag."""
    a = _add(store, _mail())
    store.mark_read([a])
    assert store.get_message(a).read is True  # type: ignore[union-attr]
    store.mark_read([a], read=False)
    assert store.get_message(a).read is False  # type: ignore[union-attr]


def test_duplicate_message_id_points_at_first(store: BaseMessageStore) -> None:
    """A message whose Message-ID was seen before is marked with the id of the first one."""
    first = _add(store, _mail(message_id="<dup@example.test>"))
    other = _add(store, _mail(message_id="<other@example.test>"))
    second = _add(store, _mail(message_id=" <dup@example.test> "))
    none = _add(store, _mail())
    assert store.get_message(first).duplicate_of is None  # type: ignore[union-attr]
    assert store.get_message(other).duplicate_of is None  # type: ignore[union-attr]
    assert store.get_message(second).duplicate_of == first  # type: ignore[union-attr]
    assert store.get_message(none).duplicate_of is None  # type: ignore[union-attr]
    assert [m.id for m in store.find_by_message_id("dup@example.test")] == [first, second]
    assert [m.id for m in store.find_by_message_id("<dup@example.test>")] == [first, second]
    assert store.find_by_message_id("") == []


def test_duplicate_of_a_deleted_first_points_at_earliest_remaining(
    store: BaseMessageStore,
) -> None:
    """With the first copy deleted, a new copy points at the earliest copy still stored."""
    first = _add(store, _mail(message_id="<d@x.test>"))
    second = _add(store, _mail(message_id="<d@x.test>"))
    store.delete_messages([first])
    third = _add(store, _mail(message_id="<d@x.test>"))
    assert store.get_message(third).duplicate_of == second  # type: ignore[union-attr]
    store.clear_messages()
    fresh = _add(store, _mail(message_id="<d@x.test>"))
    assert store.get_message(fresh).duplicate_of is None  # type: ignore[union-attr]
    assert [m.id for m in store.find_by_message_id("d@x.test")] == [fresh]


def test_bare_lf_is_flagged_not_changed(store: BaseMessageStore) -> None:
    """A message with bare LF line endings is stored unchanged and flagged in its notes."""
    raw = b"From: a@x.test\nSubject: lf\n\nline one\n.dot line\n"
    new_id = _add(store, raw)
    assert store.get_raw(new_id) == raw
    assert "bare LF line endings" in store.get_message(new_id).notes  # type: ignore[union-attr]
    crlf = _add(store, _mail())
    assert "bare LF line endings" not in store.get_message(crlf).notes  # type: ignore[union-attr]


def test_unparseable_bytes_are_stored(store: BaseMessageStore) -> None:
    """Bytes that are not a message at all are still stored exactly."""
    raw = bytes(range(256)) * 4
    new_id = _add(store, raw)
    assert store.get_raw(new_id) == raw


def test_data_survives_reopening(data_dir: Path) -> None:
    """Messages and rules written by one MessageStore are read by the next one on the file."""
    first = MessageStore(data_dir / "m.db")
    new_id = _add(first, _mail("kept"))
    first.add_chaos_rule(ChaosRule(stage="rcpt", code=451))
    first.close()
    second = MessageStore(data_dir / "m.db")
    try:
        assert second.get_message(new_id).subject == "kept"  # type: ignore[union-attr]
        assert len(second.list_chaos_rules()) == 1
    finally:
        second.close()


def test_closed_store_refuses_new_threads(store: BaseMessageStore) -> None:
    """After close(), using the store from a new thread raises instead of reopening."""
    store.close()
    errors: list[BaseException] = []

    def use() -> None:
        try:
            store.count_messages()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_concurrent_writers_lose_nothing(store: BaseMessageStore) -> None:
    """Eight threads adding at once: every message stored, ids unique."""
    ids: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(25):
            new_id = _add(store, _mail(f"t{n}-{i}"))
            with lock:
                ids.append(new_id)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 200 and store.count_messages() == 200


def test_brief_lock_by_another_writer_is_waited_out(sqlite_store: MessageStore) -> None:
    """A write while another connection holds the write lock waits for it instead of failing."""
    store = sqlite_store
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        new_id = _add(store, _mail("after lock"))
    finally:
        release.join()
        other.close()
    assert store.get_message(new_id) is not None


def test_change_watcher_sees_commits_from_other_connections(sqlite_store: MessageStore) -> None:
    """changed() is True once after another connection commits, then False until the next."""
    store = sqlite_store
    watcher = store.change_watcher()
    try:
        assert watcher.changed() is False
        other = MessageStore(store.path)
        try:
            _add(other, _mail())
        finally:
            other.close()
        assert watcher.changed() is True
        assert watcher.changed() is False
        _add(store, _mail())  # the store's own connection is another connection too
        assert watcher.changed() is True
    finally:
        watcher.close()


def test_change_watcher_sees_each_kind_of_change(store: BaseMessageStore) -> None:
    """A new message, a deletion, a rule and a fault each make changed() True once."""
    watcher = store.change_watcher()
    try:
        assert watcher.changed() is False
        new_id = _add(store, _mail())
        assert watcher.changed() is True and watcher.changed() is False
        store.delete_messages([new_id])
        assert watcher.changed() is True
        store.add_chaos_rule(ChaosRule(stage="rcpt", code=451))
        assert watcher.changed() is True
        store.record_fault(stage="rcpt", kind="reject", peer="p", reply="451")
        assert watcher.changed() is True and watcher.changed() is False
    finally:
        watcher.close()


def test_chaos_rules_round_trip(store: BaseMessageStore) -> None:
    """Rules are kept with an id, listed in order, removed one by one or all at once."""
    a = store.add_chaos_rule(ChaosRule(stage="rcpt", code=451, match="*@fail.test", probability=50))
    b = store.add_chaos_rule(ChaosRule(stage="data", delay_ms=1500, per="connection"))
    assert a.id is not None and b.id is not None and a.id != b.id
    assert store.list_chaos_rules() == [a, b]
    assert store.remove_chaos_rule(a.id) is True
    assert store.remove_chaos_rule(a.id) is False
    assert store.list_chaos_rules() == [b]
    assert store.clear_chaos_rules() == 1
    assert store.list_chaos_rules() == []


def test_master_switch_keeps_rules_but_applies_none(store: BaseMessageStore) -> None:
    """With chaos off, the rules are listed but none is in force."""
    rule = store.add_chaos_rule(ChaosRule(stage="connect", code=421))
    assert store.chaos_enabled() is True
    assert store.active_chaos_rules() == [rule]
    store.set_chaos_enabled(False)
    assert store.chaos_enabled() is False
    assert store.list_chaos_rules() == [rule]
    assert store.active_chaos_rules() == []
    store.set_chaos_enabled(True)
    assert store.active_chaos_rules() == [rule]


def test_fault_log_order_and_following(store: BaseMessageStore) -> None:
    """list_faults: oldest first; after_id follows the log; without it, the latest `limit`."""
    ids = [
        store.record_fault(stage="rcpt", kind="reject", peer="p", reply=f"451 n{i}", rule_id=1)
        for i in range(5)
    ]
    store.record_fault(stage="data", kind="too-big", peer="p", reply="552 too big")
    faults = store.list_faults()
    assert [f.id for f in faults][:5] == ids
    assert faults[-1].rule_id is None and faults[-1].injected is False
    assert faults[0].injected is True
    assert [f.id for f in store.list_faults(limit=2)] == [ids[4], faults[-1].id]
    assert [f.id for f in store.list_faults(after_id=ids[1], limit=2)] == ids[2:4]
    assert store.clear_faults() == 6
    assert store.list_faults() == []


@pytest.mark.parametrize(
    "text",
    ["to:bob@bücher.example", "to:bob@xn--bcher-kva.example", "to:bücher", "bücher",
     "bob@bücher.example"],
)
def test_an_internationalised_domain_is_found_in_either_form(
    store: BaseMessageStore, text: str
) -> None:
    """Mail to bob@bücher.example travels as bob@xn--bcher-kva.example; a search in either
    form finds it (a test written for Mailpit waits for `to:` with the address it signed up)."""
    wanted = _add(store, _mail("Activate", to="bob@xn--bcher-kva.example"),
                  rcpt="bob@xn--bcher-kva.example")
    _add(store, _mail("Other", to="carol@example.test"), rcpt="carol@example.test")
    query = parse_search(text)
    assert [m.id for m in store.list_messages(query=query)] == [wanted]
    assert store.count_messages(query=query) == 1
