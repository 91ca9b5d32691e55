"""The catcher's per-message fast paths give exactly what the slow paths they replace give.

Three shortcuts make ingest cheaper: a plain ``<local@domain>`` in MAIL FROM and RCPT TO
skips aiosmtpd's header parser, a CatchingSMTP is built from per-class method tables
instead of aiosmtpd's per-connection ``inspect.getmembers``, and MIME boundaries are
found with ``bytes.find`` instead of a regular expression compiled per boundary; and
the header helpers of the parser (unfolding, encoded words, parameter and address
splitting, comments) return at once when the text holds nothing for their
character-by-character scan to do; and short header values, once read, are remembered.
Each is compared here with the code it stands in for.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcatcher import parsing
from mailcatcher.parsing import parse_message
from mailcatcher.server import CatcherServer, CatchingHandler, CatchingSMTP, _plain_path
from mailcatcher.store import BatchWriter, MessageStore

TRICKY_PATHS = [
    "<>", "<> SIZE=100", "<>x", "<>(comment)", "< >", "<>\t", "<a@b>", "<a@b>x", "<a@b>>",
    "<a@b> SIZE=100 BODY=8BITMIME", "<a@b>  SIZE=1  ", "<a@b>  ", "<a@b>\t", "<a@b> (c) x",
    "<a@b>(c)", "<A.B+tag@Ex-ample.COM>", "<a..b@c>", "<.a@b>", "<a.@b>", "<a@b.>",
    "<a@b..c>", "<a@-b>", "<a@[127.0.0.1]>", '<"a b"@c>', '<"a"@b>', "<@r:a@b>",
    "<@r1,@r2:a@b>", "<a@b", "a@b", "< a@b >", "<a @b>", "<a@ b>", "<üser@exämple.org>",
    "<a@b>\u00e9", "<a@b> \x00", "<a(c)@b>", "<a@b(c)>", "<a\\b@c>", "<{x}|~@d_e.f>",
    "<" + "x" * 70 + "@b>", "<a@b>\r\n", "<a@b>\x0b", "<a@b> \u2003x",
]


@pytest.fixture
def bare_smtp() -> Iterator[SMTP]:
    """aiosmtpd's own SMTP protocol object, never connected."""
    loop = asyncio.new_event_loop()
    try:
        yield SMTP(object(), loop=loop)
    finally:
        loop.close()


def _agrees(smtp: SMTP, arg: str, limit: int = 0) -> None:
    smtp.local_part_limit = limit
    fast = _plain_path(arg, limit)
    if fast is not None:
        assert fast == smtp._getaddr(arg), arg


@pytest.mark.parametrize("arg", TRICKY_PATHS)
def test_plain_path_agrees_with_aiosmtpd_on_tricky_paths(bare_smtp: SMTP, arg: str) -> None:
    """For every tricky path the fast path either declines or returns aiosmtpd's answer."""
    _agrees(bare_smtp, arg)
    _agrees(bare_smtp, arg, limit=2)


def test_plain_path_takes_the_common_paths() -> None:
    """The paths real senders use (with smtplib's SIZE and BODY params) take the fast path."""
    assert _plain_path("<no-reply@mailroom.localhost>", 0) == ("no-reply@mailroom.localhost", "")
    assert _plain_path("<a.b+c@example.com> size=570", 0) == ("a.b+c@example.com", "size=570")
    assert _plain_path("<>", 0) == ("<>", "")


_PATH_CHARS = st.sampled_from(list("ab.@<>-+ \t\"()[]:,\\=é\x00\r") + ["SIZE=1", "x@y.z"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PATH_CHARS, max_size=14).map("".join), st.integers(0, 3))
def test_plain_path_agrees_with_aiosmtpd_on_generated_paths(text: str, limit: int) -> None:
    """On generated paths the fast path either declines or returns aiosmtpd's answer."""
    loop = asyncio.new_event_loop()
    try:
        _agrees(SMTP(object(), loop=loop), "<" + text, limit)
        _agrees(SMTP(object(), loop=loop), text, limit)
    finally:
        loop.close()


def _canonical(value: Any, owner: object, handler: object) -> Any:
    """value in a form that compares equal across two protocol objects built alike."""
    if hasattr(value, "__self__") and hasattr(value, "__func__"):
        role = {id(owner): "self", id(handler): "handler"}.get(id(value.__self__), "other")
        return ("bound", value.__func__, role)
    if isinstance(value, dict):
        return {k: _canonical(v, owner, handler) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_canonical(v, owner, handler) for v in value)
    if isinstance(value, asyncio.Future):
        return ("future", value.done())
    if isinstance(value, asyncio.StreamReader):
        return ("reader", value._limit)  # type: ignore[attr-defined]
    if value is owner:
        return "self"
    return value


def test_fast_init_builds_what_aiosmtpd_builds(tmp_path: Path) -> None:
    """A CatchingSMTP built from cached tables has the attributes aiosmtpd's __init__ gives it."""
    store = MessageStore(tmp_path / "mail.db")
    writer = BatchWriter(store)
    loop = asyncio.new_event_loop()
    try:
        handler = CatchingHandler(store, writer)
        kwargs: dict[str, Any] = {
            "hostname": "mailroom.localhost", "ident": "Mailroom catcher",
            "data_size_limit": 1000, "decode_data": False, "enable_SMTPUTF8": True,
            "loop": loop,
        }
        for _ in range(2):  # the second one is built from the cache
            fast = CatchingSMTP(handler, line_length_limit=4096, **kwargs)
            slow = CatchingSMTP.__new__(CatchingSMTP)
            slow.line_length_limit = 4096
            slow._catcher, slow._live = handler, None
            SMTP.__init__(slow, handler, **kwargs)
            skip = {"_stream_reader_wr", "_source_traceback"}  # weakref to each own reader
            fast_vars = {k: _canonical(v, fast, handler) for k, v in vars(fast).items()
                         if k not in skip}
            slow_vars = {k: _canonical(v, slow, handler) for k, v in vars(slow).items()
                         if k not in skip}
            assert fast_vars == slow_vars
            reader = fast._stream_reader  # type: ignore[attr-defined]
            assert reader is not None and reader._limit == 4096
    finally:
        loop.close()
        writer.close()
        store.close()


def test_server_stores_envelopes_of_fast_and_slow_paths(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """Plain, null, quoted and parameterised paths all reach the store as aiosmtpd reads them."""
    store = MessageStore(tmp_path / "mail.db")
    try:
        with CatcherServer(store, port=free_port()) as server, smtplib.SMTP(*server.address) as c:
            c.sendmail("a.b+c@example.com", ["x@example.org", '"q u"@example.org'],
                       b"Subject: one\r\n\r\nbody\r\n")
            c.sendmail("", ["<@r:y@example.org>"], b"Subject: two\r\n\r\nbody\r\n")
        rows = sorted((m.mail_from, m.rcpt_to) for m in store.list_messages())
    finally:
        store.close()
    assert rows == [
        ("", ("y@example.org",)),
        ("a.b+c@example.com", ("x@example.org", '"q u"@example.org')),
    ]


# --------------------------------------------------------------- MIME boundaries

_TAIL = rb"(-*)[ \t]*\r?(?=\n|\Z)"


def _split_by_regex(
    buf: bytes, start: int, end: int, boundary: bytes
) -> tuple[list[tuple[int, int]], bool]:
    """The regular-expression splitter that parsing used before (the reference)."""
    escaped = re.escape(boundary)
    spans: list[tuple[int, int]] = []
    part_start: int | None = None
    first = re.compile(b"--" + escaped + _TAIL).match(buf, start, end)
    if first is not None:
        if first.group(1):
            return spans, True
        part_start = min(first.end() + 1, end)
    later = re.compile(b"\n--" + escaped + _TAIL)
    search_from = start if part_start is None else max(start, part_start - 1)
    for match in later.finditer(buf, search_from, end):
        if part_start is not None:
            part_end = match.start()
            if part_end > part_start and buf[part_end - 1 : part_end] == b"\r":
                part_end -= 1
            spans.append((part_start, max(part_start, part_end)))
            if len(spans) >= parsing.MAX_PARTS:
                return spans, False
        if match.group(1):
            return spans, True
        part_start = min(match.end() + 1, end)
    if part_start is not None:
        spans.append((part_start, end))
    return spans, False


_PIECES = st.sampled_from(
    [b"--b", b"--bb", b"--b--", b"--b-", b"\n", b"\r\n", b"\r", b" ", b"\t", b"-", b"x", b"b",
     b"--", b".", b"--b \r\n", b"--b--\r\n", b"\n--b\n", b"\n--b\t\n", b"--b \t\r\n",
     b"\r\n--b--\t", b"\n--b-x\n", b"\n--b \rx"]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PIECES, max_size=24).map(b"".join), st.data())
def test_split_multipart_agrees_with_the_regex_splitter(buf: bytes, data: st.DataObject) -> None:
    """For any bytes and range, the find-based splitter returns the regex splitter's spans."""
    start = data.draw(st.integers(0, len(buf)))
    end = data.draw(st.integers(start, len(buf)))
    for boundary in (b"b", b"bb", b"b.b"):
        assert parsing._split_multipart(buf, start, end, boundary) == _split_by_regex(
            buf, start, end, boundary
        )


@pytest.mark.parametrize(
    "buf",
    [b"--b\t\r\nA\r\n--b \t\r\nB\r\n--b--\t\r\n", b"pre\n--b\nA\n--b\t-\nB\n--b---  \r",
     b"--b\r\n\r\n--bb\r\n--b\r\r\n--b--", b"\n--b\n--b\n\n--b--x\n--b--"],
)
def test_split_multipart_agrees_on_delimiter_tails(buf: bytes) -> None:
    """Blanks, CRs and dashes after a delimiter are read as the regex splitter read them."""
    for start in range(len(buf)):
        assert parsing._split_multipart(buf, start, len(buf), b"b") == _split_by_regex(
            buf, start, len(buf), b"b"
        )


# The parser's header helpers: each shortcut must give what its scan gives.
_HEADER_TEXT = st.lists(
    st.sampled_from(["a", "b", " ", "\t", ";", ",", '"', "\\", "(", ")", "<", ">", "=", "=?",
                     "?=", "=?utf-8?q?x?=", "\r\n ", "\n", "\r", "é", "\udcff", "@"]),
    max_size=16,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(_HEADER_TEXT)
def test_header_helper_shortcuts_agree_with_their_scans(value: str) -> None:
    """For any header text, each helper gives exactly what its full scan gives."""
    assert parsing._unfold(value) == parsing._unfold_scan(value)
    fast_notes: list[str] = []
    scan_notes: list[str] = []
    assert parsing.decode_words(value, fast_notes) == parsing._decode_words_scan(
        value, scan_notes)
    assert fast_notes == scan_notes
    fast_items: list[str] = []
    scan_items: list[str] = []
    parsing._split_quoted(value, fast_items)
    parsing._split_quoted_scan(value, scan_items)
    assert fast_items == scan_items
    for separators in (",", ",;"):
        assert parsing._split_top_level(value, separators) == parsing._split_top_level_scan(
            value, separators)
    assert parsing._strip_comments(value) == parsing._strip_comments_scan(value)


def test_header_helper_shortcuts_take_the_common_headers() -> None:
    """The shortcuts apply to the headers of an ordinary message (not dead branches)."""
    assert parsing._unfold(" Activate your account ") == "Activate your account"
    items: list[str] = []
    parsing._split_quoted('text/plain; charset="utf-8"', items)
    assert items == ["text/plain", ' charset="utf-8"']
    assert parsing._split_top_level("Mailroom <noreply@mailroom.localhost>", ",") == [
        "Mailroom <noreply@mailroom.localhost>"]
    assert parsing._strip_comments('"A" <a@b>') == ('"A" <a@b>', "")


_REMEMBERED = [
    parsing._decode_header_value, parsing._decoded_params, parsing._header_addresses,
    parsing._header_date,
]
CORPUS = Path(__file__).resolve().parent.parent / "data" / "mail-gem"


@settings(max_examples=500, deadline=None)
@given(_HEADER_TEXT)
def test_remembered_header_readers_agree_with_reading_afresh(value: str) -> None:
    """For any header text, a remembered reader gives what reading it afresh gives, notes
    included, the first time and every time after."""
    for reader in _REMEMBERED:
        fresh_notes: list[str] = []
        fresh = reader.__wrapped__(value, fresh_notes)
        for _ in range(2):
            notes: list[str] = ["earlier"]
            assert reader(value, notes) == fresh
            assert notes == ["earlier", *fresh_notes]


def test_remembered_notes_are_replayed_to_every_message() -> None:
    """Two messages with the same undecodable Subject both carry the note about it."""
    raw = b"Subject: =?x-unknown-charset?q?caf=E9?=\r\nX-N: %d\r\n\r\nbody\r\n"
    first, second = parse_message(raw % 1), parse_message(raw % 2)
    assert first.notes and first.notes == second.notes
    assert first.subject == second.subject


def test_long_header_values_are_not_remembered() -> None:
    """A header value longer than REMEMBER_CHARS is read every time and never kept."""
    parsing._decode_header_value.cache_clear()
    subject = "x" * (parsing.REMEMBER_CHARS + 1)
    parsed = parse_message(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
    assert parsed.subject == subject
    assert parsing._decode_header_value.cache_info().currsize == 0
    parse_message(b"Subject: short\r\n\r\nbody\r\n")
    assert parsing._decode_header_value.cache_info().currsize == 1


@pytest.mark.parametrize("path", sorted(CORPUS.rglob("*.eml"))[:200], ids=lambda p: p.name)
def test_corpus_parses_the_same_with_or_without_remembered_values(path: Path) -> None:
    """Reading a real message with every remembered value forgotten, then again with them
    all remembered, gives the same view."""
    raw = path.read_bytes()
    for reader in _REMEMBERED:
        reader.cache_clear()
    afresh = parse_message(raw)
    assert parse_message(raw) == afresh


_HEADER_BLOCK_PIECES = st.sampled_from(
    [b"Subject: hi", b"To: a@b", b"X-A:1", b"From: x", b"From x", b"Bad line", b" cont",
     b"\tcont", b"   ", b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\n", b":", b"a b: c", b"\x00",
     b"\xff", b"Name :v", b" ", b"body"]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_HEADER_BLOCK_PIECES, max_size=20).map(b"".join), st.data())
def test_plain_header_blocks_agree_with_the_scan(buf: bytes, data: st.DataObject) -> None:
    """For any bytes and range, the plain-block reader gives the scan's headers and body
    start, or declines."""
    start = data.draw(st.integers(0, len(buf)))
    end = data.draw(st.integers(start, len(buf)))
    plain = parsing._split_plain_headers(buf, start, end)
    if plain is not None:
        notes: list[str] = []
        assert plain == parsing._split_headers_scan(buf, start, end, notes)
        assert notes == []


def test_plain_header_blocks_take_ordinary_mail() -> None:
    """An ordinary header block, folded Content-Type included, takes the plain path."""
    raw = (b"From: A <a@b.example>\r\nTo: c@d.example\r\nContent-Type: multipart/mixed;\r\n"
           b" boundary=\"x\"\r\nSubject: hi\r\n\r\nbody\r\n")
    plain = parsing._split_plain_headers(raw, 0, len(raw))
    assert plain is not None and plain[1] == raw.index(b"body")
    assert [name for name, _ in plain[0]] == ["From", "To", "Content-Type", "Subject"]


def _read(stream: bytes, separator: bytes, feed: Callable[[bytes], bool]) -> int:
    """Hand stream to feed a piece at a time, each up to and with the next separator (as
    StreamReader.readuntil would), until feed says it met the end; where it stopped."""
    pos = 0
    while True:
        end = stream.find(separator, pos)
        if end < 0:
            return -1
        piece, pos = stream[pos : end + len(separator)], end + len(separator)
        if feed(piece):
            return pos


_DATA_PIECES = st.sampled_from(
    [b"a", b"Hello.", b".", b"..", b"\r\n", b"\n", b"\r", b"\n..", b"\r\n.", b"\r\n..",
     b"xxxxxxxxxx", b" ", b"\r\n.\r\n", b".\r\n"]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_DATA_PIECES, max_size=30).map(b"".join), st.sampled_from([None, 40]),
       st.sampled_from([1001, 12]))
def test_data_read_in_blocks_is_data_read_in_lines(
    stream: bytes, size_limit: int | None, line_limit: int
) -> None:
    """Reading DATA in blocks gives what reading it line by line gives: the same end, the
    same content, the same refusal, the same count of dots unstuffed after bare LFs."""
    from mailcatcher.server import _DataLines

    stream += b"\r\n.\r\n"
    lines, blocks = _DataLines(size_limit, line_limit), _DataLines(size_limit, line_limit)
    assert _read(stream, b".\r\n", blocks.feed_block) == _read(stream, b"\r\n", lines.feed_line)
    assert (blocks.content, blocks.state, blocks.received, blocks.unstuffed_after_bare_lf) == (
        lines.content, lines.state, lines.received, lines.unstuffed_after_bare_lf)
