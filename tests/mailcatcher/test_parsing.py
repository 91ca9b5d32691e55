"""parse_message and its helpers on hand-written messages: decoding, structure, safety."""

from __future__ import annotations

import json

from mailcatcher.parsing import (
    get_attachment,
    get_inline_parts,
    make_visible,
    parse_message,
    safe_filename,
)


def test_encoded_subject_with_crlf_is_decoded_and_made_visible() -> None:
    """A decoded CR LF in a Subject stays in the value and make_visible shows it."""
    raw = b"Subject: =?utf-8?q?a=0D=0ABcc:_x?=\r\nFrom: a@example.com\r\n\r\nbody\r\n"
    parsed = parse_message(raw)
    assert parsed.subject == "a\r\nBcc: x"
    shown = make_visible(parsed.subject)
    assert "\r" not in shown and "\n" not in shown
    assert shown == "a\u240d\u240aBcc: x"


def test_unknown_charset_in_header_is_decoded_through_alias() -> None:
    """iso-8859-8-i, which Python does not know, is read as iso-8859-8."""
    raw = b"Subject: =?iso-8859-8-i?b?+ezl7Q==?=\r\n\r\nx"
    assert parse_message(raw).subject == "שלום"


def test_related_cid_image_is_inline_and_served() -> None:
    """A cid image in multipart/related is listed inline and served by get_inline_parts."""
    raw = (
        b"Content-Type: multipart/related; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:logo@x\">\r\n"
        b"--B\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--B--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.html is not None and "cid:logo@x" in parsed.html
    assert [(a.disposition, a.content_id) for a in parsed.attachments] == [("inline", "logo@x")]
    assert get_inline_parts(raw) == {"logo@x": ("image/png", b"\x89PNG\r\n\x1a\n")}
    found = get_attachment(raw, 0)
    assert found is not None and found[1] == b"\x89PNG\r\n\x1a\n"


def test_safe_filename_removes_traversal() -> None:
    """A name that climbs out of the folder is reduced to a plain file name."""
    assert safe_filename("../../etc/passwd") == "etc_passwd"
    assert "/" not in safe_filename("a/b") and safe_filename("") == "attachment"


def test_garbage_never_raises_and_is_json() -> None:
    """Arbitrary bytes parse to a JSON-serialisable message."""
    parsed = parse_message(b"\xff\xfe\x00Subject: \x80\r\n\r\n\x00\x01")
    json.dumps(parsed.to_json())
