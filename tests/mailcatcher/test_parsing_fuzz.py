"""Fuzzing the parser: on random bytes, header soup and truncated MIME it never raises.

Every generated input must give a ParsedMessage whose JSON form encodes as UTF-8;
the helpers (get_attachment, get_inline_parts, make_visible, safe_filename) keep
their promises on any input too.
"""

from __future__ import annotations

import json
import os
import unicodedata
from email.message import EmailMessage
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcatcher.parsing import (
    ParsedMessage,
    get_attachment,
    get_inline_parts,
    make_visible,
    parse_message,
    safe_filename,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "mail-gem"
# MAILROOM_FUZZ_EXAMPLES=5000 fuzzes harder; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("MAILROOM_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_parsed(raw: bytes) -> ParsedMessage:
    """Parse raw and check the invariants every result holds."""
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    json.dumps(parsed.to_json(), ensure_ascii=False).encode("utf-8")
    for attachment in parsed.attachments:
        assert attachment.filename
        assert attachment.disposition in ("attachment", "inline")
        assert attachment.size >= 0
    inline = get_inline_parts(raw)
    assert all(isinstance(v[1], bytes) for v in inline.values())
    if parsed.attachments:
        found = get_attachment(raw, len(parsed.attachments) - 1)
        assert found is not None and len(found[1]) == found[0].size
    return parsed


@FUZZ
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    """Any bytes at all parse to a message that serialises as JSON."""
    check_parsed(raw)


HEADER_NAMES = st.sampled_from(
    [
        "Subject", "From", "To", "Cc", "Date", "Message-ID", "Content-Type",
        "Content-Transfer-Encoding", "Content-Disposition", "Content-ID", "MIME-Version",
        "X-Odd", "subject", "FROM", "Content-Location",
    ]
)  # fmt: skip
CHARSETS = st.sampled_from(
    ["utf-8", "iso-8859-8-i", "ks_c_5601-1987", "unicode-1-1-utf-7", "x-sjis", "x-foo",
     "iso-2022-jp", "zlib", "base64_codec", "unicode_escape", "", "utf-16", "rot13"]
)  # fmt: skip
ENCODED_WORDS = st.builds(
    lambda charset, kind, text: f"=?{charset}?{kind}?{text}?=",
    CHARSETS,
    st.sampled_from(["B", "Q", "b", "q", "X"]),
    st.text(alphabet="AZaz09+/=_ -\\?\u00e9", max_size=24),
)
HEADER_VALUES = st.one_of(
    st.text(max_size=60),
    ENCODED_WORDS,
    st.lists(ENCODED_WORDS, max_size=4).map(" ".join),
    st.sampled_from(
        [
            "multipart/mixed; boundary=b",
            'multipart/alternative; boundary="b"',
            "multipart/related",
            "multipart/mixed; boundary=",
            "message/rfc822",
            "text/plain; charset=x-unknown",
            "text/html; charset=iso-8859-8-i",
            "base64",
            "quoted-printable",
            "x-uuencode",
            "attachment; filename*0*=utf-8''%E3%81; filename*1=x.txt",
            'inline; filename="=?utf-8?b?4pyT?=.png"',
            "<a@b>",
            "\u202eevil\r\nBcc: x",
        ]
    ),
)
HEADER_LINES = st.builds(
    lambda name, value, fold: f"{name}:{' ' if fold else ''}{value}",
    HEADER_NAMES,
    HEADER_VALUES,
    st.booleans(),
)
BODY_LINES = st.one_of(
    st.sampled_from(
        ["--b", "--b--", "--b-", "", " ", "Content-Type: text/html", "=?=", "begin 644 x"]
    ),
    st.text(max_size=40),
)


@FUZZ
@given(
    st.lists(HEADER_LINES, max_size=12),
    st.lists(BODY_LINES, max_size=30),
    st.sampled_from(["\r\n", "\n", "\r"]),
    st.booleans(),
)
def test_header_soup_never_raises_and_keeps_headers(
    headers: list[str], body: list[str], newline: str, blank: bool
) -> None:
    """Random headers of every kind over a MIME-looking body: no exception, headers read."""
    text = newline.join(headers) + (newline * 2 if blank else newline) + newline.join(body)
    raw = text.encode("utf-8", "surrogatepass")
    parsed = check_parsed(raw)
    if headers and blank and newline != "\r":
        assert parsed.headers


def _sample_message(subject: str, body: str, attachment: bytes, name: str) -> bytes:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Ann <ann@example.com>"
    message["To"] = "bob@example.com"
    message.set_content(body)
    message.add_alternative(f"<p>{body}</p>", subtype="html")
    message.add_attachment(attachment, maintype="application", subtype="pdf", filename=name)
    return message.as_bytes()


PRINTABLE = st.characters(exclude_categories=["C", "Zl", "Zp"])


@FUZZ
@given(
    st.text(PRINTABLE, max_size=30),
    st.text(max_size=200),
    st.binary(max_size=300),
    st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != ""),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_truncated_mime_never_raises(
    subject: str, body: str, attachment: bytes, name: str, cut: float
) -> None:
    """A real multipart message cut anywhere parses, and the headers before the cut survive."""
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C") or "x"
    raw = _sample_message(subject, body, attachment, name)
    full = parse_message(raw)
    cut_at = int(len(raw) * cut)
    parsed = check_parsed(raw[:cut_at])
    if b"\r\n\r\n" in raw[:cut_at] or b"\n\n" in raw[:cut_at]:
        assert parsed.subject == full.subject


def test_every_corpus_message_truncated_never_raises() -> None:
    """Each corpus message cut at 12 points (and mid line ending) parses with headers."""
    files = sorted(CORPUS.rglob("*.eml"))
    assert files
    for path in files:
        raw = path.read_bytes()
        cuts = {len(raw) * i // 12 for i in range(12)}
        cuts |= {raw.find(b"\r\n\r\n") + 1, raw.find(b"\n--") + 2, len(raw) - 1}
        for cut in sorted(c for c in cuts if 0 <= c <= len(raw)):
            parsed = check_parsed(raw[:cut])
            if cut > 200 and raw[:cut].count(b"\n") > 3:
                assert parsed.headers, (path.name, cut)


@FUZZ
@given(st.text())
def test_make_visible_leaves_no_control_or_bidi_character(text: str) -> None:
    """After make_visible no C0/C1 control (but TAB), bidi control or surrogate remains."""
    shown = make_visible(text)
    for char in shown:
        code = ord(char)
        assert char == "\t" or not (code < 0x20 or 0x7F <= code <= 0x9F)
        assert unicodedata.bidirectional(char) not in ("LRE", "RLE", "LRO", "RLO", "PDF")
        assert unicodedata.bidirectional(char) not in ("LRI", "RLI", "FSI", "PDI")
        assert not 0xD800 <= code <= 0xDFFF


@FUZZ
@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "Zs", "S"])))
def test_make_visible_keeps_ordinary_text(text: str) -> None:
    """Letters, digits, punctuation, symbols and spaces pass through unchanged."""
    if all(unicodedata.category(c) != "Cf" for c in text):
        assert make_visible(text) == text


RESERVED = (
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)


@FUZZ
@given(st.text(max_size=400))
def test_safe_filename_is_always_safe(name: str) -> None:
    """Any name becomes one plain, non-empty, short file name that is no device name."""
    safe = safe_filename(name)
    assert safe and safe not in (".", "..")
    assert not any(c in safe for c in '/\\:*?"<>|')
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in safe)
    assert not safe.startswith(".") and not safe.endswith((".", " "))
    assert len(safe.encode("utf-8")) <= 200
    assert safe.split(".")[0].strip().lower() not in RESERVED


@FUZZ
@given(
    st.text(PRINTABLE, max_size=40),
    st.text(max_size=300),
    st.lists(
        st.tuples(st.binary(max_size=200), st.text(PRINTABLE, min_size=1, max_size=30)),
        max_size=4,
    ),
    st.sampled_from(["utf-8", "iso-8859-1", "shift_jis", "koi8-r"]),
)
def test_what_python_writes_is_read_back(
    subject: str, body: str, files: list[tuple[bytes, str]], charset: str
) -> None:
    """A message built by email.message round-trips: subject, text, names and payloads."""
    body = body.replace("\r", "")
    if charset == "iso-8859-1":
        # Read as windows-1252 on purpose (as browsers do): C1 controls are not text.
        body = "".join(c for c in body if not "\x80" <= c <= "\x9f")
    try:
        body.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    message = EmailMessage()
    message["Subject"] = subject
    message.set_content(body, charset=charset)
    for data, name in files:
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    raw = message.as_bytes()
    parsed = check_parsed(raw)
    assert parsed.subject == " ".join(subject.split()) or parsed.subject == subject
    if charset == "shift_jis":
        # Read as cp932 on purpose (what Japanese mail is written in): '¢' reads as '￠'.
        body = body.encode("shift_jis").decode("cp932")
    assert (parsed.text or "").rstrip("\n") == body.rstrip("\n")
    assert [a.filename for a in parsed.attachments] == [name for _data, name in files]
    for index, (data, _name) in enumerate(files):
        found = get_attachment(raw, index)
        assert found is not None and found[1] == data
