"""parse_message and its helpers on hand-written messages: decoding, structure, safety.

Each message here is built byte by byte so that the property under test is the only
unusual thing in it.
"""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailcatcher.charsets import decode_bytes, lookup_charset
from mailcatcher.parsing import (
    Attachment,
    get_attachment,
    get_inline_parts,
    make_visible,
    parse_message,
    safe_filename,
)


def mail(*headers: str, body: str | bytes = "body\r\n") -> bytes:
    """A message from header lines and a body, joined with CRLF."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + data


def multipart(subtype: str, *parts: bytes, boundary: str = "XyZ", extra: str = "") -> bytes:
    """A multipart message of the given parts (each its own headers + body bytes)."""
    out = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{extra}\r\n\r\n'.encode()
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# ------------------------------------------------------------------ header values


def test_encoded_subject_with_crlf_is_decoded_and_made_visible() -> None:
    """A decoded CR LF in a Subject stays in the value and make_visible shows it."""
    raw = mail("Subject: =?utf-8?q?a=0D=0ABcc:_x?=", "From: a@example.com")
    parsed = parse_message(raw)
    assert parsed.subject == "a\r\nBcc: x"
    shown = make_visible(parsed.subject)
    assert "\r" not in shown and "\n" not in shown
    assert shown == "a\u240d\u240aBcc: x"


def test_decoded_crlf_never_becomes_a_header() -> None:
    """An injected 'Bcc:' inside an encoded Subject is no header of the parsed message."""
    raw = mail("Subject: =?utf-8?q?hi=0D=0ABcc:_victim@example.com?=", "To: a@example.com")
    parsed = parse_message(raw)
    assert [h.name for h in parsed.headers] == ["Subject", "To"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("=?iso-8859-8-i?b?+ezl7Q==?=", "שלום"),
        ("=?ks_c_5601-1987?b?x9Gx27vn?=", "한글사"),
        ("=?unicode-1-1-utf-7?q?+ZeVnLIqe-?=", "日本語"),
        ("=?x-sjis?b?k/qWe4zq?=", "日本語"),
        ("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "日本語"),
        ("=?windows-1252?q?caf=E9_=80?=", "café €"),
    ],
)
def test_encoded_words_in_odd_charsets_decode(header: str, expected: str) -> None:
    """Encoded words in charsets Python does not know by that name decode through aliases."""
    assert parse_message(mail(f"Subject: {header}")).subject == expected


def test_adjacent_encoded_words_are_joined_bytewise() -> None:
    """A UTF-8 character split across two encoded words is rebuilt, the space dropped."""
    word1 = "=?utf-8?b?" + base64.b64encode("日".encode() + "本".encode()[:1]).decode() + "?="
    word2 = "=?utf-8?b?" + base64.b64encode("本".encode()[1:]).decode() + "?="
    parsed = parse_message(mail(f"Subject: {word1}\r\n {word2} ok"))
    assert parsed.subject == "日本 ok"


def test_space_between_plain_text_and_encoded_word_is_kept() -> None:
    """White space between ordinary text and an encoded word is not removed."""
    assert parse_message(mail("Subject: Re: =?utf-8?q?caf=C3=A9?= now")).subject == "Re: café now"


def test_unknown_charset_is_never_blank_and_noted() -> None:
    """An encoded word in an unknown charset still shows text, with a note saying so."""
    parsed = parse_message(mail("Subject: =?x-foo?q?hello_w=C3=B6rld?="))
    assert parsed.subject == "hello wörld"
    assert any("x-foo" in note for note in parsed.notes)


def test_broken_base64_word_is_shown_as_written() -> None:
    """A base64 encoded word that cannot be decoded stays visible, never vanishes."""
    parsed = parse_message(mail("Subject: a =?utf-8?b?@?= b"))
    assert "a" in parsed.subject and "b" in parsed.subject


def test_raw_utf8_and_latin1_header_bytes_are_read() -> None:
    """Raw 8-bit header bytes are read as UTF-8, else windows-1252."""
    raw = b"Subject: caf\xc3\xa9\r\nX-Old: caf\xe9\r\n\r\nx"
    parsed = parse_message(raw)
    assert parsed.subject == "café"
    assert parsed.headers[1].value == "café"


def test_headers_keep_order_duplicates_and_are_unfolded() -> None:
    """All headers come back in order, duplicates included, folding removed."""
    raw = mail("Received: a\r\n\tb", "X-A: 1", "Received: c", "Subject: one\r\n two")
    parsed = parse_message(raw)
    assert [(h.name, h.value) for h in parsed.headers] == [
        ("Received", "a\tb"),
        ("X-A", "1"),
        ("Received", "c"),
        ("Subject", "one two"),
    ]


def test_header_with_space_before_colon_and_after_junk_is_kept() -> None:
    """Obsolete 'Subject  :' syntax and headers after a malformed name are still read."""
    raw = mail("Subject  : Hello", "bad name: x", "From: a@example.com")
    parsed = parse_message(raw)
    assert parsed.subject == "Hello" and parsed.from_ == "a@example.com"


def test_mbox_from_line_is_not_a_header() -> None:
    """A leading mbox 'From ' envelope line is skipped, the real From is read."""
    raw = b"From someone@x Sun May  8 19:07:09 2005\r\n" + mail("From: Ann <ann@example.com>")
    parsed = parse_message(raw)
    assert parsed.from_ == "Ann <ann@example.com>"
    assert [h.name for h in parsed.headers] == ["From"]


# --------------------------------------------------------------------- addresses


def test_addresses_are_decoded_and_split() -> None:
    """Encoded names, quoted commas, groups and comments give one entry per address."""
    raw = mail(
        'To: "Doe, Jane" <jane@example.com>, =?utf-8?q?J=C3=B6rg?= <j@example.com>',
        "Cc: Team: a@example.com, b@example.com;, c@example.com (Carl)",
    )
    parsed = parse_message(raw)
    assert parsed.to == ("Doe, Jane <jane@example.com>", "Jörg <j@example.com>")
    assert parsed.cc == ("a@example.com", "b@example.com", "Carl <c@example.com>")


def test_angle_bracket_inside_a_quoted_display_name_stays_in_the_name() -> None:
    """A '<' inside a quoted name is part of the name; the address is the last <...>."""
    raw = mail('To: "Zoë <b>Bold</b>" <zoe@example.com>, "a \\" <b" <b@example.com>')
    assert parse_message(raw).to == ("Zoë <b>Bold</b> <zoe@example.com>",
                                     'a " <b <b@example.com>')


def test_encoded_word_inside_quotes_in_display_name_is_decoded() -> None:
    """A display name written as a quoted encoded word is decoded anyway."""
    raw = mail('From: "=?utf-8?b?w4lsb2k=?=" <e@example.com>')
    assert parse_message(raw).from_ == "Éloi <e@example.com>"


def test_empty_group_is_shown_as_written() -> None:
    """'undisclosed-recipients:;' is shown, not dropped to nothing."""
    assert parse_message(mail("To: undisclosed-recipients:;")).to == ("undisclosed-recipients:;",)


# -------------------------------------------------------------------------- dates


def test_date_is_parsed_with_its_offset() -> None:
    """A Date header gives an aware datetime with the written offset."""
    parsed = parse_message(mail("Date: Fri, 21 Nov 1997 09:55:06 -0600"))
    assert parsed.date == datetime(1997, 11, 21, 9, 55, 6, tzinfo=timezone(timedelta(hours=-6)))


def test_date_without_zone_is_utc_and_bad_date_is_noted() -> None:
    """'-0000' gives UTC; an unreadable Date gives None and a note."""
    assert parse_message(mail("Date: 1 Jan 2020 00:00:00 -0000")).date == datetime(
        2020, 1, 1, tzinfo=UTC
    )
    parsed = parse_message(mail("Date: yesterday at noon"))
    assert parsed.date is None and any("Date" in note for note in parsed.notes)


# ------------------------------------------------------------------------- bodies


def test_iso_2022_jp_body_marked_7bit_is_japanese() -> None:
    """An ISO-2022-JP body is decoded as Japanese although its encoding is 7bit."""
    body = "すみません。".encode("iso2022_jp")
    raw = mail(
        "Content-Type: text/plain; charset=iso-2022-jp",
        "Content-Transfer-Encoding: 7bit",
        body=body,
    )
    assert parse_message(raw).text == "すみません。"


@pytest.mark.parametrize(
    ("cte", "encode"),
    [
        ("base64", lambda b: base64.encodebytes(b)),
        ("quoted-printable", lambda b: b"".join(b"=%02X" % c for c in b)),
        ("8bit", lambda b: b),
    ],
)
def test_declared_charset_applies_whatever_the_transfer_encoding(cte: str, encode: object) -> None:
    """A windows-1251 body decodes to Cyrillic under base64, quoted-printable and 8bit."""
    assert callable(encode)
    raw = mail(
        "Content-Type: text/plain; charset=windows-1251",
        f"Content-Transfer-Encoding: {cte}",
        body=encode("Привет".encode("cp1251")),
    )
    assert (parse_message(raw).text or "").strip() == "Привет"


def test_undeclared_8bit_body_tries_utf8_then_cp1252_with_note() -> None:
    """No charset: valid UTF-8 is read as UTF-8; otherwise windows-1252, with a note."""
    utf8 = parse_message(mail("Subject: x", body="naïve ✓".encode()))
    assert utf8.text == "naïve ✓" and not utf8.notes
    latin = parse_message(mail("Subject: x", body=b"na\xefve \x80"))
    assert latin.text == "naïve €"
    assert any("windows-1252" in note for note in latin.notes)


def test_unknown_body_charset_is_read_with_replacement_and_note() -> None:
    """An unknown body charset still gives text (UTF-8 or windows-1252), and a note."""
    parsed = parse_message(mail("Content-Type: text/plain; charset=x-nonsense", body=b"ok \xff"))
    assert parsed.text == "ok ÿ"
    assert any("x-nonsense" in note for note in parsed.notes)


def test_body_line_endings_are_lf() -> None:
    """CRLF line ends in bodies come out as LF."""
    assert parse_message(mail("Subject: x", body="a\r\nb\r\n")).text == "a\nb\n"


def test_text_plain_with_markup_stays_text() -> None:
    """text/plain that looks like HTML is returned as text, never as the HTML body."""
    parsed = parse_message(mail("Content-Type: text/plain", body="<script>alert(1)</script>"))
    assert parsed.text == "<script>alert(1)</script>" and parsed.html is None


# ---------------------------------------------------------------------- structure


def test_alternative_prefers_last_html_and_text() -> None:
    """multipart/alternative gives the richest (last) text and HTML, no attachments."""
    raw = multipart(
        "alternative",
        b"Content-Type: text/plain\r\n\r\nplain one",
        b"Content-Type: text/plain\r\n\r\nplain two",
        b"Content-Type: text/html\r\n\r\n<p>html</p>",
    )
    parsed = parse_message(raw)
    assert parsed.text == "plain two" and parsed.html == "<p>html</p>"
    assert parsed.attachments == ()


def test_mixed_lists_attachments_with_decoded_names() -> None:
    """multipart/mixed: body text, then RFC 2231 and quoted encoded-word file names."""
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nhello",
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"%PDF-1.4"),
        b'Content-Type: image/png; name="=?utf-8?q?=E2=9C=93.png?="\r\n\r\nPNG',
    )
    parsed = parse_message(raw)
    assert parsed.text == "hello"
    assert [(a.filename, a.content_type, a.size, a.disposition) for a in parsed.attachments] == [
        ("résumé.pdf", "application/pdf", 8, "attachment"),
        ("✓.png", "image/png", 3, "attachment"),
    ]
    found = get_attachment(raw, 0)
    assert found is not None and found[1] == b"%PDF-1.4"


def test_related_cid_image_is_inline_and_served() -> None:
    """A cid image in multipart/related is listed inline and served by get_inline_parts."""
    raw = multipart(
        "related",
        b'Content-Type: text/html\r\n\r\n<img src="cid:logo@x">',
        b"Content-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=",
    )
    parsed = parse_message(raw)
    assert parsed.html is not None and "cid:logo@x" in parsed.html
    assert [(a.disposition, a.content_id) for a in parsed.attachments] == [("inline", "logo@x")]
    assert get_inline_parts(raw) == {"logo@x": ("image/png", b"\x89PNG\r\n\x1a\n")}


def test_related_image_with_attachment_disposition_is_an_attachment() -> None:
    """A related part marked 'attachment' is a plain attachment even with a Content-ID."""
    raw = multipart(
        "related",
        b"Content-Type: text/html\r\n\r\n<p>x</p>",
        b"Content-Type: image/png\r\nContent-ID: <a@x>\r\n"
        b"Content-Disposition: attachment; filename=a.png\r\n\r\nPNG",
    )
    assert [a.disposition for a in parse_message(raw).attachments] == ["attachment"]


def test_nested_message_is_one_attachment_named_after_its_subject() -> None:
    """message/rfc822 is an attachment '<subject>.eml'; its text is not the outer body."""
    inner = mail("Subject: Inner news", "From: b@example.com", body="inner text")
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nouter text",
        b"Content-Type: message/rfc822\r\n\r\n" + inner,
    )
    parsed = parse_message(raw)
    assert parsed.text == "outer text"
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("Inner news.eml", "message/rfc822")
    ]
    found = get_attachment(raw, 0)
    assert found is not None and found[1] == inner


def test_nested_message_text_is_used_when_outer_has_none() -> None:
    """A forward with no text of its own shows the attached message's text."""
    inner = mail("Subject: Only this", body="the forwarded words")
    raw = multipart("mixed", b"Content-Type: message/rfc822\r\n\r\n" + inner)
    assert parse_message(raw).text == "the forwarded words"


def test_part_without_content_type_is_text_plain() -> None:
    """A body part with no Content-Type is text/plain (RFC 2046) and becomes the text."""
    raw = multipart("mixed", b"\r\nno headers here", b"Content-Type: image/gif\r\n\r\nGIF")
    parsed = parse_message(raw)
    assert parsed.text == "no headers here"
    assert [a.content_type for a in parsed.attachments] == ["image/gif"]


def test_multipart_without_boundary_parameter_is_split_at_guessed_boundary() -> None:
    """A multipart without boundary= is split at its first '--x' line, with a note."""
    raw = (
        b"Content-Type: multipart/mixed\r\n\r\n--abc\r\nContent-Type: text/plain\r\n\r\n"
        b"found me\r\n--abc\r\nContent-Type: image/gif\r\n\r\nGIF\r\n--abc--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.text == "found me" and len(parsed.attachments) == 1
    assert any("boundary" in note for note in parsed.notes)


def test_multipart_without_any_delimiter_is_shown_as_text() -> None:
    """A multipart whose body has no delimiter at all is shown as text, with a note."""
    parsed = parse_message(b"Content-Type: multipart/mixed; boundary=q\r\n\r\njust words\r\n")
    assert parsed.text == "just words\n"
    assert any("shown as text" in note for note in parsed.notes)


def test_quoted_boundary_with_special_characters() -> None:
    """A quoted boundary containing '=', '.' and spaces splits the parts."""
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\none",
        b"Content-Type: text/csv; name=a.csv\r\n\r\nx,y",
        boundary="----=_Part 1.2=",
    )
    parsed = parse_message(raw)
    assert parsed.text == "one" and [a.filename for a in parsed.attachments] == ["a.csv"]


def test_boundary_that_prefixes_another_is_not_confused() -> None:
    """An inner boundary that begins with the outer one does not end an outer part."""
    inner = multipart(
        "alternative",
        b"Content-Type: text/plain\r\n\r\nplain",
        b"Content-Type: text/html\r\n\r\n<b>html</b>",
        boundary="XyZ_alt",
    )
    raw = multipart("mixed", inner, b"Content-Type: image/gif; name=g.gif\r\n\r\nGIF")
    parsed = parse_message(raw)
    assert (parsed.text, parsed.html) == ("plain", "<b>html</b>")
    assert [a.filename for a in parsed.attachments] == ["g.gif"]


def test_missing_closing_boundary_keeps_last_part_and_notes() -> None:
    """A multipart cut before its closing delimiter still lists its last part."""
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b\r\n"
    raw += b"Content-Type: image/gif; name=g.gif\r\n\r\nGI"
    parsed = parse_message(raw)
    assert parsed.text == "text" and parsed.attachments[0].size == 2
    assert any("closing boundary" in note for note in parsed.notes)


def test_unnamed_attachments_get_safe_fallback_names() -> None:
    """Parts without a name are called part-N with an extension from their type."""
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nbody",
        b"Content-Type: image/png\r\n\r\nPNG",
        b"Content-Type: application/x-unknown-thing\r\n\r\n??",
    )
    names = [a.filename for a in parse_message(raw).attachments]
    assert names == ["part-1.png", "part-2.bin"]


def test_hostile_nesting_is_bounded_and_fast() -> None:
    """A multipart nested 10,000 deep parses quickly with a note instead of recursing."""
    raw = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(10_000)
    )
    started = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - started < 30
    assert any("nesting" in note for note in parsed.notes)


def test_forty_mib_attachment_parses_in_well_under_seconds() -> None:
    """A 40 MiB base64 attachment parses with its exact decoded size, in linear time.

    The bound is a guard against quadratic work (which takes minutes), not a benchmark:
    bench/ measures parse speed.
    """
    payload = os.urandom(40 * 1024 * 1024)
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nbig one",
        b"Content-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(payload),
    )
    started = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - started < 30
    assert parsed.text == "big one" and parsed.attachments[0].size == len(payload)


# ------------------------------------------------------------------- never raises


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"no headers at all",
        b":\r\n\r\n",
        b'Content-Type: text/plain; charset="\r\n\r\n\xff',
        b"Content-Type: text/plain; charset=zlib\r\n\r\nx",
        b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\N{BULLET}",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!!a",
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n#86)C\r\nend\r\n",
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%",
        b"Content-Disposition: attachment; filename*=x-bad''%ZZ%\r\n\r\n",
    ],
)
def test_odd_inputs_never_raise(raw: bytes) -> None:
    """Edge inputs give a message whose JSON form encodes as UTF-8."""
    json.dumps(parse_message(raw).to_json(), ensure_ascii=False).encode("utf-8")


def test_dangerous_charsets_are_refused() -> None:
    """A charset naming a non-text or escape-interpreting codec is not used."""
    assert lookup_charset("zlib") is None and lookup_charset("unicode_escape") is None
    text, note = decode_bytes(b"\\N{BULLET}", "unicode_escape")
    assert text == "\\N{BULLET}" and note is not None


def test_to_json_has_the_contract_fields() -> None:
    """to_json gives exactly the documented keys, with ISO dates and attachment dicts."""
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nhi",
        b"Content-Type: image/gif; name=g.gif\r\nContent-ID: <g@x>\r\n\r\nGIF",
        extra="\r\nSubject: s\r\nDate: Fri, 21 Nov 1997 09:55:06 +0000",
    )
    document = parse_message(raw).to_json()
    assert set(document) == {
        "headers", "subject", "from", "to", "cc", "date", "message_id", "text", "html",
        "attachments", "notes",
    }  # fmt: skip
    assert document["date"] == "1997-11-21T09:55:06+00:00"
    assert document["attachments"] == [
        {
            "index": 0,
            "filename": "g.gif",
            "content_type": "image/gif",
            "size": 3,
            "content_id": "g@x",
            "disposition": "attachment",
        }
    ]
    assert isinstance(parse_message(raw).attachments[0], Attachment)


# --------------------------------------------------------------------- visibility


def test_make_visible_shows_controls_and_bidi_and_keeps_text() -> None:
    """NUL, ESC, DEL, C1 and bidi overrides become visible; letters and TAB stay."""
    assert make_visible("a\x00b\x1bc\x7fd") == "a\u2400b\u241bc\u2421d"
    assert make_visible("x\u202ey\x85") == "x<U+202E>y<U+0085>"
    assert make_visible("Grüße\tnormal 日本") == "Grüße\tnormal 日本"


# ---------------------------------------------------------------------- filenames


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "windows_system32_cmd.exe"),
        ("report.pdf", "report.pdf"),
        ("", "attachment"),
        ("..", "attachment"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        (".bashrc", "bashrc"),
        ("a\r\nb\x00c.txt", "a__b_c.txt"),
        ("invoice\u202etxt.exe", "invoice_txt.exe"),
        ('what?*:<>|".txt', "what_______.txt"),
        ("trailing. . ", "trailing"),
    ],
)
def test_safe_filename_cases(name: str, expected: str) -> None:
    """Traversal, device names, control and bidi characters are neutralised."""
    assert safe_filename(name) == expected


def test_safe_filename_limits_length_and_keeps_extension() -> None:
    """A very long name is cut to at most 200 UTF-8 bytes and keeps its extension."""
    safe = safe_filename("é" * 500 + ".pdf")
    assert safe.endswith(".pdf") and len(safe.encode("utf-8")) <= 200


def test_html_without_charset_parameter_uses_its_meta_charset() -> None:
    """An HTML part with no charset parameter is decoded with its <meta charset>."""
    body = b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>'
    raw = mail("Content-Type: text/html", body=body + "Мир".encode("koi8-r"))
    html = parse_message(raw).html
    assert html is not None and html.endswith("<p>Мир")


def test_damaged_utf8_keeps_its_good_characters() -> None:
    """UTF-8 with one bad byte (a truncated message) keeps the rest, not windows-1252."""
    raw = mail("Content-Type: text/plain; charset=utf-8", body="日本語".encode() + b"\xe6\x97")
    parsed = parse_message(raw)
    assert parsed.text == "日本語\ufffd"
    undeclared = parse_message(mail("Subject: x", body="é".encode() + b"\xff"))
    assert undeclared.text == "é\ufffd"


def test_inline_text_file_after_the_body_is_an_attachment() -> None:
    """A second inline text part with a file name is listed, not glued to the body."""
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nbody",
        b"Content-Type: text/plain\r\nContent-Disposition: inline; filename=notes.txt\r\n\r\nn",
        b"Content-Type: text/plain\r\n\r\nsignature",
    )
    parsed = parse_message(raw)
    assert parsed.text == "body\nsignature"
    assert [(a.filename, a.disposition) for a in parsed.attachments] == [("notes.txt", "inline")]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"X-A: y\r\n" * 1_000_000 + b"\r\nbody", id="a-million-headers"),
        pytest.param(b"To: " + b"a@b.c, " * 1_500_000 + b"\r\n\r\nx", id="10MB-address-header"),
        pytest.param(b"Subject: " + b"=?utf-8?q?a?= " * 700_000 + b"\r\n\r\nx", id="10MB-subject"),
        pytest.param(
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--bb\r\n" * 2_000_000,
            id="millions-of-near-delimiters",
        ),
        pytest.param(
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            + b"--b\r\nX: 1\r\n\r\nx\r\n" * 300_000,
            id="300k-parts",
        ),
    ],
)
def test_hostile_sizes_are_parsed_quickly(raw: bytes) -> None:
    """Inputs built to make a parser crawl are read with headers, with no quadratic blow-up
    (the bound is far above normal speed: a guard, not a benchmark)."""
    started = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - started < 30
    assert parsed.headers


def test_latin1_label_is_read_as_windows_1252() -> None:
    """'iso-8859-1' text is read as windows-1252, so 0x93/0x94 are curly quotes."""
    raw = mail("Content-Type: text/plain; charset=iso-8859-1", body=b"\x93hi\x94 \xe9")
    assert parse_message(raw).text == "\u201chi\u201d é"
