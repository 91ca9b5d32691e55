"""Read models for the GUI and the CLI: frozen dataclasses, never live database rows.

Every datetime here is timezone-aware UTC. Functions take a Database and open
their own short session, so they are safe to call from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, text
from sqlmodel import col, select

from core.db import Database, to_datetime
from core.models import OUTBOX_STATUSES, DeliveryAttempt, Outbox, User, WorkerBeat
from core.settings import DeliveryMode

UserStatus = Literal["pending", "active"]
OutboxStatus = Literal["queued", "sending", "retrying", "sent", "failed"]
AttemptOutcome = Literal["sent", "retry", "failed"]
ActivationOutcome = Literal["activated", "already_active", "expired", "invalid"]


@dataclass(frozen=True)
class RegistrationResult:
    """The answer to a sign-up.

    The public answer is `status`, `message` and `delivery`: the same for a new
    address, a taken one, and a taken one whose owner was told recently. `email`
    is the address as typed (canonical domain), never the stored spelling.

    `user_id` and `outbox_id` are operator information (the console shows them; a
    front-end facing strangers must not):

    - new address: both set (the user, the activation email);
    - taken address: `user_id` is None (the engine will not say who owns it) and
      `outbox_id` is the "someone tried to sign up with your address" email
      queued to the owner's stored address;
    - taken address whose owner already got `signup_notice_limit` notices within
      `signup_notice_window_seconds`: both None, because nothing was queued. An
      id of an earlier notice would be a lie (this sign-up did not cause it) and a
      fresh id would need an email that must not be sent. None says no more than
      `user_id` None already says (the address is taken), plus that its owner
      was notified recently, which the outbox shows the operator anyway.

    `hash_ms` is the part of `elapsed_ms` spent hashing the password (hashed in
    every case, so timing does not tell them apart either).
    """

    user_id: int | None
    email: str
    status: UserStatus
    outbox_id: int | None
    elapsed_ms: float
    delivery: DeliveryMode
    hash_ms: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class ActivationResult:
    """What happened to an activation attempt; `message` is a sentence for a person."""

    outcome: ActivationOutcome
    user_id: int | None
    email: str | None
    message: str


@dataclass(frozen=True)
class ResendResult:
    """The answer to a resend request.

    `email` (the address as typed, canonical domain) and `message` are the same
    whether the address is unknown, pending or active. `outbox_id` is operator
    information: the new activation email's id when one was queued (a pending
    user), else None; a front-end facing strangers must show only `message`.
    """

    outbox_id: int | None
    email: str
    message: str = ""


@dataclass(frozen=True)
class UserView:
    """A registered person."""

    id: int
    email: str
    display_name: str
    status: UserStatus
    created_at: datetime
    activated_at: datetime | None
    signup_ms: float | None


@dataclass(frozen=True)
class OutboxView:
    """One outbound email and where its delivery stands."""

    id: int
    user_id: int
    kind: str
    to: str
    subject: str
    status: OutboxStatus
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    last_code: int | None
    last_error: str | None
    message_id: str
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime | None = None
    lease_until: datetime | None = None
    token_expires_at: datetime | None = None
    token_used_at: datetime | None = None


@dataclass(frozen=True)
class AttemptView:
    """One SMTP conversation for one outbound email."""

    id: int
    outbox_id: int
    number: int
    started_at: datetime
    duration_ms: float
    code: int | None
    reply: str
    outcome: AttemptOutcome
    error: str | None
    to: str = ""  # the recipient, filled in by the event feed (list_attempts_since)


@dataclass(frozen=True)
class SignupPath:
    """Everything about one sign-up: the user, each outbound email, every attempt, activation."""

    user: UserView
    outbox: list[OutboxView]
    attempts: dict[int, list[AttemptView]]
    activated_at: datetime | None
    created_at: datetime
    signup_ms: float | None
    activated_via_outbox_id: int | None = None


@dataclass(frozen=True)
class QueueStats:
    """Queue depth, outbox counts by status, and live workers."""

    pending_tasks: int
    by_status: dict[str, int]
    workers_alive: int
    scheduled_tasks: int = 0
    worker_threads: int = 0
    by_status_total: int = field(default=0)


def user_view(row: User) -> UserView:
    """The read model of a user row."""
    assert row.id is not None
    created = to_datetime(row.created_at)
    assert created is not None
    return UserView(
        id=row.id,
        email=row.email,
        display_name=row.display_name,
        status="active" if row.status == "active" else "pending",
        created_at=created,
        activated_at=to_datetime(row.activated_at),
        signup_ms=row.signup_ms,
    )


def outbox_view(row: Outbox, token_ttl_seconds: float) -> OutboxView:
    """The read model of an outbox row."""
    assert row.id is not None
    created = to_datetime(row.created_at)
    assert created is not None
    expires = None
    if row.token_hash is not None:
        expires = to_datetime((row.sent_at or row.created_at) + token_ttl_seconds)
    status = row.status if row.status in OUTBOX_STATUSES else "failed"
    return OutboxView(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        to=row.to_addr,
        subject=row.subject,
        status=status,  # type: ignore[arg-type]
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        next_attempt_at=to_datetime(row.next_attempt_at),
        last_code=row.last_code,
        last_error=row.last_error,
        message_id=row.message_id,
        created_at=created,
        sent_at=to_datetime(row.sent_at),
        updated_at=to_datetime(row.updated_at),
        lease_until=to_datetime(row.lease_until),
        token_expires_at=expires,
        token_used_at=to_datetime(row.token_used_at),
    )


def attempt_view(row: DeliveryAttempt, to: str = "") -> AttemptView:
    """The read model of a delivery attempt row."""
    assert row.id is not None
    started = to_datetime(row.started_at)
    assert started is not None
    outcome = row.outcome if row.outcome in ("sent", "retry", "failed") else "failed"
    return AttemptView(
        id=row.id,
        outbox_id=row.outbox_id,
        number=row.number,
        started_at=started,
        duration_ms=row.duration_ms,
        code=row.code,
        reply=row.reply,
        outcome=outcome,  # type: ignore[arg-type]
        error=row.error,
        to=to,
    )


def list_users(
    db: Database, limit: int | None = None, offset: int = 0, upto: int | None = None
) -> list[UserView]:
    """Users, newest first; with upto, only those with an id up to it (a stable page)."""
    with db.read() as s:
        stmt = select(User)
        if upto is not None:
            stmt = stmt.where(col(User.id) <= upto)
        stmt = stmt.order_by(col(User.id).desc()).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [user_view(r) for r in s.exec(stmt)]


def count_users(db: Database, upto: int | None = None) -> int:
    """How many users there are (with upto, with an id up to it)."""
    return _count_upto(db, "users", "", {}, upto)


def count_outbox(db: Database, status: str | None = None, upto: int | None = None) -> int:
    """How many outbound emails there are (in a status; with upto, with an id up to it)."""
    if status is None:
        return _count_upto(db, "outbox", "", {}, upto)
    return _count_upto(db, "outbox", "status = :status", {"status": status}, upto)


def _count_upto(
    db: Database, table: str, where: str, params: dict[str, Any], upto: int | None
) -> int:
    """count(*) of table where `where`, less the rows with an id above upto.

    Counted as all minus the newest (one statement, so one snapshot): the newest are a
    short range of the primary key, while "id <= upto" would read the whole table.
    """
    cond = f" WHERE {where}" if where else ""
    sql = f"SELECT count(*) FROM {table}{cond}"
    if upto is not None:
        newer = f"{where} AND id > :upto" if where else "id > :upto"
        sql = f"SELECT ({sql}) - (SELECT count(*) FROM {table} WHERE {newer})"
        params = {**params, "upto": upto}
    with db.read() as s:
        return int(s.execute(text(sql), params).scalar_one())


def get_user(db: Database, user_id: int) -> UserView | None:
    """One user by id."""
    with db.read() as s:
        row = s.get(User, user_id)
        return user_view(row) if row is not None else None


def find_user_by_key(db: Database, key: str) -> UserView | None:
    """One user by uniqueness key (see identity.email_key)."""
    with db.read() as s:
        row = s.exec(select(User).where(col(User.email_key) == key)).first()
        return user_view(row) if row is not None else None


def list_outbox(
    db: Database,
    token_ttl_seconds: float,
    status: str | None = None,
    user_id: int | None = None,
    limit: int | None = None,
    offset: int = 0,
    upto: int | None = None,
) -> list[OutboxView]:
    """Outbound emails, newest first, optionally by status and/or user, and with an id
    up to `upto` (a stable page while new ones are queued)."""
    with db.read() as s:
        stmt = select(Outbox)
        if status is not None:
            stmt = stmt.where(col(Outbox.status) == status)
        if upto is not None:
            stmt = stmt.where(col(Outbox.id) <= upto)
        if user_id is not None:
            stmt = stmt.where(col(Outbox.user_id) == user_id)
        stmt = stmt.order_by(col(Outbox.id).desc()).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [outbox_view(r, token_ttl_seconds) for r in s.exec(stmt)]


def get_outbox(db: Database, outbox_id: int, token_ttl_seconds: float) -> OutboxView | None:
    """One outbound email by id."""
    with db.read() as s:
        row = s.get(Outbox, outbox_id)
        return outbox_view(row, token_ttl_seconds) if row is not None else None


def list_attempts(db: Database, outbox_id: int) -> list[AttemptView]:
    """Every delivery attempt of one outbound email, in order."""
    with db.read() as s:
        stmt = (
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.outbox_id) == outbox_id)
            .order_by(col(DeliveryAttempt.id))
        )
        return [attempt_view(r) for r in s.exec(stmt)]


def list_attempts_since(db: Database, after_id: int, limit: int = 500) -> list[AttemptView]:
    """Attempts with id > after_id, oldest first, each with its recipient (an event feed
    that works across processes, one query per call)."""
    with db.read() as s:
        stmt = (
            select(DeliveryAttempt, Outbox.to_addr)
            .join(Outbox, col(Outbox.id) == col(DeliveryAttempt.outbox_id))
            .where(col(DeliveryAttempt.id) > after_id)
            .order_by(col(DeliveryAttempt.id))
            .limit(limit)
        )
        return [attempt_view(r, to) for r, to in s.exec(stmt)]


def attempts_after(db: Database, after_id: int) -> tuple[int, int]:
    """(how many attempts have an id above after_id, the highest such id or after_id)."""
    with db.read() as s:
        count, last = s.exec(
            select(func.count(), func.max(DeliveryAttempt.id)).where(
                col(DeliveryAttempt.id) > after_id
            )
        ).one()
    return int(count), int(last if last is not None else after_id)


def get_signup_path(db: Database, user_id: int, token_ttl_seconds: float) -> SignupPath | None:
    """The whole story of one sign-up."""
    with db.read() as s:
        user = s.get(User, user_id)
        if user is None:
            return None
        rows = s.exec(
            select(Outbox).where(col(Outbox.user_id) == user_id).order_by(col(Outbox.id))
        ).all()
        ids = [r.id for r in rows if r.id is not None]
        attempts: dict[int, list[AttemptView]] = {i: [] for i in ids}
        if ids:
            for a in s.exec(
                select(DeliveryAttempt)
                .where(col(DeliveryAttempt.outbox_id).in_(ids))
                .order_by(col(DeliveryAttempt.id))
            ):
                attempts[a.outbox_id].append(attempt_view(a))
        via = next((r.id for r in rows if r.token_used_at is not None), None)
        uv = user_view(user)
        return SignupPath(
            user=uv,
            outbox=[outbox_view(r, token_ttl_seconds) for r in rows],
            attempts=attempts,
            activated_at=uv.activated_at,
            created_at=uv.created_at,
            signup_ms=uv.signup_ms,
            activated_via_outbox_id=via,
        )


def outbox_counts(db: Database) -> dict[str, int]:
    """Outbox rows per status (every status present, zero if none)."""
    counts = dict.fromkeys(OUTBOX_STATUSES, 0)
    with db.read() as s:
        for status, n in s.exec(
            select(Outbox.status, func.count()).group_by(col(Outbox.status))
        ):
            counts[status] = int(n)
    return counts


def live_workers(db: Database, now: float, stale_after: float) -> tuple[int, int]:
    """(workers, threads) whose heartbeat is fresher than stale_after seconds."""
    with db.read() as s:
        rows = s.exec(select(WorkerBeat).where(col(WorkerBeat.beat_at) >= now - stale_after)).all()
        return len(rows), sum(r.threads for r in rows)
