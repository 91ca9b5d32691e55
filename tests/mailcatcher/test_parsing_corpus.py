"""The mail-gem corpus read through parse_message, checked against a table of expectations.

tests/mailcatcher/corpus_expectations.toml says, for every corpus file, the decoded
subject, the sender, the attachment names and a body excerpt.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailcatcher.parsing import get_attachment, get_inline_parts, parse_message

CORPUS = Path(__file__).resolve().parent.parent / "data" / "mail-gem"
EXPECTATIONS: dict[str, dict[str, Any]] = tomllib.loads(
    (Path(__file__).resolve().parent / "corpus_expectations.toml").read_text("utf-8")
)
CORPUS_FILES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.eml"))


def test_table_covers_the_whole_corpus() -> None:
    """Every corpus message has a row in the table and every row names a corpus message."""
    assert sorted(EXPECTATIONS) == CORPUS_FILES
    assert len(CORPUS_FILES) >= 69


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_corpus_message_reads_as_expected(name: str) -> None:
    """Subject, sender, attachment names and body excerpt are what the table says."""
    expected = EXPECTATIONS[name]
    parsed = parse_message((CORPUS / name).read_bytes())
    assert parsed.subject == expected["subject"]
    assert parsed.from_ == expected["from"]
    assert [a.filename for a in parsed.attachments] == expected["attachments"]
    if "text" in expected:
        assert parsed.text is not None and expected["text"] in parsed.text
    if "html" in expected:
        assert parsed.html is not None
        assert expected["html"] in " ".join(parsed.html.split())
    assert parsed.text is not None or parsed.html is not None or parsed.attachments


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_message_json_is_serialisable_utf8(name: str) -> None:
    """to_json of every corpus message survives json.dumps and encodes as UTF-8."""
    raw = (CORPUS / name).read_bytes()
    document = parse_message(raw).to_json()
    text = json.dumps(document, ensure_ascii=False)
    text.encode("utf-8")
    assert json.loads(text)["subject"] == document["subject"]
    assert [h["name"] for h in document["headers"]]


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_attachments_can_be_fetched_with_their_size(name: str) -> None:
    """get_attachment returns, for each listed attachment, bytes of the listed size."""
    raw = (CORPUS / name).read_bytes()
    parsed = parse_message(raw)
    for attachment in parsed.attachments:
        found = get_attachment(raw, attachment.index)
        assert found is not None
        assert found[0] == attachment
        assert len(found[1]) == attachment.size
    assert get_attachment(raw, len(parsed.attachments)) is None


def test_nested_message_is_saved_exactly_as_sent() -> None:
    """A message/rfc822 attachment's bytes are a verbatim slice of the outer message."""
    raw = (CORPUS / "attachment_emails/attachment_message_rfc822.eml").read_bytes()
    found = get_attachment(raw, 0)
    assert found is not None
    attachment, data = found
    assert attachment.content_type == "message/rfc822"
    assert data in raw and data.startswith(b"From xxxx@xxxx.com Tue May 10")
    assert parse_message(data).subject == "Another PDF"


def test_cid_image_of_corpus_message_is_served() -> None:
    """The cid: image an HTML body refers to is available from get_inline_parts."""
    raw = (CORPUS / "attachment_emails/attachment_message_rfc822_inline_image.eml").read_bytes()
    html = parse_message(raw).html
    assert html is not None
    parts = get_inline_parts(raw)
    cid = "emedfeb92f-a786-4718-a446-98db8afb53fb@kronos"
    assert f"cid:{cid}" in html
    content_type, data = parts[cid]
    assert content_type == "image/png" and data.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("multi_charset/japanese_iso_2022.eml", "HIRAGANA"),
        ("multi_charset/japanese_shift_jis.eml", "KATAKANA"),
        ("multi_charset/ks_c_5601-1987.eml", "HANGUL"),
        ("plain_emails/raw_email.eml", "HANGUL"),
    ],
)
def test_cjk_bodies_decode_to_their_script(name: str, script: str) -> None:
    """Japanese and Korean bodies come out in their script, with no replacement character."""
    import unicodedata

    text = parse_message((CORPUS / name).read_bytes()).text
    assert text is not None and "\ufffd" not in text
    assert any(unicodedata.name(c, "").startswith(script) for c in text)
