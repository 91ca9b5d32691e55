"""Who someone is: email syntax and canonical form, the uniqueness key, display-name rules.

- Syntax is checked by email-validator (no DNS look-ups). Mailroom is a tool for
  developers, so the reserved names they test with are accepted: ``.test``,
  ``.localhost`` and ``.invalid`` (RFC 2606/6761), ``.local`` (RFC 6762), and
  ``.example`` as before; dot-less domains like ``localhost`` too. Other
  special-use names (``.onion``, ``.arpa``) stay refused. Local parts over 64
  octets are refused (RFC 5321 4.5.3.1.1).
- The domain is kept in one canonical form, IDNA 2008 (email-validator uses the
  `idna` package): ``bücher.example`` and ``xn--bcher-kva.example`` are one mailbox.
- Uniqueness uses a key folded in Python with ``str.casefold`` (SQLite's NOCASE
  folds ASCII only); the address itself is stored as typed (with the canonical
  domain) and mail always goes to the stored address.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import idna
from email_validator import EmailNotValidError, EmailSyntaxError, ValidatedEmail, validate_email

from core.errors import ValidationError

MAX_LOCAL_PART_OCTETS = 64  # RFC 5321 4.5.3.1.1
# Top-level special-use names developers sign test users up with. email-validator
# refuses these whatever its options (only "test" has a switch, test_environment),
# so a name of this set is checked with an ordinary label of the same length in
# its place; every other check still runs on the address.
DEVELOPER_TLDS = frozenset({"test", "localhost", "local", "invalid"})
_SPECIAL_USE_ERROR = "special-use or reserved name"

MAX_DISPLAY_NAME = 200
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

# Characters that can reorder or hide text, refused alongside C0/C1 controls.
_INVISIBLE_CONTROLS = frozenset(
    "\u2028\u2029"  # line and paragraph separators
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # bidi isolates
)


@dataclass(frozen=True)
class NormalizedEmail:
    """An email address in canonical form.

    `address` is what is stored and shown (local part as typed, Unicode domain),
    `ascii_domain` the A-label form used on the wire, `key` the uniqueness key.
    """

    address: str
    local_part: str
    domain: str
    ascii_domain: str
    key: str

    @property
    def needs_smtputf8(self) -> bool:
        """True when the local part is not ASCII (the domain can always go as A-labels)."""
        return not self.local_part.isascii()

    @property
    def wire_address(self) -> str:
        """The address as sent in the SMTP envelope and headers."""
        return f"{self.local_part}@{self.ascii_domain}"


def normalize_email(raw: str, field: str = "email") -> NormalizedEmail:
    """Validate an address and return its canonical form; ValidationError(field) if invalid."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(field, "an email address is required")
    text = raw.strip()
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ValidationError(field, "control characters are not allowed in an email address")
    try:
        info = _validate(text)
    except EmailNotValidError as exc:
        raise ValidationError(field, str(exc)) from None
    local = info.local_part
    octets = len(local.encode("utf-8"))
    if octets > MAX_LOCAL_PART_OCTETS:
        raise ValidationError(
            field,
            f"the part before the @-sign is {octets} octets long; at most "
            f"{MAX_LOCAL_PART_OCTETS} are allowed (RFC 5321)",
        )
    domain = info.domain
    ascii_domain = info.ascii_domain
    return NormalizedEmail(
        address=f"{local}@{domain}",
        local_part=local,
        domain=domain,
        ascii_domain=ascii_domain,
        key=email_key(local, ascii_domain),
    )


def _check(text: str) -> ValidatedEmail:
    return validate_email(
        text, check_deliverability=False, globally_deliverable=False, test_environment=True
    )


def _validate(text: str) -> ValidatedEmail:
    """email-validator's checks, with the developer test TLDs accepted (see DEVELOPER_TLDS)."""
    try:
        return _check(text)
    except EmailSyntaxError as exc:
        if _SPECIAL_USE_ERROR not in str(exc):
            raise
        # Reaching this check means the local part and the domain's syntax passed;
        # the error is raised before anything else is looked at, so check it all again.
        local, _, domain = text.rpartition("@")
        try:
            labels = idna.uts46_remap(domain, std3_rules=False, transitional=False).split(".")
        except idna.IDNAError:
            raise exc from None
        tld = labels[-1]
        if tld not in DEVELOPER_TLDS:
            raise
        # "x" * len keeps lengths, and is no reserved name nor Punycode.
        stand_in = "x" * len(tld)
        info = _check(f"{local}@{'.'.join([*labels[:-1], stand_in])}")
        for attr in ("domain", "ascii_domain"):
            value = getattr(info, attr)
            assert value.endswith(stand_in)
            setattr(info, attr, value[: -len(stand_in)] + tld)
        info.normalized = f"{info.local_part}@{info.domain}"
        if info.ascii_email is not None:
            info.ascii_email = f"{info.ascii_local_part}@{info.ascii_domain}"
        return info


@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain.lower()
    return str(idna.encode(domain, uts46=False).decode("ascii"))


def wire_parts(stored: str) -> tuple[str, str]:
    """(local part, A-label domain) of an address as stored; ValueError if it is not one.

    Cheaper than normalize_email for addresses that were normalised when stored.
    """
    local, sep, domain = stored.rpartition("@")
    if not sep or not local or not domain:
        raise ValueError(f"not an email address: {stored!r}")
    try:
        return local, _ascii_domain(domain)
    except idna.IDNAError as exc:
        raise ValueError(f"domain {domain!r} is not valid IDNA: {exc}") from exc


def email_key(local_part: str, ascii_domain: str) -> str:
    """The uniqueness key: Unicode case fold of the local part, lower-case A-label domain."""
    local = unicodedata.normalize("NFC", local_part).casefold()
    return f"{local}@{ascii_domain.lower()}"


def key_for(raw: str) -> str | None:
    """The uniqueness key for some typed address, or None if it is not a valid address."""
    try:
        return normalize_email(raw).key
    except ValidationError:
        return None


def check_display_name(raw: str | None) -> str:
    """A display name with surrounding blanks removed; refuses controls (CR, LF, NUL, ...)."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValidationError("display_name", "must be text")
    for ch in raw:
        if unicodedata.category(ch) == "Cc" or ch in _INVISIBLE_CONTROLS:
            raise ValidationError(
                "display_name",
                f"control character U+{ord(ch):04X} is not allowed",
            )
    name = raw.strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise ValidationError("display_name", f"at most {MAX_DISPLAY_NAME} characters")
    return name


# Passwords of 8 characters or more that lead every published list of leaked passwords.
_COMMON_PASSWORDS = frozenset("""
password password1 password12 password123 password1234 passw0rd p@ssw0rd p@ssword
12345678 123456789 1234567890 12341234 11111111 00000000 87654321 11223344 12121212
qwertyui qwertyuiop qwerty12 qwerty123 qwerty1234 1q2w3e4r 1q2w3e4r5t 1qaz2wsx zaq12wsx
qwer1234 asdfghjk asdfghjkl asdf1234 zxcvbnm1 abcd1234 abc12345 abcd12345 aa123456
iloveyou iloveyou1 sunshine princess football baseball basketball superman batman123
starwars whatever computer internet trustno1 letmein1 welcome1 welcome123 dragon123
monkey123 michael1 jennifer jordan23 charlie1 shadow12 master12 mustang1 admin123
administrator changeme changeme1 default1 secret123 test1234 testtest 1234qwer
""".split())
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl",
              "zxcvbnm")


def check_password(raw: str, email: NormalizedEmail | None = None) -> str:
    """The password unchanged if acceptable, else ValidationError("password") saying why.

    8 to 1024 characters, and none of what NIST SP 800-63B says to refuse: one of the
    most common passwords, one character repeated, a run of the alphabet, the digits or
    a keyboard row, or (given the address) the address or the part before its @.
    """
    if not isinstance(raw, str):
        raise ValidationError("password", "must be text")
    if len(raw) < MIN_PASSWORD:
        raise ValidationError("password", f"must be at least {MIN_PASSWORD} characters")
    if len(raw) > MAX_PASSWORD:
        raise ValidationError("password", f"must be at most {MAX_PASSWORD} characters")
    if "\x00" in raw:
        raise ValidationError("password", "must not contain NUL")
    folded = raw.casefold()
    if folded in _COMMON_PASSWORDS:
        raise ValidationError("password", "is one of the most common passwords; choose another")
    if len(set(folded)) == 1:
        raise ValidationError("password", "is one character repeated; choose another")
    if any(folded in run or folded in run[::-1] for run in _SEQUENCES):
        raise ValidationError("password", "is a run of letters, digits or keys; choose another")
    if email is not None and folded in (email.address.casefold(), email.local_part.casefold()):
        raise ValidationError("password", "must not be the email address; choose another")
    return raw
