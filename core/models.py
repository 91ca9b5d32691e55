"""The app database's tables: users, the outbox, delivery attempts, rate events, heartbeats.

Times are stored as UTC Unix timestamps (REAL): exact, cheap to compare and index,
and free of SQLite's naive-datetime round trip. The read models in queries.py turn
them into timezone-aware datetimes; these rows never leave core.
"""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

# Outbox states (DESIGN.md, "The states of an outbound email").
QUEUED = "queued"
SENDING = "sending"
RETRYING = "retrying"
SENT = "sent"
FAILED = "failed"
OUTBOX_STATUSES = (QUEUED, SENDING, RETRYING, SENT, FAILED)

# Kinds of outbound email.
KIND_ACTIVATION = "activation"
KIND_SIGNUP_ATTEMPT_NOTICE = "signup_attempt_notice"

# User states.
PENDING = "pending"
ACTIVE = "active"


class User(SQLModel, table=True):
    """A registered person; `email` is the address as stored, `email_key` its uniqueness key."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str
    email_key: str = Field(unique=True)
    display_name: str = ""
    password_hash: str
    status: str = PENDING
    created_at: float
    activated_at: float | None = None
    signup_ms: float | None = None


class Outbox(SQLModel, table=True):
    """One email the engine owes someone: the unit of delivery.

    For activation emails the token itself is never stored: only `token_nonce`
    (to re-derive it with the secret key at send time) and `token_hash` (to find
    the row when the token comes back).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_user", "user_id"),
        Index("ix_outbox_token_hash", "token_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id")
    kind: str
    is_resend: bool = False
    to_addr: str
    to_name: str = ""
    subject: str
    status: str = QUEUED
    attempts: int = 0
    max_attempts: int
    next_attempt_at: float | None = None
    lease_until: float | None = None
    last_code: int | None = None
    last_error: str | None = None
    message_id: str = ""
    created_at: float
    updated_at: float
    sent_at: float | None = None
    token_nonce: str | None = None
    token_hash: str | None = None
    token_used_at: float | None = None
    # The Engine instance (a worker process) holding the row while `sending`; with the
    # heartbeat this lets the sweeper recover a killed worker's rows before the lease ends.
    claimed_by: str | None = None


class DeliveryAttempt(SQLModel, table=True):
    """One SMTP conversation for one outbound email."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_attempts_outbox", "outbox_id"),)

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id")
    number: int
    started_at: float
    duration_ms: float
    code: int | None = None
    reply: str = ""
    outcome: str
    error: str | None = None


# Kinds of request counted in rate_events.
RATE_RESEND = "resend"


class RateEvent(SQLModel, table=True):
    """One request counted by a per-address limit (today: resend requests).

    `key` is an HMAC of the address's uniqueness key under the data directory's
    secret: addresses typed for no account are counted without being kept in clear.
    Rows older than the limit's window are deleted as new ones arrive.
    """

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_kind_key_at", "kind", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    key: str
    at: float


class WorkerBeat(SQLModel, table=True):
    """A running queue consumer announces itself here and refreshes `beat_at`."""

    __tablename__ = "workers"

    id: str = Field(primary_key=True)
    engine_id: str = ""
    pid: int
    hostname: str
    threads: int
    started_at: float
    beat_at: float
