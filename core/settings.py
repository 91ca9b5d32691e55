"""Engine settings: where data lives, how mail is sent and retried, how long tokens last.

Settings are built once (from command-line flags and the environment) and passed
down explicitly; nothing reads the environment anywhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import platformdirs

DeliveryMode = Literal["queue", "sync"]
DELIVERY_MODES: tuple[DeliveryMode, ...] = ("queue", "sync")

APP_DB_NAME = "mailroom.db"
QUEUE_DB_NAME = "queue.db"
MAIL_DB_NAME = "mail.db"


def default_data_dir() -> Path:
    """The platform's per-user data folder for Mailroom, unless MAILROOM_DATA_DIR says otherwise."""
    env = os.environ.get("MAILROOM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("mailroom", appauthor=False))



def check_base_url(text: str) -> str:
    """The base of activation links, if it is an absolute http(s) URL; else ValueError.

    The links go into emails: a typo or a `javascript:` URL would reach every recipient.
    """
    from urllib.parse import urlsplit

    url = text.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
        ch.isspace() or ord(ch) < 32 for ch in url
    ):
        raise ValueError(
            f"the base URL must be an absolute http:// or https:// URL, not {text[:80]!r}"
        )
    return url

@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential back-off with jitter.

    Attempt n (1-based) that failed temporarily is retried after
    min(cap, base * factor**(n-1)) seconds, scaled by a random factor in
    [1 - jitter, 1 + jitter]. The defaults spread 8 attempts over about an hour.
    """

    max_attempts: int = 8
    base_seconds: float = 30.0
    factor: float = 2.0
    cap_seconds: float = 1200.0
    jitter: float = 0.2


@dataclass(frozen=True)
class Settings:
    """Everything the engine needs to know about its surroundings."""

    data_dir: Path = field(default_factory=default_data_dir)
    # SQLAlchemy URL of the app database; None means a SQLite file in data_dir.
    database_url: str | None = None
    # SMTP server the engine delivers to (by default the built-in catcher).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout: float = 10.0
    # Where the activation link points; the HTTP port of `serve` or the GUI answers it.
    http_host: str = "127.0.0.1"
    http_port: int = 8025
    base_url: str | None = None
    sender: str = "Mailroom <no-reply@mailroom.localhost>"
    delivery: DeliveryMode = "queue"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    token_ttl_seconds: float = 48 * 3600
    # At most this many resend requests per address (its email_key) within the window,
    # counted alike for unknown, pending and active addresses (no account enumeration).
    resend_limit: int = 3
    resend_window_seconds: float = 3600
    # At most this many "someone tried to sign up with your address" notices per
    # address within the window; further duplicate sign-ups get the same answer but
    # queue no email (so repeated sign-ups cannot flood the owner).
    signup_notice_limit: int = 1
    signup_notice_window_seconds: float = 900
    # A claimed ("sending") row whose lease ran out is taken to be abandoned.
    lease_seconds: float = 120.0
    sweep_interval_seconds: float = 5.0
    # The sweeper leaves a queued row alone this long before assuming its task was lost.
    sweep_grace_seconds: float = 5.0
    # Worker liveness: a heartbeat row is refreshed this often; 3 missed beats = gone.
    heartbeat_seconds: float = 2.0
    # Idle Huey workers poll the queue starting at this delay, backing off to the max
    # (a poll is one indexed SELECT; work enqueued by the same process wakes them at once).
    worker_poll_seconds: float = 0.02
    worker_max_poll_seconds: float = 0.1
    # How often scheduled (delayed) retries are moved to the queue; Huey's minimum is 1 s.
    scheduler_interval_seconds: float = 1.0
    # argon2id cost; None means argon2-cffi's defaults (tests pass cheap values).
    argon2_time_cost: int | None = None
    argon2_memory_cost: int | None = None
    argon2_parallelism: int | None = None

    @property
    def app_db_path(self) -> Path:
        return self.data_dir / APP_DB_NAME

    @property
    def queue_db_path(self) -> Path:
        return self.data_dir / QUEUE_DB_NAME

    @property
    def mail_db_path(self) -> Path:
        return self.data_dir / MAIL_DB_NAME

    @property
    def app_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.app_db_path}"

    @property
    def activation_base_url(self) -> str:
        """Base of activation links, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.http_host}:{self.http_port}"

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from MAILROOM_* environment variables, then explicit overrides (flags)."""
        values: dict[str, object] = {}
        env = os.environ
        if "MAILROOM_DATA_DIR" in env:
            values["data_dir"] = Path(env["MAILROOM_DATA_DIR"]).expanduser()
        if "MAILROOM_DATABASE_URL" in env:
            values["database_url"] = env["MAILROOM_DATABASE_URL"]
        if "MAILROOM_BASE_URL" in env:
            values["base_url"] = env["MAILROOM_BASE_URL"]
        if "MAILROOM_DELIVERY" in env:
            mode = env["MAILROOM_DELIVERY"].strip().lower()
            if mode not in DELIVERY_MODES:
                raise ValueError(
                    f"MAILROOM_DELIVERY must be one of {', '.join(DELIVERY_MODES)}, not {mode!r}"
                )
            values["delivery"] = mode
        for name, field_name in (("MAILROOM_SMTP_PORT", "smtp_port"),
                                 ("MAILROOM_HTTP_PORT", "http_port")):
            if name in env:
                text = env[name].strip()
                if not text.isdigit() or not 0 < int(text) < 65536:
                    raise ValueError(f"{name} must be a TCP port (1-65535), not {text!r}")
                values[field_name] = int(text)
        if "MAILROOM_SMTP_HOST" in env:
            values["smtp_host"] = env["MAILROOM_SMTP_HOST"].strip()
        values.update({k: v for k, v in overrides.items() if v is not None})
        base = values.get("base_url")
        if isinstance(base, str):
            values["base_url"] = check_base_url(base)
        return cls(**values)  # type: ignore[arg-type]
