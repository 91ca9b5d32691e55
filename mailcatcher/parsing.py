"""MIME to a view model: what the inbox, ``mailroom show --json`` and the store read.

:func:`parse_message` turns the stored bytes of a captured message into a
:class:`ParsedMessage` (decoded headers, the text and HTML bodies to show, the
attachment list and notes on what could not be read). It never raises, whatever
the bytes: captured mail is untrusted and often broken.

How it reads mail
-----------------
* The structure comes from :mod:`email` with the ``compat32`` policy, which never
  raises while parsing; every header and parameter is then decoded here, one at a
  time, so one bad header (an unknown charset, a broken encoded word) costs a note,
  not the message.
* Header values: unfolded, RFC 2047 encoded words decoded in any charset (through
  :mod:`mailcatcher.charsets`' alias table), adjacent words joined (their bytes are
  joined before decoding, so a character split across two words survives), raw
  8-bit bytes read as UTF-8 or else windows-1252. Control characters are kept:
  display code calls :func:`make_visible`.
* Bodies are decoded with their declared charset whatever the transfer encoding;
  undeclared 8-bit text is read as UTF-8, else windows-1252, with a note.
* ``multipart/alternative``: the last (richest) text/plain and text/html are used.
  ``multipart/mixed``: the first inline text/plain and text/html are the bodies;
  further inline text/plain parts are appended to the text, other parts are
  attachments. A nested ``message/rfc822`` is one attachment (named after its
  filename, else its subject, + ``.eml``); its text is used as the body only when
  the outer message has none.
* Attachments: every leaf part that is not a body is listed, so nothing is hidden
  and ``index`` is stable. Parts of ``multipart/related`` with a Content-ID and no
  ``attachment`` disposition (the images an HTML body shows through ``cid:``), and
  parts marked ``Content-Disposition: inline``, get ``disposition="inline"``; all
  others ``"attachment"``. Count ``disposition == "attachment"`` for a paper-clip
  mark. :func:`get_inline_parts` serves ``cid:`` URLs from any part with a
  Content-ID.
* A ``multipart/*`` without a boundary (or whose boundary never occurs) is shown as
  plain text with a note.
"""

from __future__ import annotations

import binascii
import email
import email.message
import email.utils
import mimetypes
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.generator import BytesGenerator
from io import BytesIO
from typing import Any

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
# Leaf parts beyond this many are not listed (a note says so).
MAX_PARTS = 2000

Message = email.message.Message


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
    try:
        return decode_words(_unfold(value), notes)
    except Exception as exc:  # belt and braces: a header must never sink the message
        if notes is not None:
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


# ------------------------------------------------------------------------- parts


def _parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email_policy.compat32)


def _raw_header(part: Message, header: str) -> str | None:
    """The first raw value of a header (8-bit bytes kept as surrogates), or None."""
    wanted = header.lower()
    for name, value in part.raw_items():
        if name.strip().lower() == wanted and isinstance(value, str):
            return value
    return None


def _split_params(value: str) -> list[tuple[str, str]]:
    """``type; a=1; b="x;y"`` as [("type", ""), ("a", "1"), ("b", '"x;y"')]."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in _unfold(value):
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
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        name, sep, val = item.partition("=")
        if index == 0:
            pairs.append((item.strip(), ""))
        elif sep and name.strip():
            pairs.append((name.strip().lower(), val.strip()))
    return pairs


def _param(part: Message, name: str, header: str, notes: list[str]) -> str | None:
    """A parameter of a header, RFC 2231 and encoded words decoded, or None."""
    raw = _raw_header(part, header)
    if raw is None:
        return None
    params: list[Any]
    try:
        params = email.utils.decode_params(_split_params(raw))
    except Exception:
        params = _split_params(raw)
    value: Any = next((v for k, v in params[1:] if k == name), None)
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


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "text/plain"


def _disposition(part: Message) -> str | None:
    value = _raw_header(part, "content-disposition")
    if value is None:
        return None
    return _unfold(value).split(";", 1)[0].strip().lower() or None


def _content_id(part: Message) -> str | None:
    value = _raw_header(part, "content-id")
    if value is None:
        return None
    cid = _raw_to_text(_unfold(value)).strip()
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1].strip()
    return cid or None


def _payload_bytes(part: Message) -> bytes:
    """The part's body with its transfer encoding undone, never raising."""
    if _content_type(part) == "message/rfc822" or part.is_multipart():
        return _message_bytes(part)
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return _to_bytes(payload) if isinstance(payload, str) else b""


def _message_bytes(part: Message) -> bytes:
    """The bytes of a message/rfc822 part's inner message, or of a multipart part."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return _to_bytes(payload)
    target = part
    if _content_type(part) == "message/rfc822" and isinstance(payload, list) and payload:
        if isinstance(payload[0], Message):
            target = payload[0]
    buffer = BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=email_policy.compat32).flatten(target)
    except Exception:
        try:
            return _to_bytes(target.as_string())
        except Exception:
            return b""
    return buffer.getvalue()


def _decode_text(part: Message, notes: list[str]) -> str:
    data = _payload_bytes(part)
    text, note = decode_bytes(data, _param(part, "charset", "content-type", []))
    if note:
        notes.append(f"{_content_type(part)} body: {note}")
    return _clean(text)


@dataclass
class _Walk:
    """What the walk over the MIME tree has found so far."""

    notes: list[str]
    text: str | None = None
    html: str | None = None
    leaves: list[tuple[Message, str]] = field(default_factory=list)  # (part, disposition)
    nested: list[Message] = field(default_factory=list)
    truncated: bool = False


def _filename(part: Message, notes: list[str]) -> str | None:
    name = _param(part, "filename", "content-disposition", notes)
    if not name:
        name = _param(part, "name", "content-type", notes)
    return name or None


def _is_body(part: Message, ctype: str, notes: list[str]) -> bool:
    if ctype not in ("text/plain", "text/html"):
        return False
    disposition = _disposition(part)
    if disposition == "attachment":
        return False
    return disposition == "inline" or _filename(part, notes) is None


def _walk(part: Message, state: _Walk, depth: int, parent: str | None) -> None:
    if depth > MAX_DEPTH:
        if not state.truncated:
            state.notes.append(f"MIME nesting deeper than {MAX_DEPTH} levels was not read")
            state.truncated = True
        return
    ctype = _content_type(part)
    if ctype.startswith("multipart/"):
        children = part.get_payload()
        if not isinstance(children, list) or not part.is_multipart():
            state.notes.append(f"{ctype} without a usable boundary, shown as text")
            if state.text is None:
                state.text = _decode_text(part, state.notes)
            return
        if ctype == "multipart/alternative":
            _walk_alternative(children, state, depth)
            return
        for child in children:
            if isinstance(child, Message):
                _walk(child, state, depth + 1, ctype)
        return
    if ctype == "message/rfc822" and depth > 0:
        state.nested.append(part)
        _add_leaf(part, state, "attachment")
        return
    if _is_body(part, ctype, state.notes):
        if ctype == "text/html":
            if state.html is None:
                state.html = _decode_text(part, state.notes)
                return
        elif state.text is None:
            state.text = _decode_text(part, state.notes)
            return
        elif parent != "multipart/alternative":
            state.text += "\n" + _decode_text(part, state.notes)
            return
    disposition = _disposition(part)
    if disposition == "inline" or (
        parent == "multipart/related" and disposition != "attachment" and _content_id(part)
    ):
        _add_leaf(part, state, "inline")
    else:
        _add_leaf(part, state, "attachment")


def _walk_alternative(children: list[Any], state: _Walk, depth: int) -> None:
    """The richest alternative of each kind becomes the body; the others are skipped."""
    parts = [c for c in children if isinstance(c, Message)]
    best_text: Message | None = None
    best_html: Message | None = None
    others: list[Message] = []
    for child in parts:
        ctype = _content_type(child)
        if ctype == "text/plain" and _disposition(child) != "attachment":
            best_text = child
        elif ctype == "text/html" and _disposition(child) != "attachment":
            best_html = child
        else:
            others.append(child)
    if best_text is not None and state.text is None:
        state.text = _decode_text(best_text, state.notes)
    if best_html is not None and state.html is None:
        state.html = _decode_text(best_html, state.notes)
    for child in others:
        _walk(child, state, depth + 1, "multipart/alternative")


def _add_leaf(part: Message, state: _Walk, disposition: str) -> None:
    if len(state.leaves) >= MAX_PARTS:
        if not state.truncated:
            state.notes.append(f"more than {MAX_PARTS} parts; the rest are not listed")
            state.truncated = True
        return
    state.leaves.append((part, disposition))


def _walk_message(msg: Message, notes: list[str]) -> _Walk:
    state = _Walk(notes=notes)
    _walk(msg, state, 0, None)
    return state


def _attachment(index: int, part: Message, disposition: str, notes: list[str]) -> Attachment:
    ctype = _content_type(part)
    name = _filename(part, notes)
    if not name and ctype == "message/rfc822":
        subject = _nested_subject(part)
        name = f"{subject}.eml" if subject else "message.eml"
    if not name:
        extension = mimetypes.guess_extension(ctype, strict=False) or ".bin"
        name = f"part-{index + 1}{extension}"
    return Attachment(
        index=index,
        filename=_clean(name),
        content_type=ctype,
        size=len(_payload_bytes(part)),
        content_id=_content_id(part),
        disposition=disposition,
    )


def _nested_subject(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        subject = payload[0].get("Subject")
        if subject is not None:
            return decode_header_value(str(subject)).strip()[:120]
    return ""


# --------------------------------------------------------------------- addresses


def _addresses(values: list[str], notes: list[str]) -> tuple[str, ...]:
    """Each address of the headers as ``Name <addr>`` (or ``addr``), names decoded."""
    result: list[str] = []
    for raw in values:
        unfolded = _unfold(raw)
        try:
            pairs = email.utils.getaddresses([unfolded])
        except Exception:
            pairs = []
        found = False
        for name, addr in pairs:
            if not addr and not name:
                continue
            found = True
            display = decode_words(name, notes).strip() if name else ""
            address = _raw_to_text(addr, notes)
            result.append(f"{display} <{address}>" if display and address else display or address)
        if not found and unfolded.strip():
            result.append(decode_words(unfolded, notes))
    return tuple(result)


def _date(value: str | None, notes: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(_raw_to_text(_unfold(value)))
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
        msg = _parse(raw)
    except Exception as exc:
        notes.append(f"the message could not be parsed ({type(exc).__name__})")
        return _headers_only(raw, notes)
    try:
        return _build(msg, notes)
    except Exception as exc:
        notes.append(f"the message structure could not be read ({type(exc).__name__})")
        return _headers_only(raw, notes)


def _build(msg: Message, notes: list[str]) -> ParsedMessage:
    headers = tuple(
        Header(_raw_to_text(name, notes).strip(), decode_header_value(value, notes))
        for name, value in msg.raw_items()
    )

    def values(name: str) -> list[str]:
        return [str(v) for k, v in msg.raw_items() if k.strip().lower() == name]

    subjects = values("subject")
    subject = decode_header_value(subjects[0], notes) if subjects else ""
    senders = _addresses(values("from"), notes)
    message_ids = values("message-id")
    message_id = _raw_to_text(_unfold(message_ids[0])).strip() if message_ids else None
    dates = values("date")
    date = _date(dates[0] if dates else None, notes)

    state = _walk_message(msg, notes)
    text, html = state.text, state.html
    if text is None and html is None and state.nested:
        inner = state.nested[0].get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            inner_state = _walk_message(inner[0], notes)
            text, html = inner_state.text, inner_state.html
    attachments = tuple(
        _attachment(index, part, disposition, notes)
        for index, (part, disposition) in enumerate(state.leaves)
    )
    for defect in msg.defects:
        notes.append(f"MIME defect: {type(defect).__name__}")
    return ParsedMessage(
        headers=headers,
        subject=subject,
        from_=", ".join(senders),
        to=_addresses(values("to"), notes),
        cc=_addresses(values("cc"), notes),
        date=date,
        message_id=message_id or None,
        text=text,
        html=html,
        attachments=attachments,
        notes=tuple(dict.fromkeys(_clean(n) for n in notes)),
    )


_HEADER_LINE = re.compile(rb"^([^:\s][^:]*):(.*)$")


def _headers_only(raw: bytes, notes: list[str]) -> ParsedMessage:
    """The last resort: the header block read line by line, the rest as text."""
    head, _sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    headers: list[Header] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and headers:
            last = headers[-1]
            more = line.strip().decode("utf-8", "replace")
            headers[-1] = Header(last.name, f"{last.value} {more}")
            continue
        match = _HEADER_LINE.match(line)
        if match:
            headers.append(
                Header(
                    match.group(1).decode("utf-8", "replace").strip(),
                    match.group(2).strip().decode("utf-8", "replace"),
                )
            )
    for i, h in enumerate(headers):
        try:
            headers[i] = Header(h.name, decode_words(h.value))
        except Exception:
            pass

    def first(name: str) -> str:
        return next((h.value for h in headers if h.name.lower() == name), "")

    return ParsedMessage(
        headers=tuple(headers),
        subject=first("subject"),
        from_=first("from"),
        to=(first("to"),) if first("to") else (),
        cc=(first("cc"),) if first("cc") else (),
        date=None,
        message_id=first("message-id") or None,
        text=decode_undeclared(body)[0],
        html=None,
        attachments=(),
        notes=tuple(dict.fromkeys(notes)),
    )


def _leaves(raw: bytes) -> tuple[list[tuple[Message, str]], list[str]]:
    notes: list[str] = []
    msg = _parse(raw)
    return _walk_message(msg, notes).leaves, notes


def get_attachment(raw: bytes, index: int) -> tuple[Attachment, bytes] | None:
    """Attachment ``index`` of :func:`parse_message` and its decoded bytes, or None.

    A nested message (``message/rfc822``) comes back as the bytes of the inner
    message, ready to save as ``.eml``. Never raises.
    """
    try:
        leaves, notes = _leaves(raw)
        if index < 0 or index >= len(leaves):
            return None
        part, disposition = leaves[index]
        return _attachment(index, part, disposition, notes), _payload_bytes(part)
    except Exception:
        return None


def _iter_parts(msg: Message, depth: int = 0) -> Iterator[Message]:
    if depth > MAX_DEPTH:
        return
    payload = msg.get_payload()
    if msg.is_multipart() and isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                yield from _iter_parts(child, depth + 1)
    else:
        yield msg


def get_inline_parts(raw: bytes) -> dict[str, tuple[str, bytes]]:
    """Every part with a Content-ID: ``{content-id without <>: (content type, bytes)}``.

    This is what an HTML view needs to resolve ``cid:`` URLs. The first part with a
    given Content-ID wins. Never raises.
    """
    result: dict[str, tuple[str, bytes]] = {}
    try:
        msg = _parse(raw)
        for part in _iter_parts(msg):
            cid = _content_id(part)
            if cid and cid not in result:
                result[cid] = (_content_type(part), _payload_bytes(part))
    except Exception:
        pass
    return result
