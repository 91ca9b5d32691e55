"""The per-email headers written directly are the bytes EmailMessage writes for them.

`build_message` renders To, Message-ID and X-Mailroom-Outbox-Id with plain string
formatting when nothing in them needs quoting, encoding or folding, and hands every
other case to EmailMessage. Each case is compared here with EmailMessage's own output.
"""

from __future__ import annotations

import string
from email.headerregistry import Address

from hypothesis import given, settings
from hypothesis import strategies as st

from core import delivery
from core.delivery import OutgoingEmail, _header_block, _plain_variable_headers

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
TRICKY_NAMES = [
    "", "Ann", "Ann Lee", "Ann  Lee", " Ann", "Ann ", "J. Lee", "Lee, Ann", 'Ann "A" Lee',
    "Ann (x)", "Ann <a>", "Zoë", "日本", "a" * 80, "Ann;Lee", "Ann@Lee", "Ann\\Lee", "O'Brien",
    "=?utf-8?q?x?=", "Ann\tLee",
]
TRICKY_LOCALS = ["a", "a.b", "a..b", ".a", "a.", "a+b", "A_B", '"a b"', "a b", "üser",
                 "x" * 64, "a(b)", "{x}|~"]
TRICKY_DOMAINS = ["example.com", "EXAMPLE.COM", "ex-ample.test", "-x.com", "x-.com", "a..b",
                  "localhost", "xn--bcher-kva.example", "[127.0.0.1]", "a_b.com", "x" * 70 + ".com"]


def _mail(name: str, local: str, domain: str, message_id: str = "<outbox-7@mailroom.localhost>",
          outbox_id: int = 7) -> OutgoingEmail:
    return OutgoingEmail(outbox_id, "activation", "Mailroom <noreply@mailroom.localhost>", local,
                         domain, name, "Activate your account", message_id, link="http://x/a")


def _by_email_message(mail: OutgoingEmail) -> bytes:
    return _header_block(False, [
        ("To", Address(display_name=mail.to_name, username=mail.to_local, domain=mail.to_domain)),
        ("Message-ID", mail.message_id),
        ("X-Mailroom-Outbox-Id", str(mail.outbox_id)),
    ])


def _agrees(mail: OutgoingEmail) -> bool:
    """True when the direct path applied (and then it must equal EmailMessage's bytes)."""
    fast = _plain_variable_headers(mail)
    if fast is None:
        return False
    assert fast == _by_email_message(mail), mail
    return True


def test_tricky_names_addresses_and_ids_are_equal_or_declined() -> None:
    """Every tricky combination gives EmailMessage's bytes or goes to EmailMessage."""
    taken = 0
    for name in TRICKY_NAMES:
        for local in TRICKY_LOCALS:
            for domain in TRICKY_DOMAINS:
                taken += _agrees(_mail(name, local, domain))
    for message_id in ["<a@b>", "a@b", "<a b@c>", "<a@b>x", "<" + "m" * 80 + "@b>", "<ü@b>"]:
        taken += _agrees(_mail("Ann", "a", "b.example", message_id))
    assert taken > 100  # the direct path is the common one, not a dead branch


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(alphabet=ATEXT + " .,\"()<>@é", max_size=40),
    local=st.text(alphabet=ATEXT + ".", min_size=1, max_size=30),
    domain=st.text(alphabet=string.ascii_letters + string.digits + ".-", min_size=1, max_size=30),
    outbox_id=st.integers(min_value=1, max_value=10**12),
)
def test_generated_headers_are_equal_or_declined(
    name: str, local: str, domain: str, outbox_id: int
) -> None:
    """For generated names, addresses and ids the direct path is exact or declines."""
    _agrees(_mail(name, local, domain, f"<outbox-{outbox_id}@mailroom.localhost>", outbox_id))


def test_a_non_ascii_name_still_gets_encoded_words() -> None:
    """A name the direct path declines is still RFC 2047-encoded by EmailMessage."""
    rendered = delivery.build_message(_mail("Zoë Lee", "zoe", "example.com"))
    head = rendered.data.split(b"\r\n\r\n", 1)[0]
    assert b"To: =?utf-8?q?Zo=C3=AB?= Lee <zoe@example.com>" in head
