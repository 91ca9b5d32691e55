"""Activation tokens, the secret key they are derived from, and stable Message-IDs.

A token is ``HMAC-SHA256(secret, "activation|user_id|address|nonce")`` in
URL-safe base64. The database keeps only the nonce and SHA-256 of the token: the
worker re-derives the token at send time with the secret (a file ``secret.key``
in the data directory, mode 0600), while someone holding only the database can
neither replay a token nor compute one. A token is bound to the user and to the
address the email went to: change either and it no longer verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

from core.errors import DataFolderError

SECRET_FILE = "secret.key"
SECRET_BYTES = 32
SECRET_WAIT_SECONDS = 2.0  # how long a secret another process is writing may take
NONCE_BYTES = 16

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


def load_or_create_secret(data_dir: Path) -> bytes:
    """The data directory's secret key, created (0600) on first use."""
    path = data_dir / SECRET_FILE
    try:
        data = path.read_bytes()
        if len(data) >= SECRET_BYTES:
            return data
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first; use theirs once it is written.
        deadline = time.monotonic() + SECRET_WAIT_SECONDS
        while True:
            data = path.read_bytes()
            if len(data) >= SECRET_BYTES:
                return data
            if time.monotonic() > deadline:
                raise DataFolderError(
                    f"{path} is damaged ({len(data)} bytes; a key has {SECRET_BYTES}): "
                    "move it away and Mailroom makes a new one (activation links already "
                    "sent then stop working)"
                ) from None
            time.sleep(0.01)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    os.chmod(path, 0o600)
    return key


def new_nonce() -> str:
    """A fresh random nonce for one token."""
    return secrets.token_hex(NONCE_BYTES)


def derive_token(secret: bytes, user_id: int, address: str, nonce: str) -> str:
    """The activation token for this user, address and nonce."""
    msg = f"activation|{user_id}|{address}|{nonce}".encode()
    digest = hmac.new(secret, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def hash_token(token: str) -> str:
    """What the database stores to find a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def extract_token(token_or_link: str) -> str | None:
    """The token from a bare token or an activation link (`.../activate/<token>`), or None."""
    text = (token_or_link or "").strip()
    if "/" in text:
        text = text.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        text = text.rsplit("/", 1)[-1]
    return text if _TOKEN_RE.match(text) else None


def activation_link(base_url: str, token: str) -> str:
    """The link a person follows to activate."""
    return f"{base_url.rstrip('/')}/activate/{token}"


def message_id_for(secret: bytes, outbox_id: int) -> str:
    """A Message-ID derived from the outbox id: the same on every attempt, unique per data dir."""
    tag = hmac.new(secret, f"message-id|{outbox_id}".encode(), hashlib.sha256).hexdigest()[:12]
    return f"<outbox-{outbox_id}.{tag}@mailroom.localhost>"
