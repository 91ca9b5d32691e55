"""Turning bytes of captured mail into text: charset aliases and forgiving decoders.

Real mail names charsets that Python does not know (``iso-8859-8-i``,
``unicode-1-1-utf-7``, ``x-sjis``) or none at all. Everything here decodes to
*some* text and reports, as a note, when it had to guess; nothing here raises.
"""

from __future__ import annotations

import codecs
import functools
import re

# Labels seen in real mail mapped to the codec that reads them best. Where a
# label names a subset of a common superset (Shift_JIS of cp932, EUC-KR of
# cp949, GB2312 of GB18030, ISO-8859-1 of windows-1252), the superset is used, as
# browsers do: the bytes that differ only appear in mail written by the superset.
CHARSET_ALIASES: dict[str, str] = {
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601_1987": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "x-windows-949": "cp949",
    "unicode-1-1-utf-7": "utf-7",
    "x-unicode-2-0-utf-7": "utf-7",
    "utf7": "utf-7",
    "x-sjis": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "x-euc-jp": "euc_jp",
    "iso-2022-jp": "iso2022_jp_ext",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "chinese": "gb18030",
    "x-euc-tw": "big5",
    "big5": "cp950",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-mac-cyrillic": "mac_cyrillic",
    "utf8": "utf-8",
    "x-utf-8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-user-defined": "cp1252",
    "windows-1252": "cp1252",
    "cp-1252": "cp1252",
    "cp-850": "cp850",
    "ibm850": "cp850",
}

# Labels that mean "no idea": treated like an undeclared charset.
UNKNOWN_LABELS = frozenset({"", "unknown", "unknown-8bit", "x-unknown", "default", "charset"})

# Codecs that are text encodings in Python's sense but are no charset a message may
# name (they interpret backslashes, or are never right for mail).
_REFUSED_CODECS = frozenset(
    {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)

FALLBACK_CHARSET = "cp1252"


def _as_latin1(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: undecodable bytes become the latin-1 characters they are."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


_C1_HANDLER = "mailroom-latin1"
codecs.register_error(_C1_HANDLER, _as_latin1)

_LABEL_JUNK = re.compile(r"[\s\"']+")


def normalise_label(label: str) -> str:
    """A charset label lower-cased, without quotes, blanks or an RFC 2231 language."""
    label = _LABEL_JUNK.sub("", label).lower()
    return label.split("*", 1)[0]


@functools.lru_cache(maxsize=512)
def lookup_charset(label: str | None) -> str | None:
    """The Python codec name that reads label, or None if there is none.

    Only text codecs are returned: a message cannot make us run ``zlib`` or
    ``unicode_escape`` by naming them.
    """
    if label is None:
        return None
    name = normalise_label(label)
    if name in UNKNOWN_LABELS:
        return None
    name = CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    if info.name.replace("-", "_") in _REFUSED_CODECS:
        return None
    return info.name


def decode_undeclared(data: bytes) -> tuple[str, str | None]:
    """Text of bytes whose charset is not known: UTF-8 if it is valid, else windows-1252.

    Returns the text and a note when a guess was needed (None for pure ASCII or UTF-8).
    """
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    if looks_like_utf8(data):
        return data.decode("utf-8", errors="replace"), "invalid utf-8 replaced"
    return data.decode(FALLBACK_CHARSET, errors=_C1_HANDLER), "decoded as windows-1252"


# One valid multi-byte UTF-8 sequence of at least two characters' worth: windows-1252
# text almost never contains one (it would read as mojibake like "Ã©").
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def looks_like_utf8(data: bytes) -> bool:
    """Whether invalid UTF-8 is damaged UTF-8 (it holds valid multi-byte sequences)."""
    return _UTF8_SEQUENCE.search(data) is not None


def decode_bytes(data: bytes, label: str | None) -> tuple[str, str | None]:
    """Text of data in the charset label names, never raising.

    Returns (text, note). The note is None when the declared charset read the bytes
    cleanly; otherwise it says what was done: an unknown charset, or bytes that are
    invalid in the declared one (shown with replacement characters).
    """
    codec = lookup_charset(label)
    if codec is None or codec == "ascii":
        text, guessed = decode_undeclared(data)
        if label is not None and codec is None and normalise_label(label) not in UNKNOWN_LABELS:
            how = guessed or "decoded as utf-8"
            return text, f"unknown charset {normalise_label(label)[:40]}, {how}"
        if guessed is not None:
            declared = "us-ascii" if codec == "ascii" else "undeclared"
            return text, f"8-bit text in {declared} charset, {guessed}"
        return text, None
    try:
        return data.decode(codec), None
    except UnicodeDecodeError:
        pass
    except Exception:  # a codec with a bug of its own must not take the parser down
        return decode_undeclared(data)[0], f"charset {codec} failed, decoded as utf-8"
    if codec == "utf-8" and looks_like_utf8(data):
        return data.decode(codec, errors="replace"), "invalid utf-8 replaced"
    if codec == "utf-8":
        # Mislabelled windows-1252 is the commonest lie in mail.
        text = data.decode(FALLBACK_CHARSET, errors=_C1_HANDLER)
        return text, "invalid utf-8, decoded as windows-1252"
    if codec == "cp1252":
        # The five bytes windows-1252 leaves undefined are C1 controls in latin-1.
        return data.decode(codec, errors=_C1_HANDLER), None
    try:
        text = data.decode(codec, errors="replace")
    except Exception:
        text = data.decode(FALLBACK_CHARSET, errors="replace")
    return text, f"invalid bytes for charset {codec}, replaced"
