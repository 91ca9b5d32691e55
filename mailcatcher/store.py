"""The catcher's SQLite message store: captured messages, full-text search, chaos rules, faults.

One SQLite file in WAL mode. Each message is kept twice over: its raw bytes exactly as
received (table `message_raw`, read only by `get_raw`) and a summary computed once on
receipt (table `messages`: envelope, peer, time, decoded subject/from/to/date, size,
attachment count, Message-ID, duplicate mark, read flag, notes), plus an FTS5 index
over subject, addresses and body text. Lists never touch the raw bytes.

Thread-safety: every thread gets its own connection (created on first use, all closed
by `close()`); writes run in `BEGIN IMMEDIATE` transactions with a busy timeout, so
other processes (`mailroom chaos add`, `mailroom messages`) can use the same file.

`BatchWriter` is the server's write path: a thread that commits whatever messages
and faults are waiting in one transaction (group commit), so many clients cost one
commit, not one each.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import queue
import re
import sqlite3
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Literal, Protocol, Self

from mailcatcher.chaos import ChaosRule, FaultKind, FaultRecord
from mailcatcher.parsing import ParsedMessage, parse_message
from mailcatcher.search import Filter, SearchQuery, domain_forms

__all__ = [
    "BaseMessageStore",
    "BatchWriter",
    "ChangeWatcher",
    "MemoryMessageStore",
    "MessageStore",
    "MessageSummary",
    "PendingFault",
    "PreparedMessage",
    "Watcher",
    "make_fault_row",
    "prepare_message",
    "split_address",
]

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 10_000
# Body text indexed for search is cut here: search covers the first MiB of a body.
MAX_INDEXED_BODY = 1 << 20
NOTE_BARE_LF = "bare LF line endings"
NOTE_DOT_AFTER_BARE_LF = (
    "dot-stuffing undone after a bare LF: a line after a bare LF began with '..' on the "
    "wire and lost one dot, as a sender that stuffs there (smtplib) meant"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,
    peer TEXT NOT NULL,
    subject TEXT NOT NULL,
    from_ TEXT NOT NULL,
    to_ TEXT NOT NULL,
    date TEXT,
    size INTEGER NOT NULL,
    attachment_count INTEGER NOT NULL,
    message_id TEXT,
    message_id_key TEXT,
    duplicate_of INTEGER,
    read INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '[]',
    to_list TEXT NOT NULL DEFAULT '[]',
    cc TEXT NOT NULL DEFAULT '[]',
    bcc TEXT NOT NULL DEFAULT '[]',
    reply_to TEXT NOT NULL DEFAULT '[]',
    snippet TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS messages_message_id_key
    ON messages (message_id_key) WHERE message_id_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS message_raw (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5(
    subject, addresses, body, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS chaos_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stage TEXT NOT NULL,
    code INTEGER,
    message TEXT NOT NULL DEFAULT '',
    delay_ms INTEGER NOT NULL DEFAULT 0,
    drop_connection INTEGER NOT NULL DEFAULT 0,
    probability REAL NOT NULL DEFAULT 100,
    match TEXT,
    per TEXT NOT NULL DEFAULT 'message',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    stage TEXT NOT NULL,
    kind TEXT NOT NULL,
    peer TEXT NOT NULL,
    rule_id INTEGER,
    reply TEXT NOT NULL,
    mail_from TEXT NOT NULL DEFAULT '',
    rcpt_to TEXT NOT NULL DEFAULT '[]',
    delay_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS store_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Version 1 files get the columns added in version 2 (older rows keep the defaults);
# every older file gets INDEXES.
MIGRATE_1_TO_2 = [
    f"ALTER TABLE messages ADD COLUMN {column} TEXT NOT NULL DEFAULT '{default}'"
    for column, default in (
        ("to_list", "[]"), ("cc", "[]"), ("bcc", "[]"), ("reply_to", "[]"), ("snippet", ""),
    )
]
# Every API listing counts all and unread messages: both read this small index, not
# the table (count(*) of 100,000 rows: about 50 ms over the table, a few ms here).
INDEXES = """
DROP INDEX IF EXISTS messages_unread;
CREATE INDEX IF NOT EXISTS messages_read ON messages (read)
"""

SUMMARY_COLUMNS = (
    "id, received_at, mail_from, rcpt_to, peer, subject, from_, to_, date, size, "
    "attachment_count, message_id, duplicate_of, read, notes, to_list, cc, bcc, reply_to, "
    "snippet"
)
# Characters of body text kept as a message's snippet (as Mailpit).
SNIPPET_CHARS = 250


@dataclass(frozen=True)
class MessageSummary:
    """One captured message as lists show it; computed once, on receipt."""

    id: int
    received_at: datetime  # UTC, aware
    mail_from: str  # envelope sender (MAIL FROM)
    rcpt_to: tuple[str, ...]  # envelope recipients (RCPT TO)
    peer: str  # "host:port" of the client
    subject: str  # decoded
    from_: str  # decoded header From
    to: str  # decoded header To
    date: datetime | None  # header Date
    size: int  # bytes as stored
    attachment_count: int
    message_id: str | None  # header Message-ID
    duplicate_of: int | None  # id of the first message with the same Message-ID
    read: bool
    notes: tuple[str, ...]  # e.g. "bare LF line endings", parse notes
    to_addresses: tuple[str, ...] = ()  # header To, one "Name <addr>" or "addr" each
    cc: tuple[str, ...] = ()  # header Cc, likewise
    bcc: tuple[str, ...] = ()  # envelope recipients in neither To nor Cc
    reply_to: tuple[str, ...] = ()  # header Reply-To
    snippet: str = ""  # the first SNIPPET_CHARS characters of the body text, blanks collapsed


@dataclass(frozen=True)
class PreparedMessage:
    """A received message with its summary fields computed, ready to be inserted."""

    raw: bytes
    mail_from: str
    rcpt_to: tuple[str, ...]
    peer: str
    received_at: datetime
    subject: str
    from_: str
    to: str
    date: datetime | None
    attachment_count: int
    message_id: str | None
    notes: tuple[str, ...]
    search_addresses: str
    search_body: str
    to_addresses: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    snippet: str = ""


@dataclass(frozen=True)
class PendingFault:
    """A fault record not yet written (see make_fault_row and BatchWriter.submit_fault)."""

    stage: str
    kind: FaultKind
    peer: str
    rule_id: int | None
    reply: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    delay_ms: int
    created_at: datetime


_TAG_RE = re.compile(r"<[^>]*>")
_SCRIPT_RE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _html_to_text(html: str) -> str:
    return _TAG_RE.sub(" ", _SCRIPT_RE.sub(" ", html))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def message_id_key(value: str | None) -> str | None:
    """The form of a Message-ID used to find duplicates: no blanks, no angle brackets."""
    if value is None:
        return None
    key = value.strip().strip("<>").strip()
    return key or None


def line_ending_notes(raw: bytes) -> tuple[str, ...]:
    """Notes on line endings: bare LF anywhere (the SMTP server adds its own notes)."""
    if raw.count(b"\n") == raw.count(b"\r\n"):
        return ()
    return (NOTE_BARE_LF,)


def split_address(entry: str) -> tuple[str, str]:
    """An address as the parser writes it ("Name <addr>" or "addr") as (name, addr)."""
    entry = entry.strip()
    if entry.endswith(">") and "<" in entry:
        name, _, address = entry[:-1].rpartition("<")
        return name.strip().strip('"').strip(), address.strip()
    return ("", entry) if "@" in entry or not entry else (entry, "")


def _reply_to(parsed: ParsedMessage) -> tuple[str, ...]:
    values = [h.value for h in parsed.headers if h.name.lower() == "reply-to"]
    found = []
    for name, address in getaddresses(values):
        if address or name:
            found.append(f"{name} <{address}>" if name and address else address or name)
    return tuple(found)


def _blind_copies(rcpt_tos: Sequence[str], *headers: tuple[str, ...]) -> tuple[str, ...]:
    """Envelope recipients named in no header: the Bcc of the message, as Mailpit shows it."""
    named = {split_address(a)[1].casefold() for h in headers for a in h}
    return tuple(r for r in rcpt_tos if r.casefold() not in named)


def _snippet(body: str) -> str:
    return " ".join(body[: SNIPPET_CHARS * 8].split())[:SNIPPET_CHARS]


def _summarize(raw: bytes) -> ParsedMessage | None:
    """Parse for the summary; the parser promises never to raise, this guards anyway."""
    try:
        return parse_message(raw)
    except Exception:  # noqa: BLE001 - a message that cannot be read is still stored
        return None


def prepare_message(
    raw: bytes,
    *,
    mail_from: str,
    rcpt_tos: Sequence[str],
    peer: str,
    received_at: datetime | None = None,
    notes: Sequence[str] = (),
) -> PreparedMessage:
    """Compute the summary fields of one message (parsing; may take a while for big mail)."""
    parsed = _summarize(raw)
    all_notes = list(line_ending_notes(raw))
    all_notes.extend(n for n in notes if n not in all_notes)
    if parsed is None:
        all_notes.append("the message could not be parsed; only the raw bytes are kept")
        subject = from_ = to = ""
        date = None
        message_id = None
        attachments = 0
        body = ""
        cc: tuple[str, ...] = ()
        to_list: tuple[str, ...] = ()
        reply_to: tuple[str, ...] = ()
    else:
        all_notes.extend(n for n in parsed.notes if n not in all_notes)
        subject, from_ = parsed.subject, parsed.from_
        to_list, cc = parsed.to, parsed.cc
        to = ", ".join(parsed.to)
        date, message_id = parsed.date, parsed.message_id
        attachments = sum(1 for a in parsed.attachments if a.disposition == "attachment")
        body = parsed.text if parsed.text is not None else _html_to_text(parsed.html or "")
        reply_to = _reply_to(parsed)
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    addresses = " ".join([mail_from, *rcpt_tos, from_, *to_list, *cc])
    if "xn--" in addresses.lower():  # also index bücher.example for xn--bcher-kva.example
        addresses = " ".join(domain_forms(addresses))
    return PreparedMessage(
        raw=bytes(raw),
        mail_from=mail_from,
        rcpt_to=tuple(rcpt_tos),
        peer=peer,
        received_at=received_at or _utcnow(),
        subject=subject,
        from_=from_,
        to=to,
        date=date,
        attachment_count=attachments,
        message_id=message_id,
        notes=tuple(all_notes),
        search_addresses=addresses,
        search_body=body[:MAX_INDEXED_BODY],
        to_addresses=tuple(to_list),
        cc=tuple(cc),
        bcc=_blind_copies(rcpt_tos, to_list, cc),
        reply_to=reply_to,
        snippet=_snippet(body),
    )


def fts_query(search: str) -> str | None:
    """User text to an FTS5 query: every word must occur (as a prefix), no FTS syntax."""
    terms = [t for t in search.split() if t]
    if not terms:
        return None
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)


def _fts_term(text: str) -> str:
    """One word or phrase as an FTS5 phrase whose last word may be a prefix."""
    return '"' + text.replace('"', '""') + '"*'


class Watcher(Protocol):
    """A change signal: changed() says whether the store changed since it was last asked."""

    def changed(self) -> bool: ...

    def close(self) -> None: ...


class BaseMessageStore(ABC):
    """What every message store promises; `MessageStore` (SQLite) and `MemoryMessageStore`.

    Messages are listed newest first; ids grow and are never reused. Search takes
    words that must all occur, each as a word prefix, in the subject, the addresses
    (envelope and headers) or the body text; case and diacritics are ignored.
    """

    # -- messages --------------------------------------------------------------------

    @staticmethod
    def _query(search: str | None, query: SearchQuery | None) -> SearchQuery | None:
        """search and query as one query; None when nothing is asked."""
        words = SearchQuery.words(search) if search else SearchQuery()
        if query is not None:
            words = SearchQuery(words.terms + query.terms, words.filters + query.filters)
        return words or None

    def add_message(
        self,
        raw: bytes,
        *,
        mail_from: str,
        rcpt_tos: Sequence[str],
        peer: str,
        received_at: datetime | None = None,
        notes: Sequence[str] = (),
    ) -> int:
        """Store one message (parsing it for the summary); returns its id."""
        prepared = prepare_message(
            raw, mail_from=mail_from, rcpt_tos=rcpt_tos, peer=peer,
            received_at=received_at, notes=notes,
        )
        return self.add_prepared([prepared])[0]

    def add_prepared(self, items: Sequence[PreparedMessage]) -> list[int]:
        """Store already prepared messages in one transaction; returns their ids in order."""
        ids, _ = self.write_batch(items, ())
        return ids

    @abstractmethod
    def write_batch(
        self, messages: Sequence[PreparedMessage], faults: Sequence[PendingFault]
    ) -> tuple[list[int], list[int]]:
        """Store messages and fault records all at once (all or nothing); returns their ids.

        A message whose Message-ID was seen before gets duplicate_of = the first one's id.
        """

    @abstractmethod
    def list_messages(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
        before_id: int | None = None,
        query: SearchQuery | None = None,
    ) -> list[MessageSummary]:
        """Messages newest first, paged by offset (or by keyset: ids below before_id).

        search: plain words (see the class docstring); query: a structured query
        (mailcatcher.search.parse_search reads Mailpit's syntax into one). Given
        both, a message must match both.
        """

    @abstractmethod
    def count_messages(
        self,
        search: str | None = None,
        *,
        query: SearchQuery | None = None,
        before_id: int | None = None,
    ) -> int:
        """How many messages there are (matching search and query, if given; with
        before_id, only those with a lower id: the count that goes with list_messages'
        pages of the same before_id, however much mail arrives meanwhile)."""

    def count_messages_unread(
        self, search: str | None = None, *, query: SearchQuery | None = None
    ) -> tuple[int, int]:
        """How many messages match (as count_messages), and how many of those are unread."""
        unread = SearchQuery(filters=(Filter("read", False),))
        if query is not None:
            unread = SearchQuery(query.terms, (*query.filters, *unread.filters))
        return (
            self.count_messages(search, query=query),
            self.count_messages(search, query=unread),
        )

    @abstractmethod
    def list_messages_since(self, after_id: int, limit: int = 500) -> list[MessageSummary]:
        """Messages with an id above after_id, oldest first (for following new arrivals)."""

    @abstractmethod
    def messages_after(self, after_id: int) -> tuple[int, int]:
        """(how many messages have an id above after_id, the highest such id or after_id)."""

    @abstractmethod
    def get_message(self, message_id: int) -> MessageSummary | None:
        """The summary of one message, or None."""

    @abstractmethod
    def get_raw(self, message_id: int) -> bytes | None:
        """The message's bytes exactly as received (after SMTP dot-unstuffing), or None."""

    @abstractmethod
    def find_by_message_id(self, header_message_id: str) -> list[MessageSummary]:
        """Every message with this Message-ID (with or without angle brackets), oldest first."""

    @abstractmethod
    def delete_messages(self, ids: Iterable[int]) -> int:
        """Delete these messages; returns how many existed."""

    @abstractmethod
    def clear_messages(self) -> int:
        """Delete every message; returns how many there were."""

    @abstractmethod
    def mark_read(self, ids: Iterable[int], read: bool = True) -> None:
        """Set or clear the read flag of these messages."""

    # -- chaos rules -----------------------------------------------------------------

    @abstractmethod
    def add_chaos_rule(self, rule: ChaosRule) -> ChaosRule:
        """Keep a rule; returns it with its id. Servers apply it from their next connection."""

    @abstractmethod
    def list_chaos_rules(self) -> list[ChaosRule]:
        """Every rule, in the order they were added."""

    @abstractmethod
    def remove_chaos_rule(self, rule_id: int) -> bool:
        """Remove one rule; False if there was no such rule."""

    @abstractmethod
    def clear_chaos_rules(self) -> int:
        """Remove every rule; returns how many there were."""

    @abstractmethod
    def set_chaos_enabled(self, enabled: bool) -> None:
        """The master switch: off keeps the rules but applies none."""

    @abstractmethod
    def chaos_enabled(self) -> bool:
        """The master switch (on unless turned off)."""

    def active_chaos_rules(self) -> list[ChaosRule]:
        """The rules in force right now: none when the master switch is off."""
        return self.list_chaos_rules() if self.chaos_enabled() else []

    # -- faults ----------------------------------------------------------------------

    def record_fault(
        self,
        *,
        stage: str,
        kind: FaultKind,
        peer: str,
        reply: str,
        rule_id: int | None = None,
        mail_from: str = "",
        rcpt_to: Sequence[str] = (),
        delay_ms: int = 0,
        created_at: datetime | None = None,
    ) -> int:
        """Log one injected fault or rejection; returns its id."""
        row = make_fault_row(
            stage=stage, kind=kind, peer=peer, reply=reply, rule_id=rule_id,
            mail_from=mail_from, rcpt_to=rcpt_to, delay_ms=delay_ms, created_at=created_at,
        )
        return self.write_batch((), [row])[1][0]

    @abstractmethod
    def list_faults(self, *, limit: int = 100, after_id: int = 0) -> list[FaultRecord]:
        """The fault log, oldest first.

        With after_id > 0: the first `limit` faults after that id (to follow the log).
        With after_id = 0: the latest `limit` faults.
        """

    @abstractmethod
    def clear_faults(self) -> int:
        """Empty the fault log; returns how many entries there were."""

    # -- life ------------------------------------------------------------------------

    @abstractmethod
    def change_watcher(self) -> Watcher:
        """A watcher whose changed() says whether anything was committed since last asked."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's resources; it cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChangeWatcher:
    """Says whether anyone (any connection, any process) committed to the store since last asked.

    Uses `PRAGMA data_version` on a connection of its own; cheap enough to poll often.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._version = self._read()

    def _read(self) -> int:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def changed(self) -> bool:
        """True if the store changed since the previous call (or since creation)."""
        with self._lock:
            version = self._read()
            if version != self._version:
                self._version = version
                return True
            return False

    def close(self) -> None:
        """Close the watcher's connection."""
        with self._lock:
            self._conn.close()


class MessageStore(BaseMessageStore):
    """Captured messages, chaos rules and the fault log in one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        """Open (and create if missing) the store at path.

        synchronous=NORMAL in WAL mode survives a crash of the process (SIGKILL) but
        not of the machine; FULL also survives a power cut, at a cost per commit.
        busy_timeout_ms: how long a write waits for another writer's lock before
        failing with sqlite3.OperationalError (the server then answers 451).
        """
        self.busy_timeout_ms = int(busy_timeout_ms)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        # One connection per OS thread id (see core.db.Database for why not threading.local:
        # a Qt pool thread would get a new one, and a new connection, for every job).
        self._conns: dict[int, sqlite3.Connection] = {}
        self._conns_lock = threading.Lock()
        self._closed = False
        self._create_schema(self._conn())

    # -- connections -----------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        ident = threading.get_ident()
        conn = self._conns.get(ident)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError("the message store is closed")
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None,
            timeout=self.busy_timeout_ms / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        with self._conns_lock:
            self._conns[ident] = conn
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # under the lock
            if version == 1:
                for statement in MIGRATE_1_TO_2:
                    conn.execute(statement)
            for statement in (SCHEMA + ";" + INDEXES).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: object, *rest: object) -> None:
            if exc_type is None:
                self.conn.execute("COMMIT")
            else:
                self.conn.execute("ROLLBACK")

    def _write(self, conn: sqlite3.Connection | None = None) -> MessageStore._Tx:
        return MessageStore._Tx(conn or self._conn())

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, {}
        for conn in conns.values():
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass

    # -- messages: writing -------------------------------------------------------------

    def write_batch(
        self, messages: Sequence[PreparedMessage], faults: Sequence[PendingFault]
    ) -> tuple[list[int], list[int]]:
        """Insert messages and fault records in one transaction (the group commit)."""
        with self._write() as conn:
            ids = [self._insert_message(conn, m) for m in messages]
            fault_ids = [self._insert_fault(conn, f) for f in faults]
        return ids, fault_ids

    @staticmethod
    def _insert_message(conn: sqlite3.Connection, m: PreparedMessage) -> int:
        key = message_id_key(m.message_id)
        duplicate_of = None
        if key is not None:
            row = conn.execute(
                "SELECT min(id) FROM messages WHERE message_id_key = ?", (key,)
            ).fetchone()
            duplicate_of = row[0]
        cur = conn.execute(
            "INSERT INTO messages (received_at, mail_from, rcpt_to, peer, subject, from_, to_,"
            " date, size, attachment_count, message_id, message_id_key, duplicate_of, notes,"
            " to_list, cc, bcc, reply_to, snippet)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _iso(m.received_at), m.mail_from, json.dumps(list(m.rcpt_to)), m.peer,
                m.subject, m.from_, m.to, _iso(m.date) if m.date else None, len(m.raw),
                m.attachment_count, m.message_id, key, duplicate_of, json.dumps(list(m.notes)),
                _json_list(m.to_addresses), _json_list(m.cc), _json_list(m.bcc),
                _json_list(m.reply_to), m.snippet,
            ),
        )
        message_id = cur.lastrowid
        assert message_id is not None
        conn.execute("INSERT INTO message_raw (id, data) VALUES (?, ?)", (message_id, m.raw))
        conn.execute(
            "INSERT INTO message_fts (rowid, subject, addresses, body) VALUES (?, ?, ?, ?)",
            (message_id, m.subject, m.search_addresses, m.search_body),
        )
        return message_id

    @staticmethod
    def _insert_fault(conn: sqlite3.Connection, f: PendingFault) -> int:
        cur = conn.execute(
            "INSERT INTO faults (created_at, stage, kind, peer, rule_id, reply, mail_from,"
            " rcpt_to, delay_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _iso(f.created_at), f.stage, f.kind, f.peer, f.rule_id, f.reply, f.mail_from,
                json.dumps(list(f.rcpt_to)), f.delay_ms,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def delete_messages(self, ids: Iterable[int]) -> int:
        """Delete these messages; returns how many existed."""
        wanted = [(int(i),) for i in ids]
        if not wanted:
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM messages WHERE id = ?", wanted)
            deleted = conn.total_changes - before
            conn.executemany("DELETE FROM message_raw WHERE id = ?", wanted)
            conn.executemany("DELETE FROM message_fts WHERE rowid = ?", wanted)
        return deleted

    def clear_messages(self) -> int:
        """Delete every message; returns how many there were."""
        with self._write() as conn:
            count = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
            conn.execute("DELETE FROM messages")
            conn.execute("DELETE FROM message_raw")
            conn.execute("DELETE FROM message_fts")
        return count

    def mark_read(self, ids: Iterable[int], read: bool = True) -> None:
        """Set or clear the read flag of these messages."""
        rows = [(1 if read else 0, int(i)) for i in ids]
        if rows:
            with self._write() as conn:
                conn.executemany("UPDATE messages SET read = ? WHERE id = ?", rows)

    # -- messages: reading -------------------------------------------------------------

    @staticmethod
    def _summary(row: Sequence[Any]) -> MessageSummary:
        received = _from_iso(row[1])
        assert received is not None
        return MessageSummary(
            id=row[0], received_at=received, mail_from=row[2],
            rcpt_to=tuple(json.loads(row[3])), peer=row[4], subject=row[5], from_=row[6],
            to=row[7], date=_from_iso(row[8]), size=row[9], attachment_count=row[10],
            message_id=row[11], duplicate_of=row[12], read=bool(row[13]),
            notes=tuple(json.loads(row[14])), to_addresses=tuple(json.loads(row[15])),
            cc=tuple(json.loads(row[16])), bcc=tuple(json.loads(row[17])),
            reply_to=tuple(json.loads(row[18])), snippet=row[19],
        )

    def list_messages(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
        before_id: int | None = None,
        query: SearchQuery | None = None,
    ) -> list[MessageSummary]:
        """Messages newest first, paged by offset (or by keyset: ids below before_id).

        search: words that must all occur (as word prefixes) in the subject, the
        addresses (envelope and headers) or the body text. query: a structured query
        (words through the FTS index, fields through the summary columns).
        """
        limit, offset = max(0, int(limit)), max(0, int(offset))
        source, where, params = _sql_query(self._query(search, query))
        if before_id is not None:
            where.append("m.id < ?")
            params.append(int(before_id))
        columns = ", ".join("m." + c.strip() for c in SUMMARY_COLUMNS.split(","))
        sql = (
            f"SELECT {columns} FROM {source}"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY m.id DESC LIMIT ? OFFSET ?"
        )
        rows = self._conn().execute(sql, (*params, limit, offset)).fetchall()
        return [self._summary(r) for r in rows]

    def count_messages(
        self,
        search: str | None = None,
        *,
        query: SearchQuery | None = None,
        before_id: int | None = None,
    ) -> int:
        """How many messages there are (matching search and query, if given; with
        before_id, only those with a lower id)."""
        source, where, params = _sql_query(self._query(search, query))
        sql = f"SELECT count(*) FROM {source}" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        if before_id is not None:
            # All less the newest, in one statement (one snapshot): the newest are a short
            # range of ids, while "id < before_id" would walk the whole table.
            newer = " AND ".join([*where, "m.id >= ?"])
            sql = f"SELECT ({sql}) - (SELECT count(*) FROM {source} WHERE {newer})"
            params = [*params, *params, int(before_id)]
        return int(self._conn().execute(sql, params).fetchone()[0])

    def count_messages_unread(
        self, search: str | None = None, *, query: SearchQuery | None = None
    ) -> tuple[int, int]:
        """How many messages match, and how many of those are unread (in one pass)."""
        q = self._query(search, query)
        if q is None:  # two index-only counts beat one pass over the table
            return super().count_messages_unread()
        source, where, params = _sql_query(q)
        sql = f"SELECT count(*), total(m.read = 0) FROM {source}" + (
            " WHERE " + " AND ".join(where) if where else ""
        )
        found, unread = self._conn().execute(sql, params).fetchone()
        return int(found), int(unread)

    def list_messages_since(self, after_id: int, limit: int = 500) -> list[MessageSummary]:
        """Messages with an id above after_id, oldest first (for following new arrivals)."""
        rows = self._conn().execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?",
            (int(after_id), int(limit)),
        ).fetchall()
        return [self._summary(r) for r in rows]

    def messages_after(self, after_id: int) -> tuple[int, int]:
        """(how many messages have an id above after_id, the highest such id or after_id)."""
        count, last = self._conn().execute(
            "SELECT count(*), max(id) FROM messages WHERE id > ?", (int(after_id),)
        ).fetchone()
        return int(count), int(last if last is not None else after_id)

    def get_message(self, message_id: int) -> MessageSummary | None:
        """The summary of one message, or None."""
        row = self._conn().execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE id = ?", (int(message_id),)
        ).fetchone()
        return self._summary(row) if row else None

    def get_raw(self, message_id: int) -> bytes | None:
        """The message's bytes exactly as received (after SMTP dot-unstuffing), or None."""
        row = self._conn().execute(
            "SELECT data FROM message_raw WHERE id = ?", (int(message_id),)
        ).fetchone()
        return bytes(row[0]) if row else None

    def find_by_message_id(self, header_message_id: str) -> list[MessageSummary]:
        """Every message with this Message-ID (with or without angle brackets), oldest first."""
        key = message_id_key(header_message_id)
        if key is None:
            return []
        rows = self._conn().execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE message_id_key = ? ORDER BY id",
            (key,),
        ).fetchall()
        return [self._summary(r) for r in rows]

    # -- chaos rules -----------------------------------------------------------------

    def add_chaos_rule(self, rule: ChaosRule) -> ChaosRule:
        """Keep a rule; returns it with its id. Servers apply it from their next connection."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO chaos_rules (stage, code, message, delay_ms, drop_connection,"
                " probability, match, per, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rule.stage, rule.code, rule.message, rule.delay_ms, int(rule.drop),
                    float(rule.probability), rule.match, rule.per, _iso(_utcnow()),
                ),
            )
        return dataclasses.replace(rule, id=cur.lastrowid)

    def list_chaos_rules(self) -> list[ChaosRule]:
        """Every rule, in the order they were added."""
        rows = self._conn().execute(
            "SELECT id, stage, code, message, delay_ms, drop_connection, probability, match, per"
            " FROM chaos_rules ORDER BY id"
        ).fetchall()
        return self._rules(rows)

    @staticmethod
    def _rules(rows: Sequence[Sequence[Any]]) -> list[ChaosRule]:
        rules = []
        for r in rows:
            try:
                rules.append(
                    ChaosRule(
                        id=r[0], stage=r[1], code=r[2], message=r[3], delay_ms=r[4],
                        drop=bool(r[5]), probability=r[6], match=r[7], per=r[8],
                    )
                )
            except ValueError:
                continue  # a row written by hand that is not a valid rule is ignored
        return rules

    def active_chaos_rules(self) -> list[ChaosRule]:
        """The rules in force right now (one query: the server asks at every message)."""
        rows = self._conn().execute(
            "SELECT id, stage, code, message, delay_ms, drop_connection, probability, match, per"
            " FROM chaos_rules WHERE coalesce((SELECT value FROM store_settings"
            " WHERE key = 'chaos_enabled'), '1') = '1' ORDER BY id"
        ).fetchall()
        return self._rules(rows)

    def remove_chaos_rule(self, rule_id: int) -> bool:
        """Remove one rule; False if there was no such rule."""
        with self._write() as conn:
            cur = conn.execute("DELETE FROM chaos_rules WHERE id = ?", (int(rule_id),))
        return cur.rowcount > 0

    def clear_chaos_rules(self) -> int:
        """Remove every rule; returns how many there were."""
        with self._write() as conn:
            cur = conn.execute("DELETE FROM chaos_rules")
        return cur.rowcount

    def set_chaos_enabled(self, enabled: bool) -> None:
        """The master switch: off keeps the rules but applies none."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO store_settings (key, value) VALUES ('chaos_enabled', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                ("1" if enabled else "0",),
            )

    def chaos_enabled(self) -> bool:
        """The master switch (on unless turned off)."""
        row = self._conn().execute(
            "SELECT value FROM store_settings WHERE key = 'chaos_enabled'"
        ).fetchone()
        return row is None or row[0] == "1"

    # -- faults ----------------------------------------------------------------------

    def list_faults(self, *, limit: int = 100, after_id: int = 0) -> list[FaultRecord]:
        """The fault log, oldest first.

        With after_id > 0: the first `limit` faults after that id (to follow the log).
        With after_id = 0: the latest `limit` faults.
        """
        cols = "id, created_at, stage, kind, peer, rule_id, reply, mail_from, rcpt_to, delay_ms"
        conn = self._conn()
        if after_id > 0:
            rows = conn.execute(
                f"SELECT {cols} FROM faults WHERE id > ? ORDER BY id LIMIT ?",
                (int(after_id), int(limit)),
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {cols} FROM faults ORDER BY id DESC LIMIT ?", (int(limit),)
            ).fetchall()
            rows.reverse()
        faults = []
        for r in rows:
            created = _from_iso(r[1])
            assert created is not None
            faults.append(
                FaultRecord(
                    id=r[0], created_at=created, stage=r[2], kind=r[3], peer=r[4], rule_id=r[5],
                    reply=r[6], mail_from=r[7], rcpt_to=tuple(json.loads(r[8])), delay_ms=r[9],
                )
            )
        return faults

    def clear_faults(self) -> int:
        """Empty the fault log; returns how many entries there were."""
        with self._write() as conn:
            cur = conn.execute("DELETE FROM faults")
        return cur.rowcount

    # -- change signal ---------------------------------------------------------------

    def change_watcher(self) -> ChangeWatcher:
        """A watcher whose changed() says whether anything was committed since last asked."""
        return ChangeWatcher(self.path)


def _json_list(values: Sequence[str]) -> str:
    # Not ASCII-escaped, so that LIKE on the column sees the text as written.
    return json.dumps(list(values), ensure_ascii=False)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# The column each text filter reads (`to_` holds the decoded To header as text, in
# files written before version 2 too).
_FILTER_COLUMNS = {
    "to": "m.to_", "from": "m.from_", "cc": "m.cc", "bcc": "m.bcc", "reply-to": "m.reply_to",
    "subject": "m.subject", "message-id": "coalesce(m.message_id, '')",
}


# Filters on addresses, which match in either form of an internationalised domain.
_ADDRESS_FIELDS = frozenset({"to", "from", "cc", "bcc", "reply-to"})


def _filter_sql(f: Filter) -> tuple[str, list[Any]]:
    """One filter as an SQL condition on the `messages m` row (negation applied)."""
    value = f.value
    params: list[Any] = []
    if f.field in _FILTER_COLUMNS:
        # An address or domain matches in either IDNA form (bücher / xn--bcher-kva).
        forms = domain_forms(str(value)) if f.field in _ADDRESS_FIELDS else (str(value),)
        column = _FILTER_COLUMNS[f.field]
        sql = " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in forms)
        sql = f"({sql})" if len(forms) > 1 else sql
        params.extend(_like(form) for form in forms)
    elif f.field == "read":
        sql = "m.read = 1" if value else "m.read = 0"
    elif f.field == "attachment":
        sql = "m.attachment_count > 0"
    elif f.field in ("before", "after"):
        assert isinstance(value, datetime)
        sql = "m.received_at < ?" if f.field == "before" else "m.received_at >= ?"
        params.append(_iso(value))
    elif f.field in ("larger", "smaller"):
        sql = "m.size > ?" if f.field == "larger" else "m.size < ?"
        params.append(int(value))  # type: ignore[arg-type]
    else:  # tag: Mailroom keeps no tags, so no message has one
        sql = "0"
    return (f"NOT ({sql})" if f.negate else sql), params


def _sql_query(query: SearchQuery | None) -> tuple[str, list[str], list[Any]]:
    """The FROM source, WHERE conditions and parameters that select query's messages."""
    if query is None:
        return "messages m", [], []
    where: list[str] = []
    params: list[Any] = []
    source = "messages m"
    wanted = [_fts_term(t.text) for t in query.terms if not t.negate]
    if wanted:
        source = "message_fts f JOIN messages m ON m.id = f.rowid"
        where.append("message_fts MATCH ?")
        params.append(" ".join(wanted))
    unwanted = [_fts_term(t.text) for t in query.terms if t.negate]
    if unwanted:
        where.append("m.id NOT IN (SELECT rowid FROM message_fts WHERE message_fts MATCH ?)")
        params.append(" OR ".join(unwanted))
    for f in query.filters:
        sql, extra = _filter_sql(f)
        where.append(sql)
        params.extend(extra)
    return source, where, params


def make_fault_row(
    *,
    stage: str,
    kind: FaultKind,
    peer: str,
    reply: str,
    rule_id: int | None = None,
    mail_from: str = "",
    rcpt_to: Sequence[str] = (),
    delay_ms: int = 0,
    created_at: datetime | None = None,
) -> PendingFault:
    """A fault record waiting to be written (see BatchWriter.submit_fault)."""
    return PendingFault(
        stage=stage, kind=kind, peer=peer, rule_id=rule_id, reply=reply, mail_from=mail_from,
        rcpt_to=tuple(rcpt_to), delay_ms=delay_ms, created_at=created_at or _utcnow(),
    )


_Job = tuple[PreparedMessage | PendingFault, "concurrent.futures.Future[int] | asyncio.Future[int]"]


def _settle_async(results: list[tuple[asyncio.Future[int], int | BaseException]]) -> None:
    """Runs in the waiters' event loop: hand each its result (skipping those that gave up)."""
    for future, result in results:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class BatchWriter:
    """A thread that writes submitted messages and faults, many per transaction.

    Whatever is waiting when the thread is free goes into one transaction (at most
    `max_batch` items), so concurrent clients share commits. `submit_*` return a
    concurrent future; `submit_*_async` (from a running event loop) an asyncio future,
    and all of a batch's asyncio futures are resolved with one wake-up of their loop.
    Futures resolve to the new row id once committed, or to the error. A waiter that
    gave up (its client hung up) does not stop the write: what was received is kept.
    """

    def __init__(self, store: BaseMessageStore, *, max_batch: int = 256) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailcatcher-writer", daemon=True)
        self._stopped = False
        self._thread.start()

    def submit_message(self, message: PreparedMessage) -> concurrent.futures.Future[int]:
        """Queue a message for storing; the future gives its id once committed."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._put(message, future)
        return future

    def submit_fault(self, fault: PendingFault) -> concurrent.futures.Future[int]:
        """Queue a fault record; the future gives its id once committed."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._put(fault, future)
        return future

    def submit_message_async(self, message: PreparedMessage) -> asyncio.Future[int]:
        """As submit_message, for a coroutine running in an event loop."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._put(message, future)
        return future

    def submit_fault_async(self, fault: PendingFault) -> asyncio.Future[int]:
        """As submit_fault, for a coroutine running in an event loop."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._put(fault, future)
        return future

    def _put(
        self,
        item: PreparedMessage | PendingFault,
        future: concurrent.futures.Future[int] | asyncio.Future[int],
    ) -> None:
        if self._stopped:
            future.set_exception(RuntimeError("the writer is stopped"))
        else:
            self._queue.put((item, future))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._write(jobs)
            if stop:
                return

    def _write(self, jobs: list[_Job]) -> None:
        messages = [m for m, _ in jobs if isinstance(m, PreparedMessage)]
        faults = [f for f, _ in jobs if isinstance(f, PendingFault)]
        results: list[int | BaseException]
        try:
            ids, fault_ids = self.store.write_batch(messages, faults)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear about it
            results = [exc] * len(jobs)
        else:
            new_ids, new_fault_ids = iter(ids), iter(fault_ids)
            results = [
                next(new_ids) if isinstance(item, PreparedMessage) else next(new_fault_ids)
                for item, _ in jobs
            ]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], Any]]] = {}
        for (_, future), result in zip(jobs, results, strict=True):
            if isinstance(future, asyncio.Future):
                by_loop.setdefault(future.get_loop(), []).append((future, result))
            elif not future.done():
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        for loop, pending in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_async, pending)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._thread.join()


_WORD_RE = re.compile(r"[^\W_]+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _words(text: str) -> list[str]:
    """Words as the SQLite store's FTS5 tokenizer sees them (letters and digits, folded)."""
    return _WORD_RE.findall(_fold(text))


def _has_phrase(columns: Sequence[list[str]], phrase: list[str]) -> bool:
    """True if a column holds the words of phrase in a row, the last one as a prefix."""
    n = len(phrase)
    for words in columns:
        for i in range(len(words) - n + 1):
            if words[i : i + n - 1] == phrase[:-1] and words[i + n - 1].startswith(phrase[-1]):
                return True
    return False


def _filter_holds(f: Filter, m: MessageSummary) -> bool:
    """Whether the un-negated filter holds for m (the twin of _filter_sql)."""
    value = f.value
    texts = {
        "to": m.to, "from": m.from_, "cc": _json_list(m.cc), "bcc": _json_list(m.bcc),
        "reply-to": _json_list(m.reply_to), "subject": m.subject,
        "message-id": m.message_id or "",
    }
    if f.field in texts:
        forms = domain_forms(str(value)) if f.field in _ADDRESS_FIELDS else (str(value),)
        return any(form.casefold() in texts[f.field].casefold() for form in forms)
    if f.field == "read":
        return m.read == value
    if f.field == "attachment":
        return m.attachment_count > 0
    if f.field in ("before", "after"):
        assert isinstance(value, datetime)
        return (m.received_at < value) if f.field == "before" else (m.received_at >= value)
    if f.field in ("larger", "smaller"):
        assert isinstance(value, int)
        return (m.size > value) if f.field == "larger" else (m.size < value)
    return False  # tag: no message has one


@dataclass
class _MemoryRow:
    summary: MessageSummary
    raw: bytes
    words: tuple[list[str], list[str], list[str]]  # subject, addresses, body


class _MemoryWatcher:
    def __init__(self, store: MemoryMessageStore) -> None:
        self._store = store
        self._seen = store._version

    def changed(self) -> bool:
        version = self._store._version
        if version != self._seen:
            self._seen = version
            return True
        return False

    def close(self) -> None:
        pass


class MemoryMessageStore(BaseMessageStore):
    """The in-memory twin of MessageStore: the same promises, nothing on disk.

    For tests and previews; it forgets everything when the process ends.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[int, _MemoryRow] = {}
        self._ids_by_key: dict[str, list[int]] = {}  # Message-ID key -> ids, oldest first
        self._last_id = 0
        self._rules: dict[int, ChaosRule] = {}
        self._last_rule_id = 0
        self._enabled = True
        self._faults: dict[int, FaultRecord] = {}
        self._last_fault_id = 0
        self._version = 0
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("the message store is closed")

    def _changed(self) -> None:
        self._version += 1

    def close(self) -> None:
        """Forget everything."""
        with self._lock:
            self._closed = True
            self._rows.clear()

    def write_batch(
        self, messages: Sequence[PreparedMessage], faults: Sequence[PendingFault]
    ) -> tuple[list[int], list[int]]:
        with self._lock:
            self._check()
            ids = []
            for m in messages:
                self._last_id += 1
                key = message_id_key(m.message_id)
                duplicate_of = None
                if key is not None:
                    same = self._ids_by_key.setdefault(key, [])
                    duplicate_of = same[0] if same else None
                    same.append(self._last_id)
                summary = MessageSummary(
                    id=self._last_id, received_at=m.received_at.astimezone(UTC),
                    mail_from=m.mail_from, rcpt_to=m.rcpt_to, peer=m.peer, subject=m.subject,
                    from_=m.from_, to=m.to, date=m.date, size=len(m.raw),
                    attachment_count=m.attachment_count, message_id=m.message_id,
                    duplicate_of=duplicate_of, read=False, notes=m.notes,
                    to_addresses=m.to_addresses, cc=m.cc, bcc=m.bcc, reply_to=m.reply_to,
                    snippet=m.snippet,
                )
                words = (_words(m.subject), _words(m.search_addresses), _words(m.search_body))
                self._rows[self._last_id] = _MemoryRow(summary, bytes(m.raw), words)
                ids.append(self._last_id)
            fault_ids = []
            for f in faults:
                self._last_fault_id += 1
                self._faults[self._last_fault_id] = FaultRecord(
                    id=self._last_fault_id, created_at=f.created_at.astimezone(UTC),
                    stage=f.stage, kind=f.kind, peer=f.peer, rule_id=f.rule_id, reply=f.reply,
                    mail_from=f.mail_from, rcpt_to=f.rcpt_to, delay_ms=f.delay_ms,
                )
                fault_ids.append(self._last_fault_id)
            if ids or fault_ids:
                self._changed()
            return ids, fault_ids

    def _matching(self, query: SearchQuery | None) -> list[_MemoryRow]:
        rows = list(self._rows.values())
        if query is None:
            return rows
        wanted = [_words(t.text) for t in query.terms if not t.negate]
        phrases = [p for p in wanted if p]
        if wanted and not phrases:
            return []
        unwanted = [p for p in (_words(t.text) for t in query.terms if t.negate) if p]
        return [
            r for r in rows
            if all(_has_phrase(r.words, p) for p in phrases)
            and not any(_has_phrase(r.words, p) for p in unwanted)
            and all(f.holds(_filter_holds(f, r.summary)) for f in query.filters)
        ]

    def list_messages(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
        before_id: int | None = None,
        query: SearchQuery | None = None,
    ) -> list[MessageSummary]:
        with self._lock:
            self._check()
            rows = self._matching(self._query(search, query))
        if before_id is not None:
            rows = [r for r in rows if r.summary.id < before_id]
        rows.sort(key=lambda r: r.summary.id, reverse=True)
        start = max(0, int(offset))
        return [r.summary for r in rows[start : start + max(0, int(limit))]]

    def count_messages(
        self,
        search: str | None = None,
        *,
        query: SearchQuery | None = None,
        before_id: int | None = None,
    ) -> int:
        with self._lock:
            self._check()
            rows = self._matching(self._query(search, query))
        if before_id is not None:
            rows = [r for r in rows if r.summary.id < before_id]
        return len(rows)

    def list_messages_since(self, after_id: int, limit: int = 500) -> list[MessageSummary]:
        with self._lock:
            self._check()
            ids = sorted(i for i in self._rows if i > after_id)[: max(0, int(limit))]
            return [self._rows[i].summary for i in ids]

    def messages_after(self, after_id: int) -> tuple[int, int]:
        with self._lock:
            self._check()
            newer = [i for i in self._rows if i > after_id]
            return len(newer), max(newer, default=int(after_id))

    def get_message(self, message_id: int) -> MessageSummary | None:
        with self._lock:
            self._check()
            row = self._rows.get(int(message_id))
            return row.summary if row else None

    def get_raw(self, message_id: int) -> bytes | None:
        with self._lock:
            self._check()
            row = self._rows.get(int(message_id))
            return row.raw if row else None

    def find_by_message_id(self, header_message_id: str) -> list[MessageSummary]:
        key = message_id_key(header_message_id)
        with self._lock:
            self._check()
            if key is None:
                return []
            return [self._rows[i].summary for i in self._ids_by_key.get(key, [])]

    def delete_messages(self, ids: Iterable[int]) -> int:
        with self._lock:
            self._check()
            deleted = 0
            for i in set(map(int, ids)):
                row = self._rows.pop(i, None)
                if row is None:
                    continue
                deleted += 1
                key = message_id_key(row.summary.message_id)
                if key is not None:
                    self._ids_by_key[key].remove(i)
            if deleted:
                self._changed()
            return deleted

    def clear_messages(self) -> int:
        with self._lock:
            self._check()
            count = len(self._rows)
            self._rows.clear()
            self._ids_by_key.clear()
            self._changed()
            return count

    def mark_read(self, ids: Iterable[int], read: bool = True) -> None:
        with self._lock:
            self._check()
            for i in ids:
                row = self._rows.get(int(i))
                if row is not None:
                    row.summary = dataclasses.replace(row.summary, read=read)
            self._changed()

    def add_chaos_rule(self, rule: ChaosRule) -> ChaosRule:
        with self._lock:
            self._check()
            self._last_rule_id += 1
            saved = dataclasses.replace(rule, id=self._last_rule_id)
            self._rules[self._last_rule_id] = saved
            self._changed()
            return saved

    def list_chaos_rules(self) -> list[ChaosRule]:
        with self._lock:
            self._check()
            return [self._rules[i] for i in sorted(self._rules)]

    def remove_chaos_rule(self, rule_id: int) -> bool:
        with self._lock:
            self._check()
            removed = self._rules.pop(int(rule_id), None) is not None
            if removed:
                self._changed()
            return removed

    def clear_chaos_rules(self) -> int:
        with self._lock:
            self._check()
            count = len(self._rules)
            self._rules.clear()
            self._changed()
            return count

    def set_chaos_enabled(self, enabled: bool) -> None:
        with self._lock:
            self._check()
            self._enabled = bool(enabled)
            self._changed()

    def chaos_enabled(self) -> bool:
        with self._lock:
            self._check()
            return self._enabled

    def list_faults(self, *, limit: int = 100, after_id: int = 0) -> list[FaultRecord]:
        with self._lock:
            self._check()
            ids = sorted(self._faults)
            if after_id > 0:
                chosen = [i for i in ids if i > after_id][: max(0, int(limit))]
            else:
                chosen = ids[-int(limit) :] if limit > 0 else []
            return [self._faults[i] for i in chosen]

    def clear_faults(self) -> int:
        with self._lock:
            self._check()
            count = len(self._faults)
            self._faults.clear()
            self._changed()
            return count

    def change_watcher(self) -> Watcher:
        return _MemoryWatcher(self)
