"""MIME to a view model: what the inbox, ``mailroom show --json`` and the store read.

:func:`parse_message` turns the stored bytes of a captured message into a
:class:`ParsedMessage` (decoded headers, the text and HTML bodies to show, the
attachment list and notes on what could not be read). It never raises, whatever
the bytes: captured mail is untrusted and often broken.

How it reads mail
-----------------
* Structure: a small parser of its own works on offsets into the original bytes
  (see "structure" below for why not :mod:`email.parser`). Headers are read
  leniently (white space before the colon, an mbox ``From`` line); boundaries are
  found at line starts, quoted or not, a longer boundary that merely begins with
  the declared one is not taken for it; a multipart without a usable boundary gets
  one guessed from its first ``--delimiter`` line, else is shown as text. A part
  without Content-Type is text/plain (message/rfc822 inside multipart/digest).
* Header values: unfolded, RFC 2047 encoded words decoded in any charset (through
  :mod:`mailcatcher.charsets`' alias table), adjacent words joined (their bytes are
  joined before decoding, so a character split across two words survives), raw
  8-bit bytes read as UTF-8 or else windows-1252. Control characters are kept:
  display code calls :func:`make_visible`.
* Bodies are decoded with their declared charset whatever the transfer encoding;
  undeclared 8-bit text is read as UTF-8, else windows-1252, with a note. Line
  ends of the text and HTML bodies are given as ``\n``.
* ``multipart/alternative``: the last (richest) text/plain and text/html are used.
  ``multipart/mixed`` and others: the first inline text/plain and text/html are the
  bodies; further inline text/plain parts without a file name are appended to the
  text, other parts are attachments. A nested ``message/rfc822`` is one attachment (named after its
  filename, else its subject, + ``.eml``; its bytes are the inner message exactly
  as sent); its text is used as the body only when the outer message has none.
* Attachments: every leaf part that is not a body is listed, so nothing is hidden
  and ``index`` is stable. Parts of ``multipart/related`` with a Content-ID and no
  ``attachment`` disposition (the images an HTML body shows through ``cid:``), and
  parts marked ``Content-Disposition: inline``, get ``disposition="inline"``; all
  others ``"attachment"``. Count ``disposition == "attachment"`` for a paper-clip
  mark. :func:`get_inline_parts` serves ``cid:`` URLs from any part with a
  Content-ID. ``filename`` is the decoded name as sent (it may contain ``/``):
  pass it through :func:`safe_filename` before saving.
* Limits: nesting deeper than 40 levels and more than 2,000 parts are not read
  (with a note), so hostile input stays fast.
"""

from __future__ import annotations

import binascii
import email.utils
import functools
import mimetypes
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from mailcatcher.charsets import decode_bytes, decode_undeclared, lookup_charset

__all__ = [
    "Attachment",
    "Header",
    "ParsedMessage",
    "get_attachment",
    "get_inline_parts",
    "make_visible",
    "parse_message",
    "safe_filename",
]

# Deeper nesting than this is not walked (a message can nest itself thousands deep).
MAX_DEPTH = 40
# Parts beyond this many are not read (a note says so).
MAX_PARTS = 2000
# Header lines of one part beyond this many are not read.
MAX_HEADERS = 5000
# Header characters decoded per message; the rest are shown as written (unfolded).
DECODE_BUDGET = 512 * 1024
# Addresses read per address header.
MAX_ADDRESSES = 1000
# Header values up to this long are remembered once read (see _Remembered).
REMEMBER_CHARS = 1000
REMEMBER_VALUES = 1024

_R = TypeVar("_R")
_S = TypeVar("_S", str, bytes)


def _remembered_if_short(fn: Callable[[_S], _R]) -> Callable[[_S], _R]:
    """fn(value), remembered for values up to REMEMBER_CHARS long (see _Remembered)."""
    remember = functools.lru_cache(maxsize=REMEMBER_VALUES)(fn)

    @functools.wraps(fn)
    def call(value: _S) -> _R:
        return fn(value) if len(value) > REMEMBER_CHARS else remember(value)

    return call


class _Remembered(Generic[_R]):
    """fn(value, notes), computed once per short value and then remembered.

    Most header values recur in every message from one sender (From, Subject, each
    part's Content-Type; the Date within a second), and reading them was most of the
    time spent on a small message. fn must be a pure function of the value whose
    result is immutable; the notes it adds are replayed to every caller. Values
    over REMEMBER_CHARS are not kept, so hostile mail cannot fill memory.
    """

    def __init__(self, fn: Callable[[str, list[str]], _R]) -> None:
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self._remember = functools.lru_cache(maxsize=REMEMBER_VALUES)(self._compute)
        self.cache_info = self._remember.cache_info
        self.cache_clear = self._remember.cache_clear

    def _compute(self, value: str) -> tuple[_R, tuple[str, ...]]:
        added: list[str] = []
        return self.__wrapped__(value, added), tuple(added)

    def __call__(self, value: str, notes: list[str] | None) -> _R:
        if len(value) > REMEMBER_CHARS:
            return self.__wrapped__(value, notes if notes is not None else [])
        result, added = self._remember(value)
        if notes is not None:
            notes.extend(added)
        return result


@dataclass(frozen=True)
class Header:
    """One header as it is shown: the name as written, the value decoded and unfolded.

    The value may contain control characters (a decoded CR LF, say): display code
    passes it through :func:`make_visible`.
    """

    name: str
    value: str


@dataclass(frozen=True)
class Attachment:
    """One part that is not a body: its decoded name, type, size and placement."""

    index: int
    filename: str
    content_type: str
    size: int
    content_id: str | None
    disposition: str  # "attachment" or "inline"

    def to_json(self) -> dict[str, Any]:
        """The attachment as plain JSON types."""
        return {
            "index": self.index,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "content_id": self.content_id,
            "disposition": self.disposition,
        }


@dataclass(frozen=True)
class ParsedMessage:
    """A captured message as the views show it. Built by :func:`parse_message`."""

    headers: tuple[Header, ...]
    subject: str
    from_: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    message_id: str | None
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The message as plain JSON types (what ``mailroom show --json`` prints)."""
        return {
            "headers": [{"name": h.name, "value": h.value} for h in self.headers],
            "subject": self.subject,
            "from": self.from_,
            "to": list(self.to),
            "cc": list(self.cc),
            "date": self.date.isoformat() if self.date is not None else None,
            "message_id": self.message_id,
            "text": self.text,
            "html": self.html,
            "attachments": [a.to_json() for a in self.attachments],
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- text


_SURROGATES = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Text without lone surrogates, so that it can always be written as UTF-8."""
    if _SURROGATES.search(text) is None:
        return text
    return _SURROGATES.sub("\ufffd", text)


def _raw_to_text(value: str, notes: list[str] | None = None) -> str:
    """A header string from the parser (8-bit bytes kept as surrogates) as real text."""
    if _SURROGATES.search(value) is None:
        return value
    data = value.encode("ascii", "surrogateescape") if value.isascii() else _to_bytes(value)
    text, note = decode_undeclared(data)
    if note and notes is not None:
        notes.append(f"8-bit bytes in a header, {note}")
    return _clean(text)


def _to_bytes(value: str) -> bytes:
    """The bytes behind a parser string: surrogates back to bytes, the rest as UTF-8."""
    return value.encode("utf-8", "surrogateescape")


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_EDGE_NEWLINES = re.compile(r"^[\r\n]+|[\r\n]+$")


def _unfold(value: str) -> str:
    """A header value with its folding removed (CRLF before white space) and trimmed."""
    if "\n" in value or "\r" in value:
        unfolded = value.replace("\r\n ", " ").replace("\r\n\t", "\t")  # the usual folding
        if "\n" in unfolded or "\r" in unfolded:
            return _unfold_scan(value)
        value = unfolded
    return value.strip(" \t")


def _unfold_scan(value: str) -> str:
    value = _FOLD.sub("", value)
    value = _EDGE_NEWLINES.sub("", value)
    return value.strip(" \t")


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*?)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_q(text: str) -> bytes:
    data = _to_bytes(text).replace(b"_", b" ")
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def _decode_b(text: str) -> bytes | None:
    data = re.sub(r"[^A-Za-z0-9+/]", "", text)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    data += "=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str, notes: list[str] | None = None) -> str:
    """A header value with its RFC 2047 encoded words decoded; never raises.

    Encoded words are recognised anywhere (also inside quotes and glued to other
    text, as broken mailers write them). White space between two encoded words is
    dropped; consecutive words in the same charset are joined as bytes first.
    Raw 8-bit bytes outside encoded words are read as UTF-8, else windows-1252.
    """
    if "=?" not in value:  # no encoded word: what the scan would give
        return _raw_to_text(value, notes)
    return _decode_words_scan(value, notes)


def _decode_words_scan(value: str, notes: list[str] | None) -> str:
    pieces: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    position = 0
    last_was_word = False

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            text, note = decode_bytes(b"".join(pending), pending_charset)
            if note and notes is not None:
                notes.append(f"encoded word: {note}")
            pieces.append(_clean(text))
        pending = []
        pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        if not (last_was_word and between.strip(" \t\r\n") == ""):
            flush()
            pieces.append(_raw_to_text(between, notes))
        charset, kind, payload = match.group(1), match.group(2).lower(), match.group(3)
        data = _decode_q(payload) if kind == "q" else _decode_b(payload)
        if data is None:
            flush()
            if notes is not None:
                notes.append("a broken base64 encoded word was left as written")
            pieces.append(_raw_to_text(match.group(0), notes))
            last_was_word = False
        else:
            label = charset.split("*", 1)[0]
            if pending and (lookup_charset(label) or label) != (
                lookup_charset(pending_charset) or pending_charset
            ):
                flush()
            pending.append(data)
            pending_charset = label
            last_was_word = True
        position = match.end()
    flush()
    pieces.append(_raw_to_text(value[position:], notes))
    return "".join(pieces)


def decode_header_value(value: str, notes: list[str] | None = None) -> str:
    """A raw header value from the parser, unfolded and decoded for display."""
    return _decode_header_value(value, notes)


@_Remembered
def _decode_header_value(value: str, notes: list[str]) -> str:
    try:
        return decode_words(_unfold(value), notes)
    except Exception as exc:  # belt and braces: a header must never sink the message
        notes.append(f"a header could not be decoded ({type(exc).__name__})")
        return _clean(_unfold(value))


# ----------------------------------------------------------------------- visible

_CONTROL_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)}
_CONTROL_PICTURES[0x7F] = "\u2421"
# Characters that change how the text around them is shown: bidi overrides, embeddings
# and isolates, directional marks, zero-width characters, line and paragraph
# separators, the byte-order mark, interlinear annotations.
_INVISIBLE = frozenset(
    [0x061C, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0x2060]
    + list(range(0x202A, 0x202F))
    + list(range(0x2066, 0x206A))
    + [0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB]
)


def _visible_char(char: str) -> str:
    code = ord(char)
    if code in _CONTROL_PICTURES:
        return _CONTROL_PICTURES[code]
    if 0x80 <= code <= 0x9F or code in _INVISIBLE or 0xD800 <= code <= 0xDFFF:
        return f"<U+{code:04X}>"
    return char


_NEEDS_VISIBLE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060"
    "\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def make_visible(text: str) -> str:
    """Text with control and direction-changing characters shown as visible symbols.

    C0 controls and DEL become Unicode control pictures (CR → ``␍``, LF → ``␊``,
    NUL → ``␀``, ESC → ``␛``); C1 controls, bidi overrides and isolates, zero-width
    characters, line/paragraph separators and lone surrogates become ``<U+XXXX>``.
    Ordinary text, including TAB, is unchanged.
    """
    return _NEEDS_VISIBLE.sub(lambda m: _visible_char(m.group(0)), text)


# ---------------------------------------------------------------------- filenames

_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]')
_RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"com{i}" for i in range(10)]
    + [f"lpt{i}" for i in range(10)]
    + ["com¹", "com²", "com³", "lpt¹", "lpt²", "lpt³"]
)
MAX_FILENAME_BYTES = 200


def safe_filename(name: str) -> str:
    """A name that is safe to save to disk on any platform, close to the one given.

    Path separators, ``..``, control, format (bidi) and Windows-reserved characters
    are replaced by ``_``; leading dots and trailing dots and spaces are removed;
    device names (``CON``, ``nul.txt``, ``COM1``) get a leading ``_``; the name is cut
    to 200 UTF-8 bytes keeping its extension; an empty result is ``attachment``.
    """
    name = _clean(unicodedata.normalize("NFC", name))
    name = "".join("_" if unicodedata.category(c) in ("Cf", "Zl", "Zp") else c for c in name)
    parts = [p for p in re.split(r"[/\\]", name) if p.strip(" .")]
    name = _UNSAFE_IN_NAME.sub("_", "_".join(parts))
    name = re.sub(r"\.{2,}", ".", name)
    name = name.strip(" \t").lstrip(".").rstrip(". ")
    if not name.strip("_ "):
        name = "attachment" + (name if name.startswith(".") else "")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.split(".")[0].strip().lower() in _RESERVED_NAMES or not stem:
        stem = "_" + stem
    ext = ext[:20]
    suffix = f".{ext}" if dot else ""
    budget = MAX_FILENAME_BYTES - len(suffix.encode("utf-8"))
    stem_bytes = stem.encode("utf-8")
    if len(stem_bytes) > budget:
        stem = stem_bytes[:budget].decode("utf-8", "ignore").rstrip(". ")
    return (stem or "attachment") + suffix


# ------------------------------------------------------------------- structure
#
# The MIME tree is found here rather than by email.parser: that parser feeds the
# message line by line (seconds for a 40 MiB attachment), keeps no byte offsets (a
# nested message could not be saved as sent) and drops every header after one that
# is slightly malformed. This one works on offsets into the original bytes, finds
# boundaries with bytes.find, and copies a payload only when it is decoded.

_TOKEN_TYPE = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+$")
_IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})


@dataclass
class _Part:
    """One node of the MIME tree: raw headers and where its body lies in buf."""

    headers: list[tuple[str, str]]  # raw names and values; 8-bit bytes as surrogates
    buf: bytes
    start: int  # body start in buf
    end: int  # body end in buf
    content_type: str
    children: list[_Part] = field(default_factory=list)
    inner: _Part | None = None  # the message inside a message/rfc822 part
    multipart_broken: bool = False  # a multipart whose parts could not be found

    # Values by lower-case name, built on first lookup.
    _by_name: dict[str, list[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key, value in self.headers:
            index.setdefault(key.lower(), []).append(value)
        self._by_name = index
        return index

    def header(self, name: str) -> str | None:
        """The first raw value of a header (name in lower case), or None."""
        values = (self._by_name or self._index()).get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        """Every raw value of a header (name in lower case), in order."""
        return list((self._by_name or self._index()).get(name, ()))


@dataclass
class _Budget:
    """Limits shared by one parse, so hostile nesting cannot make it slow."""

    notes: list[str]
    parts: int = 0
    warned_depth: bool = False
    warned_parts: bool = False


def _bytes_to_str(data: bytes) -> str:
    return data.decode("ascii", "surrogateescape")


_HEADER_NAME_OK = re.compile(r"^[^\x00-\x20\x7f:][^\x00-\x08\x0a-\x1f\x7f:]{0,199}$")


_HEADER_FROM = re.compile(rb"From[ \t]*:")


def _split_headers(
    buf: bytes, start: int, end: int, notes: list[str]
) -> tuple[list[tuple[str, str]], int]:
    """The header block that begins at start, and where the body begins.

    Lenient like the mail clients people use: white space before the colon and
    spaces inside a name are accepted; a leading mbox ``From `` line is skipped. A
    line that is no header ends the block (it is the first body line).
    """
    plain = _split_plain_headers(buf, start, end)
    if plain is not None:
        return plain
    return _split_headers_scan(buf, start, end, notes)


@_remembered_if_short
def _plain_header_name(raw: bytes) -> str | None:
    """The name before a colon, stripped, or None if it is not a usable name."""
    name = _bytes_to_str(raw).strip(" \t")
    if not name or not _HEADER_NAME_OK.match(name):
        return None
    return name


def _split_plain_headers(
    buf: bytes, start: int, end: int
) -> tuple[list[tuple[str, str]], int] | None:
    """The common case at C speed: CRLF lines, every line a header or a folded
    continuation, then an empty line. None when anything else occurs (the scan then
    reads the block line by line, with all of its leniency and notes)."""
    sep = buf.find(b"\r\n\r\n", start, end)
    if sep <= start:
        return None
    block = buf[start:sep]
    if block.count(b"\n") != block.count(b"\r\n") or block.startswith(b"From "):
        return None
    lines = block.split(b"\r\n")
    if len(lines) > MAX_HEADERS:
        return None
    names: list[str] = []
    values: list[list[str]] = []
    for line in lines:
        if not line.strip(b" \t\r"):
            return None
        if line[:1] in (b" ", b"\t"):
            if not names:
                return None
            values[-1].append(_bytes_to_str(line))
            continue
        colon = line.find(b":")
        if colon <= 0:
            return None
        name = _plain_header_name(line[:colon])
        if name is None:
            return None
        names.append(name)
        values.append([_bytes_to_str(line[colon + 1 :])])
    if len(names) > MAX_HEADERS:
        return None
    return [(n, "\r\n".join(v)) for n, v in zip(names, values, strict=True)], sep + 4


def _split_headers_scan(
    buf: bytes, start: int, end: int, notes: list[str]
) -> tuple[list[tuple[str, str]], int]:
    names: list[str] = []
    values: list[list[str]] = []  # the lines of each value, joined once at the end
    pos = start
    first = True
    body_start = end
    while pos < end:
        newline = buf.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline
        next_pos = end if newline < 0 else newline + 1
        line = buf[pos:line_end]
        if line.endswith(b"\r"):
            line = line[:-1]
        folded_next = buf[next_pos : next_pos + 1] in (b" ", b"\t")
        if not line.strip(b" \t\r"):
            if line and names and folded_next:
                pos = next_pos  # obsolete folding: a blank line inside a folded header
                continue
            body_start = next_pos
            break
        if first and line.startswith(b"From ") and not _HEADER_FROM.match(line):
            first = False  # mbox envelope line, not a header
            pos = next_pos
            continue
        first = False
        if line[:1] in (b" ", b"\t") and names:
            values[-1].append(_bytes_to_str(line))
            pos = next_pos
            continue
        colon = line.find(b":")
        name = _bytes_to_str(line[:colon]).strip(" \t") if colon > 0 else ""
        if name and _HEADER_NAME_OK.match(name):
            if len(names) >= MAX_HEADERS:
                notes.append(f"more than {MAX_HEADERS} header lines; the rest are not shown")
                body_start = _find_blank_line(buf, pos, end)
                break
            names.append(name)
            values.append([_bytes_to_str(line[colon + 1 :])])
            pos = next_pos
            continue
        if names and folded_next:
            values[-1].append(" " + _bytes_to_str(line))  # junk, then a folded line
            notes.append(f"a malformed line was read as part of the {_raw_to_text(name)} header")
            pos = next_pos
            continue
        if names:
            notes.append("a line in the header block is not a header; the body starts there")
        body_start = pos
        break
    return [(n, "\r\n".join(v)) for n, v in zip(names, values, strict=True)], body_start


def _find_blank_line(buf: bytes, start: int, end: int) -> int:
    """Where the body begins after the first empty line from start (end if none)."""
    found = [i for i in (buf.find(b"\n\r\n", start, end), buf.find(b"\n\n", start, end)) if i >= 0]
    if not found:
        return end
    first = min(found)
    return first + (3 if buf[first + 1 : first + 2] == b"\r" else 2)


def _parse_content_type(part_headers: _Part, default: str, notes: list[str]) -> str:
    raw = part_headers.header("content-type")
    if raw is None:
        return default
    value = _split_params(raw)[0][0].lower()
    value = re.sub(r"\s+", "", value)
    if not _TOKEN_TYPE.match(value):
        notes.append(f"invalid Content-Type {_raw_to_text(value)[:60]!r}, read as text/plain")
        return "text/plain"
    return value


def _delimiter_tail(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """After ``--boundary`` at pos: (number of dashes, end of the line before its LF).

    The tail of a delimiter line is dashes, blanks, an optional CR, then LF or the
    end of the range; None if the line goes on with anything else. Scanned by hand
    rather than with a regular expression, because a pattern would embed the
    boundary, and every message has a new boundary, so each would be compiled anew
    (about a fifth of the parsing time of small multipart mail).
    """
    i = pos
    while i < end and buf[i] == 0x2D:  # -
        i += 1
    dashes = i - pos
    while i < end and buf[i] in (0x20, 0x09):  # space, tab
        i += 1
    if i < end and buf[i] == 0x0D:  # CR
        i += 1
    if i == end or buf[i] == 0x0A:  # LF
        return dashes, i
    return None


def _split_multipart(
    buf: bytes, start: int, end: int, boundary: bytes
) -> tuple[list[tuple[int, int]], bool]:
    """The (start, end) of each body part between delimiter lines, and whether it closed.

    A delimiter is ``--boundary`` at the start of a line followed only by white
    space (or by dashes: a closing delimiter, ``--`` or a mistyped ``-``); a longer
    boundary that merely begins with this one is not one. The line break before a
    delimiter belongs to it, not to the part. At most MAX_PARTS spans are returned.
    """
    spans: list[tuple[int, int]] = []
    part_start: int | None = None
    dash_boundary = b"--" + boundary
    if buf.startswith(dash_boundary, start, end):
        first = _delimiter_tail(buf, start + len(dash_boundary), end)
        if first is not None:
            if first[0]:
                return spans, True
            part_start = min(first[1] + 1, end)
    needle = b"\n" + dash_boundary
    # From the line break that ended the first delimiter: the next may follow at once.
    search_from = start if part_start is None else max(start, part_start - 1)
    while True:
        found = buf.find(needle, search_from, end)
        if found < 0:
            break
        tail = _delimiter_tail(buf, found + len(needle), end)
        if tail is None:
            search_from = found + 1
            continue
        dashes, line_end = tail
        if part_start is not None:
            part_end = found
            if part_end > part_start and buf[part_end - 1 : part_end] == b"\r":
                part_end -= 1
            spans.append((part_start, max(part_start, part_end)))
            if len(spans) >= MAX_PARTS:
                return spans, False
        if dashes:
            return spans, True
        part_start = min(line_end + 1, end)
        search_from = line_end
    if part_start is not None:
        spans.append((part_start, end))
    return spans, False


_GUESS_BOUNDARY = re.compile(rb"(?m)^--([0-9A-Za-z'()+_,./:=?-]{1,70}?)(?:--)?[ \t]*\r?$")


def _guess_boundary(buf: bytes, start: int, end: int) -> bytes | None:
    """A boundary read from the first delimiter-like line of a body (first 64 KiB)."""
    match = _GUESS_BOUNDARY.search(buf, start, min(end, start + 65536))
    return match.group(1) if match else None


def _transfer_decode(data: bytes | memoryview, encoding: str, notes: list[str]) -> bytes:
    """data with its Content-Transfer-Encoding undone; unknown encodings leave it as is."""
    if encoding in _IDENTITY_ENCODINGS:
        return bytes(data)
    if encoding == "base64":
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
            cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else None]
            notes.append("broken base64 was decoded as far as possible")
            try:
                return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
            except (binascii.Error, ValueError):
                return bytes(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    if encoding in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return _uudecode(bytes(data))
    notes.append(f"unknown transfer encoding {_raw_to_text(encoding)[:40]!r}, shown undecoded")
    return bytes(data)


def _uudecode(data: bytes) -> bytes:
    out = bytearray()
    lines = data.splitlines()
    inside = not any(line.startswith(b"begin ") for line in lines)
    for line in lines:
        if not inside:
            inside = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            length = ((line[0] - 32) & 63) * 4 + 5
            try:
                out += binascii.a2b_uu(line[: length // 3])
            except binascii.Error:
                pass
    return bytes(out)


def _encoding(part: _Part) -> str:
    value = part.header("content-transfer-encoding")
    return _raw_to_text(_unfold(value)).strip().lower() if value is not None else ""


def _build_part(
    buf: bytes, start: int, end: int, depth: int, default_type: str, budget: _Budget
) -> _Part:
    """The MIME tree of the entity in buf[start:end]."""
    notes = budget.notes
    budget.parts += 1
    headers, body_start = _split_headers(buf, start, end, notes)
    part = _Part(headers, buf, body_start, end, "text/plain")
    part.content_type = _parse_content_type(part, default_type, notes)
    if depth >= MAX_DEPTH:
        if not budget.warned_depth:
            notes.append(f"MIME nesting deeper than {MAX_DEPTH} levels was not read")
            budget.warned_depth = True
        return part
    if budget.parts >= MAX_PARTS:
        if not budget.warned_parts:
            notes.append(f"more than {MAX_PARTS} MIME parts; the rest were not read")
            budget.warned_parts = True
        return part
    maintype = part.content_type.split("/", 1)[0]
    if maintype == "multipart":
        _build_children(part, depth, budget)
    elif part.content_type in ("message/rfc822", "message/global"):
        encoding = _encoding(part)
        inner_buf, inner_start, inner_end = buf, body_start, end
        if encoding not in _IDENTITY_ENCODINGS:
            inner_buf = _transfer_decode(buf[body_start:end], encoding, notes)
            inner_start, inner_end = 0, len(inner_buf)
        budget.notes = []
        try:
            part.inner = _build_part(
                inner_buf, inner_start, inner_end, depth + 1, "text/plain", budget
            )
        finally:
            notes.extend(f"attached message: {note}" for note in budget.notes)
            budget.notes = notes
    return part


def _build_children(part: _Part, depth: int, budget: _Budget) -> None:
    notes = budget.notes
    raw_boundary = _param_raw(part, "boundary", "content-type")
    buf, start, end = part.buf, part.start, part.end
    encoding = _encoding(part)
    if encoding not in _IDENTITY_ENCODINGS:  # illegal on a multipart, but it happens
        buf = _transfer_decode(buf[start:end], encoding, notes)
        start, end = 0, len(buf)
        part.buf, part.start, part.end = buf, start, end
    spans: list[tuple[int, int]] = []
    closed = False
    boundary = _to_bytes(raw_boundary) if raw_boundary else None
    if boundary:
        spans, closed = _split_multipart(buf, start, end, boundary)
    if not spans:
        guessed = _guess_boundary(buf, start, end)
        if guessed:
            spans, closed = _split_multipart(buf, start, end, guessed)
            if spans:
                what = "without a boundary" if not boundary else "whose boundary never occurs"
                notes.append(
                    f"{part.content_type} {what}: "
                    f"parts split at {_raw_to_text(_bytes_to_str(guessed))!r}"
                )
    if not spans:
        what = "without a boundary" if not boundary else "whose boundary never occurs"
        notes.append(f"{part.content_type} {what}, shown as text")
        part.multipart_broken = True
        return
    if not closed:
        notes.append(f"{part.content_type}: the closing boundary is missing")
    default = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
    for span_start, span_end in spans:
        if span_end - span_start < 1024 and not buf[span_start:span_end].strip():
            continue  # an empty part (two delimiters in a row) is no part
        if budget.parts >= MAX_PARTS:
            if not budget.warned_parts:
                notes.append(f"more than {MAX_PARTS} MIME parts; the rest were not read")
                budget.warned_parts = True
            break
        part.children.append(_build_part(buf, span_start, span_end, depth + 1, default, budget))


def _parse(raw: bytes, notes: list[str]) -> _Part:
    return _build_part(raw, 0, len(raw), 0, "text/plain", _Budget(notes))


# ----------------------------------------------------------------------- params


@_remembered_if_short
def _split_params(value: str) -> tuple[tuple[str, str], ...]:
    """``type; a=1; b="x;y"`` as (("type", ""), ("a", "1"), ("b", '"x;y"'))."""
    value = _unfold(value)
    items: list[str] = []
    if '"' not in value:
        items = value.split(";")
    else:
        _split_quoted(value, items)
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        name, sep, val = item.partition("=")
        if index == 0:
            pairs.append((item.strip(), ""))
        elif sep and name.strip():
            pairs.append(("".join(name.split()).lower(), val.strip()))
    return tuple(pairs)


def _split_quoted(value: str, items: list[str]) -> None:
    """value split at semicolons outside quoted strings, appended to items."""
    if "\\" not in value:
        pieces = value.split('"')
        if len(pieces) % 2 and not any(";" in quoted for quoted in pieces[1::2]):
            items.extend(value.split(";"))  # every quote closed, no ";" inside one
            return
    _split_quoted_scan(value, items)


def _split_quoted_scan(value: str, items: list[str]) -> None:
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))


def _params(part: _Part, header: str) -> tuple[Any, ...]:
    raw = part.header(header)
    if raw is None:
        return ()
    return _decoded_params(raw, None)


@_Remembered
def _decoded_params(raw: str, _notes: list[str]) -> tuple[Any, ...]:
    """The parameters with RFC 2231 continuations joined (values as decode_params gives)."""
    pairs = _split_params(raw)
    try:
        return tuple(email.utils.decode_params(list(pairs)))
    except Exception:
        return pairs


def _param_raw(part: _Part, name: str, header: str) -> str | None:
    """A parameter exactly as written, quotes removed (for boundaries)."""
    for key, value in _split_params(part.header(header) or "")[1:]:
        if key == name:
            return email.utils.unquote(value) if value.startswith('"') else value
    return None


def _param(part: _Part, name: str, header: str, notes: list[str]) -> str | None:
    """A parameter of a header, RFC 2231 and encoded words decoded, or None."""
    value: Any = next((v for k, v in _params(part, header)[1:] if k == name), None)
    if value is None:
        return None
    if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded text)
        charset, _language, text = value
        text = email.utils.unquote(str(text or ""))
        try:  # the parser percent-decodes to one latin-1 character per byte
            data = text.encode("latin-1", "surrogateescape")
        except UnicodeEncodeError:
            data = _to_bytes(text)
        decoded, note = decode_bytes(data, charset or None)
        if note:
            notes.append(f"parameter {name}: {note}")
        return decode_words(_clean(decoded), notes)
    return decode_words(email.utils.unquote(str(value)), notes)


def _disposition(part: _Part) -> str | None:
    value = part.header("content-disposition")
    if value is None:
        return None
    return _raw_to_text(_unfold(value)).split(";", 1)[0].strip().lower() or None


def _content_id(part: _Part) -> str | None:
    value = part.header("content-id")
    if value is None:
        return None
    cid = re.sub(r"\s+", "", _raw_to_text(_unfold(value)))
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1]
    return cid or None


def _payload(part: _Part, notes: list[str]) -> bytes:
    """The part's body with its transfer encoding undone (for a nested message: its bytes)."""
    with memoryview(part.buf) as view:
        return _transfer_decode(view[part.start : part.end], _encoding(part), notes)


def _payload_size(part: _Part) -> int:
    """The decoded size of the part's body, without copying it when it is not encoded."""
    if _encoding(part) in _IDENTITY_ENCODINGS:
        return part.end - part.start
    return len(_payload(part, []))


_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE
)


def _decode_text(part: _Part, notes: list[str]) -> str:
    data = _payload(part, notes)
    charset = _param(part, "charset", "content-type", [])
    if not charset and part.content_type == "text/html":
        # As browsers do: an HTML part without a charset parameter may name one itself.
        match = _META_CHARSET.search(data, 0, 4096)
        charset = match.group(1).decode("ascii") if match else None
    text, note = decode_bytes(data, charset)
    if note:
        notes.append(f"{part.content_type} body: {note}")
    return _clean(text).replace("\r\n", "\n")


# ------------------------------------------------------------------------- walk


@dataclass
class _Walk:
    """What the walk over the MIME tree has found so far."""

    notes: list[str]
    text: str | None = None
    html: str | None = None
    leaves: list[tuple[_Part, str]] = field(default_factory=list)  # (part, disposition)
    nested: list[_Part] = field(default_factory=list)


def _filename(part: _Part, notes: list[str]) -> str | None:
    name = _param(part, "filename", "content-disposition", notes)
    if not name:
        name = _param(part, "name", "content-type", notes)
    return name or None


def _location_name(part: _Part) -> str | None:
    """The last path segment of Content-Location, a name some clients give only there."""
    value = part.header("content-location")
    if value is None:
        return None
    location = re.sub(r"\s+", "", _raw_to_text(_unfold(value))).strip('"<>')
    segment = urllib.parse.unquote(location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
    return segment or None


def _is_body(part: _Part, notes: list[str]) -> bool:
    if part.content_type not in ("text/plain", "text/html"):
        return False
    disposition = _disposition(part)
    if disposition == "attachment":
        return False
    return disposition == "inline" or _filename(part, []) is None


def _walk(part: _Part, state: _Walk, parent: str | None) -> None:
    ctype = part.content_type
    if ctype.startswith("multipart/"):
        if part.multipart_broken or (not part.children and part.end > part.start):
            if state.text is None:
                state.text = _decode_text(part, state.notes)
            return
        if ctype == "multipart/alternative":
            _walk_alternative(part.children, state)
            return
        for child in part.children:
            _walk(child, state, ctype)
        return
    if part.inner is not None:
        state.nested.append(part)
        state.leaves.append((part, "attachment"))
        return
    if _is_body(part, state.notes):
        if ctype == "text/html":
            if state.html is None:
                state.html = _decode_text(part, state.notes)
                return
        elif state.text is None:
            state.text = _decode_text(part, state.notes)
            return
        elif parent != "multipart/alternative" and _filename(part, []) is None:
            state.text += "\n" + _decode_text(part, state.notes)
            return
    disposition = _disposition(part)
    if disposition == "inline" or (
        parent == "multipart/related" and disposition != "attachment" and _content_id(part)
    ):
        state.leaves.append((part, "inline"))
    else:
        state.leaves.append((part, "attachment"))


_OTHER_RENDERINGS = frozenset({"text/enriched", "text/richtext", "text/x-aol", "text/watch-html"})


def _walk_alternative(children: list[_Part], state: _Walk) -> None:
    """The last (richest) alternative of each kind becomes the body; others are walked."""
    best_text: _Part | None = None
    best_html: _Part | None = None
    others: list[_Part] = []
    for child in children:
        if child.content_type == "text/plain" and _disposition(child) != "attachment":
            best_text = child
        elif child.content_type == "text/html" and _disposition(child) != "attachment":
            best_html = child
        elif child.content_type in _OTHER_RENDERINGS:
            continue  # one more rendering of the same text, not a file
        else:
            others.append(child)
    if best_text is not None and state.text is None:
        state.text = _decode_text(best_text, state.notes)
    if best_html is not None and state.html is None:
        state.html = _decode_text(best_html, state.notes)
    for child in others:
        _walk(child, state, "multipart/alternative")


def _walk_message(root: _Part, notes: list[str]) -> _Walk:
    state = _Walk(notes=notes)
    _walk(root, state, None)
    return state


def _attachment(index: int, part: _Part, disposition: str, notes: list[str]) -> Attachment:
    name = _filename(part, notes)
    if not name:
        name = _location_name(part)
    if not name and part.inner is not None:
        subject = _inner_subject(part.inner)
        name = f"{subject}.eml" if subject else "message.eml"
    if not name:
        extension = mimetypes.guess_extension(part.content_type, strict=False)
        if extension is None:
            textual = part.content_type.startswith(("text/", "message/"))
            extension = ".txt" if textual else ".bin"
        name = f"part-{index + 1}{extension}"
    return Attachment(
        index=index,
        filename=_clean(name),
        content_type=part.content_type,
        size=_payload_size(part),
        content_id=_content_id(part),
        disposition=disposition,
    )


def _inner_subject(inner: _Part) -> str:
    subject = inner.header("subject")
    if subject is None:
        return ""
    text = decode_header_value(subject).strip()
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)[:120].strip()


# --------------------------------------------------------------------- addresses


def _split_top_level(value: str, separators: str) -> list[str]:
    """value split at separators that are outside quotes, <angle brackets> and (comments)."""
    if not any(sep in value for sep in separators):
        return [value]
    return _split_top_level_scan(value, separators)


def _split_top_level_scan(value: str, separators: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = comment = 0
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == "(":
            comment += 1
        elif char == ")" and comment:
            comment -= 1
        elif comment:
            pass
        elif char == '"':
            quoted = True
        elif char == "<":
            angle += 1
        elif char == ">" and angle:
            angle -= 1
        elif char in separators and not angle:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return items


def _strip_comments(value: str) -> tuple[str, str]:
    """value without its (comments), and the text of the comments."""
    if "(" not in value:  # no comment can open: the scan would keep every character
        return value, ""
    return _strip_comments_scan(value)


def _strip_comments_scan(value: str) -> tuple[str, str]:
    kept: list[str] = []
    comments: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
            (comments if depth else kept).append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                kept.append(char)
            continue
        if not depth and char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            continue
        elif not quoted and char == ")" and depth:
            depth -= 1
            if not depth:
                comments.append(" ")
            continue
        (comments if depth else kept).append(char)
    return "".join(kept), " ".join("".join(comments).split())


def _last_unquoted(text: str, char: str) -> int:
    """The index of the last `char` outside "quoted strings" in text, or -1."""
    found = -1
    quoted = escaped = False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            found = i
    return found


def _unquote_phrase(phrase: str) -> str:
    out: list[str] = []
    escaped = False
    for char in phrase:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char != '"':
            out.append(char)
    return " ".join("".join(out).split())


def _one_address(item: str, notes: list[str]) -> list[str]:
    text, comment = _strip_comments(item)
    text = text.strip()
    if not text:
        return []
    if "@" not in text and "<" not in text:
        return [decode_words(" ".join(text.split()), notes)]  # a name with no address
    if "<" in text:
        # The address is in the last <...> outside quotes: a quoted name may hold "<".
        start = _last_unquoted(text, "<")
        if start < 0:
            start = text.index("<")
        phrase, rest = text[:start], text[start + 1:]
        address = re.sub(r"\s+", "", rest.split(">", 1)[0])
        address = re.sub(r"^(?:@[^:,]*,?)+:", "", address)  # an obsolete source route
        name = decode_words(_unquote_phrase(phrase), notes).strip()
    else:
        tokens = text.split()
        if len(tokens) > 1 and all("@" in token for token in tokens):
            return [_raw_to_text(token, notes) for token in tokens]  # a missing comma
        if len(tokens) > 1 and "@" in tokens[-1] and not any("@" in t for t in tokens[:-1]):
            address = tokens[-1]  # a name without <>
            name = decode_words(" ".join(tokens[:-1]), notes)
        else:
            address = re.sub(r"\s+", "", text)
            name = decode_words(comment, notes).strip() if comment else ""
    address = _raw_to_text(address, notes)
    return [f"{name} <{address}>" if name and address else name or address]


def _addresses(values: list[str], notes: list[str]) -> tuple[str, ...]:
    """Each address in the headers as ``Name <addr>`` (or ``addr``), names decoded.

    Groups contribute their members; a header with no readable address is shown
    as its decoded text.
    """
    result: list[str] = []
    for raw in values:
        result.extend(_header_addresses(raw[:DECODE_BUDGET], notes))
    return tuple(_clean(address) for address in result[:MAX_ADDRESSES])


@_Remembered
def _header_addresses(raw: str, notes: list[str]) -> tuple[str, ...]:
    """The addresses of one header value (see _addresses)."""
    unfolded = _unfold(raw)
    found: list[str] = []
    for item in _split_top_level(unfolded, ",;")[:MAX_ADDRESSES]:
        group = _split_top_level(item, ":")
        member = group[-1] if len(group) > 1 else item
        found.extend(_one_address(member, notes))
    if not found and unfolded.strip():
        found.append(decode_words(unfolded, notes).strip())
    return tuple(found)


def _date(value: str | None, notes: list[str]) -> datetime | None:
    if value is None:
        return None
    return _header_date(value, notes)


@_Remembered
def _header_date(value: str, notes: list[str]) -> datetime | None:
    text, _comment = _strip_comments(_raw_to_text(_unfold(value)))
    try:
        text = re.sub(r"\s*:\s*", ":", " ".join(text.split()))
        parsed = email.utils.parsedate_to_datetime(text)
    except Exception:
        parsed = None
    if parsed is None:
        notes.append("the Date header could not be read")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# --------------------------------------------------------------------------- API


def parse_message(raw: bytes) -> ParsedMessage:
    """The view model of a captured message's bytes. Never raises, on any input.

    Whatever cannot be read is described in ``notes``; the headers are always there.
    """
    notes: list[str] = []
    try:
        root = _parse(bytes(raw), notes)
        return _build(root, notes)
    except Exception as exc:
        notes.append(f"the message structure could not be read ({type(exc).__name__})")
        return _headers_only(bytes(raw), notes)


def _decoded_headers(root: _Part, notes: list[str]) -> tuple[Header, ...]:
    """All headers decoded, until DECODE_BUDGET characters; the rest shown as written."""
    budget = DECODE_BUDGET
    headers: list[Header] = []
    for name, value in root.headers:
        budget -= len(value)
        if budget >= 0:
            shown = decode_header_value(value, notes)
        else:
            if budget + len(value) >= 0:
                notes.append("headers beyond 512 KiB are shown undecoded")
            shown = _clean(_raw_to_text(_unfold(value)))
        headers.append(Header(_raw_to_text(name, notes), shown))
    return tuple(headers)


def _build(root: _Part, notes: list[str]) -> ParsedMessage:
    headers = _decoded_headers(root, notes)
    subjects = root.all("subject")
    subject = decode_header_value(subjects[0][:DECODE_BUDGET], notes) if subjects else ""
    message_ids = root.all("message-id")
    message_id = _raw_to_text(_unfold(message_ids[0])).strip() if message_ids else None
    dates = root.all("date")
    state = _walk_message(root, notes)
    text, html = state.text, state.html
    if text is None and html is None and state.nested:
        inner = state.nested[0].inner
        if inner is not None:
            inner_state = _walk_message(inner, [])
            text, html = inner_state.text, inner_state.html
    attachments = tuple(
        _attachment(index, part, disposition, notes)
        for index, (part, disposition) in enumerate(state.leaves)
    )
    return ParsedMessage(
        headers=headers,
        subject=subject,
        from_=", ".join(_addresses(root.all("from"), notes)),
        to=_addresses(root.all("to"), notes),
        cc=_addresses(root.all("cc"), notes),
        date=_date(dates[0] if dates else None, notes),
        message_id=message_id or None,
        text=text,
        html=html,
        attachments=attachments,
        notes=tuple(dict.fromkeys(_clean(n) for n in notes)),
    )


def _headers_only(raw: bytes, notes: list[str]) -> ParsedMessage:
    """The last resort: the header block as it is, the rest as text."""
    try:
        headers, body_start = _split_headers(raw, 0, len(raw), notes)
    except Exception:
        headers, body_start = [], 0
    decoded = tuple(Header(_clean(k), _clean(_unfold(v))) for k, v in headers)

    def first(name: str) -> str:
        return next((h.value for h in decoded if h.name.lower() == name), "")

    return ParsedMessage(
        headers=decoded,
        subject=first("subject"),
        from_=first("from"),
        to=(first("to"),) if first("to") else (),
        cc=(first("cc"),) if first("cc") else (),
        date=None,
        message_id=first("message-id") or None,
        text=decode_undeclared(raw[body_start:])[0],
        html=None,
        attachments=(),
        notes=tuple(dict.fromkeys(notes)),
    )


def get_attachment(raw: bytes, index: int) -> tuple[Attachment, bytes] | None:
    """Attachment ``index`` of :func:`parse_message` and its decoded bytes, or None.

    A nested message (``message/rfc822``) comes back as the bytes of the inner
    message exactly as they were sent, ready to save as ``.eml``. Never raises.
    """
    try:
        notes: list[str] = []
        leaves = _walk_message(_parse(bytes(raw), notes), notes).leaves
        if index < 0 or index >= len(leaves):
            return None
        part, disposition = leaves[index]
        return _attachment(index, part, disposition, []), _payload(part, [])
    except Exception:
        return None


def _iter_leaves(part: _Part) -> Iterator[_Part]:
    if part.children:
        for child in part.children:
            yield from _iter_leaves(child)
    elif part.inner is not None:
        yield part
        yield from _iter_leaves(part.inner)
    else:
        yield part


def get_inline_parts(raw: bytes) -> dict[str, tuple[str, bytes]]:
    """Every part with a Content-ID: ``{content-id without <>: (content type, bytes)}``.

    This is what an HTML view needs to resolve ``cid:`` URLs. The first part with a
    given Content-ID wins. Never raises.
    """
    result: dict[str, tuple[str, bytes]] = {}
    try:
        for part in _iter_leaves(_parse(bytes(raw), [])):
            cid = _content_id(part)
            if cid and cid not in result:
                result[cid] = (part.content_type, _payload(part, []))
    except Exception:
        pass
    return result
