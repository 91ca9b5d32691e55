"""Message generators: small activation-like messages for ingest, and a realistic mix for
the 100,000-message inbox.

Both are deterministic (seeded), build raw RFC 5322 bytes directly (fast: no email package
on the hot path) and use CRLF line ends. The realistic mix has varied sizes, HTML
alternatives, encoded-word subjects, attachments of several sizes, and the marker word
MARKER in the body of exactly 1 % of the messages (never in a subject), so that a
full-text search has a known answer.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

MARKER = "quokkazanzibar"
MARKER_EVERY = 100  # one message in a hundred carries the marker

_WORDS = (
    "account activate address after again almost already also always another answer "
    "because before below between build button change check click close code confirm "
    "could create customer data delivery details device email enable ensure every "
    "expire first follow from further general group hello help here invoice just keep "
    "later link login made message minutes month never notice number order other "
    "password payment please privacy profile quickly receipt recent request reset "
    "review secure security service setting should since sign someone start status "
    "subscription support team thanks their there these this through today token "
    "trial update using verify welcome when which while within without would your"
).split()

_NAMES = ("Ada", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret", "Dennis",
          "Frances", "Edsger", "Radia", "Tim", "Sophie", "Anita", "Donald", "Niklaus")
_DOMAINS = ("example.com", "example.org", "example.net", "shop.example", "app.example")
_UNICODE_SUBJECTS = ("Bestätigen Sie Ihre Adresse", "Votre reçu de paiement",
                     "ご登録ありがとうございます", "Подтвердите регистрацию", "¡Bienvenido!")


@dataclass(frozen=True)
class GeneratedMessage:
    """One generated message: envelope and raw bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    has_marker: bool = False
    attachments: int = 0


def small_message(i: int) -> GeneratedMessage:
    """A small (about 1 KB) activation-style message, unique by i."""
    to = f"user{i}@example.com"
    body = (
        f"Hello user {i},\r\n\r\n"
        "Please confirm your address by opening this link within 48 hours:\r\n\r\n"
        f"http://127.0.0.1:8025/activate/{i:08d}abcdefghijklmnopqrstuvwxyz0123456789\r\n\r\n"
        "If you did not sign up, you can ignore this message; nothing happens until the\r\n"
        "link is opened.\r\n\r\n"
        "-- \r\nThe Mailroom team\r\n"
    )
    raw = (
        "From: Mailroom <no-reply@mailroom.localhost>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: Activate your account ({i})\r\n"
        "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
        f"Message-ID: <bench-{i}@mailroom.localhost>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n" + body
    ).encode("ascii")
    return GeneratedMessage("no-reply@mailroom.localhost", (to,), raw)


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, target_bytes: int, marker: bool) -> list[str]:
    paras: list[str] = []
    size = 0
    while size < target_bytes:
        para = " ".join(_sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(2, 5)))
        paras.append(para)
        size += len(para) + 4
    if marker:
        idx = rng.randrange(len(paras))
        words = paras[idx].split(" ")
        words.insert(rng.randrange(len(words) + 1), MARKER)
        paras[idx] = " ".join(words)
    return paras


def _wrap(text: str, width: int = 76) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _encoded_subject(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def realistic_message(i: int, seed: int = 6) -> GeneratedMessage:
    """Message number i of the realistic mix (the same bytes for the same i and seed)."""
    rng = random.Random(seed * 1_000_003 + i)
    name = rng.choice(_NAMES)
    sender = f"{name.lower()}@{rng.choice(_DOMAINS)}"
    to = f"user{i % 5000}@example.com"
    rcpts: tuple[str, ...] = (to,)
    if rng.random() < 0.05:
        rcpts = (to, f"cc{i % 97}@example.org")
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i * 30 + rng.randint(0, 29))
    marker = i % MARKER_EVERY == 37
    if rng.random() < 0.1:
        subject = _encoded_subject(f"{rng.choice(_UNICODE_SUBJECTS)} #{i}")
    else:
        subject = f"{_sentence(rng, rng.randint(3, 8))[:-1]} #{i}"

    roll = rng.random()
    if roll < 0.01:
        attach_sizes = [rng.randint(100_000, 200_000)]
    elif roll < 0.11:
        attach_sizes = [rng.randint(4_000, 40_000) for _ in range(rng.randint(1, 2))]
    else:
        attach_sizes = []
    text_size = rng.choice((600, 1200, 2500, 4000, 7000))
    paras = _paragraphs(rng, text_size, marker)
    text_body = "\r\n\r\n".join("\r\n".join(_wrap(p)) for p in paras) + "\r\n"
    with_html = rng.random() < 0.6

    boundary_alt = f"alt-{i:06d}-{rng.getrandbits(32):08x}"
    boundary_mix = f"mix-{i:06d}-{rng.getrandbits(32):08x}"
    headers = (
        f"From: {name} <{sender}>\r\n"
        f"To: {', '.join(f'<{r}>' for r in rcpts)}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: <gen-{seed}-{i}@{sender.split('@')[1]}>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    text_part = ("Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 7bit\r\n\r\n" + text_body)
    if with_html:
        html = "".join(f"<p>{p}</p>\r\n" for p in paras)
        html_doc = ("<!doctype html>\r\n<html><body style=\"font-family:sans-serif\">\r\n"
                    + "\r\n".join(_wrap(html, 200)) + "\r\n</body></html>\r\n")
        html_part = ("Content-Type: text/html; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: 7bit\r\n\r\n" + html_doc)
        body_part = (f"Content-Type: multipart/alternative; boundary=\"{boundary_alt}\"\r\n\r\n"
                     f"--{boundary_alt}\r\n{text_part}\r\n--{boundary_alt}\r\n{html_part}\r\n"
                     f"--{boundary_alt}--\r\n")
    else:
        body_part = text_part

    if not attach_sizes:
        raw = headers + body_part
    else:
        parts = [body_part]
        for n, size in enumerate(attach_sizes):
            data = rng.randbytes(size)
            b64 = base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")
            kind, ext = rng.choice((("application/pdf", "pdf"), ("image/png", "png"),
                                    ("text/csv", "csv")))
            fname = f"document-{i}-{n}.{ext}"
            parts.append(f"Content-Type: {kind}; name=\"{fname}\"\r\n"
                         f"Content-Disposition: attachment; filename=\"{fname}\"\r\n"
                         "Content-Transfer-Encoding: base64\r\n\r\n" + b64)
        raw = (headers + f"Content-Type: multipart/mixed; boundary=\"{boundary_mix}\"\r\n\r\n"
               + "".join(f"--{boundary_mix}\r\n{p}\r\n" for p in parts)
               + f"--{boundary_mix}--\r\n")
    return GeneratedMessage(sender, rcpts, raw.encode("utf-8"), marker, len(attach_sizes))


def realistic_messages(count: int, seed: int = 6) -> Iterator[GeneratedMessage]:
    """The first count messages of the realistic mix."""
    for i in range(count):
        yield realistic_message(i, seed)
