"""Mailpit's search syntax, parsed into a structured query the message stores answer.

`parse_search("to:bob@example.com -is:read \\"cc test\\"")` gives a `SearchQuery`:
plain words and quoted phrases (answered by the full-text index, each word as a
prefix), and field filters (`to:`, `from:`, `cc:`, `bcc:`, `reply-to:`, `subject:`,
`message-id:`, `is:read`, `is:unread`, `has:attachment`, `before:`, `after:`,
`larger:`, `smaller:`, `tag:`), any of them negated with a leading `-` or `!`.
Field values match as case-insensitive substrings, as in Mailpit. A term of
punctuation only is ignored; an unknown `name:value` is searched as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "FIELDS", "Filter", "SearchQuery", "Term", "domain_forms", "parse_search", "split_terms",
]

_ACE_LABEL = re.compile(r"(?i)\bxn--[a-z0-9-]+")


def _to_ascii(label: str) -> str:
    try:
        import idna  # IDNA 2008, as the engine writes domains (email-validator's)

        return str(idna.encode(label, uts46=True).decode("ascii"))
    except Exception:  # noqa: BLE001 - no idna package, or not a valid label
        try:
            return label.encode("idna").decode("ascii")
        except UnicodeError:
            return label


def _to_unicode(label: str) -> str:
    try:
        import idna

        return str(idna.decode(label))
    except Exception:  # noqa: BLE001
        try:
            return label.encode("ascii").decode("idna")
        except UnicodeError:
            return label


def domain_forms(text: str) -> tuple[str, ...]:
    """text, and the same text with its internationalised domains in the other form.

    Mail carries `bücher.example` as `xn--bcher-kva.example`; a search for either finds
    both. Gives (text,) when there is nothing to convert.
    """
    forms = [text]
    if not text.isascii():
        at = text.rfind("@")
        head, tail = (text[: at + 1], text[at + 1 :]) if at >= 0 else ("", text)
        converted = ".".join(_to_ascii(p) if not p.isascii() else p for p in tail.split("."))
        if converted != tail:
            forms.append(head + converted)
    elif _ACE_LABEL.search(text):
        forms.append(_ACE_LABEL.sub(lambda m: _to_unicode(m.group(0)), text))
    return tuple(dict.fromkeys(forms))


FilterField = Literal[
    "to", "from", "cc", "bcc", "reply-to", "subject", "message-id", "read", "attachment",
    "before", "after", "larger", "smaller", "tag",
]
# Filters whose value is text matched as a substring.
FIELDS: tuple[FilterField, ...] = (
    "to", "from", "cc", "bcc", "reply-to", "subject", "message-id", "tag",
)
_FLAGS: dict[str, tuple[FilterField, bool]] = {
    "is:read": ("read", True),
    "is:unread": ("read", False),
    "has:attachment": ("attachment", True),
    "has:attachments": ("attachment", True),
}
_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s?(k|kb|m|mb)?$")


@dataclass(frozen=True)
class Term:
    """A word or phrase for the full-text index; `negate` excludes messages that have it."""

    text: str
    negate: bool = False


@dataclass(frozen=True)
class Filter:
    """One field condition.

    For text fields, `value` is a substring (str). For `read`/`attachment`, a bool;
    for `before`/`after`, an aware datetime; for `larger`/`smaller`, bytes (int).
    `negate` inverts the condition.
    """

    field: FilterField
    value: str | bool | int | datetime
    negate: bool = False

    def holds(self, result: bool) -> bool:
        """The condition's outcome for a message, given whether its un-negated form held."""
        return result != self.negate


@dataclass(frozen=True)
class SearchQuery:
    """Terms (full text) and filters (fields) that must all hold for a message to match."""

    terms: tuple[Term, ...] = ()
    filters: tuple[Filter, ...] = field(default=())
    # Parts of the text that could not be read (after:notadate, larger:abc), and why;
    # they are left out of the query, and callers tell the user so.
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def words(cls, text: str) -> SearchQuery:
        """The store's plain search: every blank-separated word is a term, no syntax."""
        return cls(terms=tuple(Term(w) for w in text.split()))

    def __bool__(self) -> bool:
        return bool(self.terms or self.filters)


def split_terms(text: str) -> list[tuple[str, bool]]:
    """Blank-separated terms with double quotes grouping (and removed): (term, was_quoted)."""
    terms: list[tuple[str, bool]] = []
    current: list[str] = []
    quoted = in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
            quoted = True
        elif char.isspace() and not in_quotes:
            if current:
                terms.append(("".join(current), quoted))
            current, quoted = [], False
        else:
            current.append(char)
    if current:
        terms.append(("".join(current), quoted))
    return terms


def _date(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _size(value: str) -> int | None:
    match = _SIZE.match(value.lower())
    if match is None:
        return None
    number, unit = float(match[1]), (match[2] or "")[:1]
    return int(number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit])


def parse_search(text: str) -> SearchQuery:
    """Read Mailpit's search syntax (see the module docstring) into a SearchQuery."""
    terms: list[Term] = []
    filters: list[Filter] = []
    ignored: list[str] = []
    for raw, _quoted in split_terms(text):
        negate = len(raw) > 1 and raw[0] in "-!"
        word = raw[1:] if negate else raw
        if not _ALNUM.search(word):
            continue
        lower = word.lower()
        if lower in _FLAGS:
            name, flag = _FLAGS[lower]
            filters.append(Filter(name, flag, negate))
            continue
        prefix, sep, value = word.partition(":")
        prefix = prefix.lower()
        value = value.strip()
        if sep and prefix in FIELDS:
            if value:
                filters.append(Filter(prefix, value, negate))
            continue
        if sep and prefix in ("before", "after"):
            when = _date(value)
            if when is not None:
                filters.append(Filter(prefix, when, negate))  # type: ignore[arg-type]
            else:
                ignored.append(f"{raw} (not a date like 2026-12-03 or 2026-12-03T14:00)")
            continue
        if sep and prefix in ("larger", "smaller"):
            size = _size(value)
            if size is not None:
                filters.append(Filter(prefix, size, negate))  # type: ignore[arg-type]
            else:
                ignored.append(f"{raw} (not a size like 2000, 500k or 2m)")
            continue
        terms.append(Term(word, negate))
    return SearchQuery(tuple(terms), tuple(filters), tuple(ignored))
