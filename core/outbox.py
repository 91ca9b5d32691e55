"""The outbox's state machine: claim, finish an attempt, manual retry, the sweeper, back-off.

States: ``queued → sending → sent``; ``sending → retrying → sending``;
``sending → failed``; ``failed → queued`` (manual retry); a manual retry of a
``retrying`` row makes it due at once. Every transition is a
conditional UPDATE committed before the next step, so two workers can never hold
the same row and a crash leaves a row the sweeper can recognise.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, update
from sqlmodel import col, select

from core.db import Database, FastTx, now_ts
from core.delivery import SendResult
from core.models import (
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    DeliveryAttempt,
    Outbox,
    WorkerBeat,
)
from core.settings import RetryPolicy

# A scheduled retry may arrive this early (clock granularity of the Huey scheduler).
CLAIM_SLACK_SECONDS = 0.5
MAX_REPLY_CHARS = 2000


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): capped exponential + jitter."""
    base = min(policy.cap_seconds, policy.base_seconds * policy.factor ** max(0, attempt - 1))
    r = (rng or random).uniform(1.0 - policy.jitter, 1.0 + policy.jitter)
    return max(0.0, base * r)


@dataclass(frozen=True)
class ClaimedRow:
    """An outbox row this worker now holds (status `sending`, lease running)."""

    id: int
    user_id: int
    kind: str
    to_addr: str
    to_name: str
    subject: str
    message_id: str
    number: int
    max_attempts: int
    token_nonce: str | None


@dataclass(frozen=True)
class Finished:
    """Where an attempt left the row: new status and, for `retrying`, the delay."""

    status: str
    delay: float | None = None
    applied: bool = True


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


# The delivery hot path runs these on a plain Connection: the ORM costs milliseconds
# per statement, which would cap a worker at about a hundred emails a second.
_CLAIM_SQL = """
    UPDATE outbox
       SET status = 'sending', attempts = attempts + 1, lease_until = :lease_until,
           claimed_by = :claimed_by, updated_at = :now
     WHERE id = :id AND status IN ('queued', 'retrying')
       AND (next_attempt_at IS NULL OR next_attempt_at <= :due)
    RETURNING id, user_id, kind, to_addr, to_name, subject, message_id, attempts,
              max_attempts, token_nonce
"""
_INSERT_ATTEMPT_SQL = """
    INSERT INTO delivery_attempts
           (outbox_id, number, started_at, duration_ms, code, reply, outcome, error)
    VALUES (:outbox_id, :number, :started_at, :duration_ms, :code, :reply, :outcome, :error)
"""
_MARK_SENT_SQL = """
    UPDATE outbox
       SET status = 'sent', sent_at = :now, lease_until = NULL, claimed_by = NULL,
           next_attempt_at = NULL, last_code = :code, last_error = NULL, updated_at = :now
     WHERE id = :id AND status IN ('sending', 'queued', 'retrying')
"""
_MARK_OTHER_SQL = """
    UPDATE outbox
       SET status = :status, lease_until = NULL, claimed_by = NULL,
           next_attempt_at = :next_attempt_at, last_code = :code, last_error = :error,
           updated_at = :now
     WHERE id = :id AND status = 'sending' AND attempts = :number
"""


def claim(
    db: Database, outbox_id: int, lease_seconds: float, claimed_by: str | None = None
) -> ClaimedRow | None:
    """Take a queued or due retrying row: → `sending` with a lease. None if not claimable.

    `claimed_by` names the worker's Engine, so that the sweeper can tell when the
    holder has stopped beating; None (inline `sync` delivery) relies on the lease.
    """
    now = now_ts()
    params = {
        "id": outbox_id,
        "lease_until": now + lease_seconds,
        "claimed_by": claimed_by,
        "now": now,
        "due": now + CLAIM_SLACK_SECONDS,
    }
    rows = db.grouped_write(lambda tx: tx.execute(_CLAIM_SQL, params)[0])
    if not rows:
        return None
    (oid, user_id, kind, to_addr, to_name, subject, message_id, number, max_attempts,
     nonce) = rows[0]
    return ClaimedRow(
        id=int(oid),
        user_id=int(user_id),
        kind=str(kind),
        to_addr=str(to_addr),
        to_name=str(to_name),
        subject=str(subject),
        message_id=str(message_id),
        number=int(number),
        max_attempts=int(max_attempts),
        token_nonce=nonce,
    )


def finish_attempt(
    db: Database,
    row: ClaimedRow,
    started_at: float,
    duration_ms: float,
    result: SendResult,
    policy: RetryPolicy,
) -> Finished:
    """Record the attempt and move the row to sent, retrying or failed, in one transaction."""
    now = now_ts()
    delay: float | None = None
    if result.outcome == "sent":
        status, outcome = SENT, "sent"
    elif result.outcome == "retry" and row.number < row.max_attempts:
        status, outcome = RETRYING, "retry"
        delay = retry_delay(policy, row.number)
    else:
        status, outcome = FAILED, "failed"
    error = result.error
    if status == FAILED and result.outcome == "retry":
        error = f"gave up after {row.number} attempts; last: {result.error}"

    def record(tx: FastTx) -> int:
        tx.execute(
            _INSERT_ATTEMPT_SQL,
            {
                "outbox_id": row.id,
                "number": row.number,
                "started_at": started_at,
                "duration_ms": duration_ms,
                "code": result.code,
                "reply": result.reply[:MAX_REPLY_CHARS],
                "outcome": outcome,
                "error": error,
            },
        )
        if status == SENT:
            # A 250 is the truth even if the lease ran out meanwhile.
            _, done = tx.execute(_MARK_SENT_SQL, {"id": row.id, "now": now, "code": result.code})
            return done
        _, done = tx.execute(
            _MARK_OTHER_SQL,
            {
                "id": row.id,
                "status": status,
                "next_attempt_at": (now + delay) if delay is not None else None,
                "code": result.code,
                "error": error,
                "now": now,
                "number": row.number,
            },
        )
        return done

    # Grouped with other worker threads' writes (see Database.grouped_write).
    applied = db.grouped_write(record) == 1
    return Finished(status=status, delay=delay, applied=applied)


def requeue(
    db: Database, ids: Iterable[int], policy: RetryPolicy, *, send_now: bool = True
) -> list[int]:
    """Retry by hand; returns the ids moved.

    Failed rows → queued with a fresh budget of `policy.max_attempts` attempts.
    With `send_now`, retrying rows are made due at once (next_attempt_at = now):
    they stay `retrying`, with their attempt count and budget kept, and the task
    already scheduled for later finds nothing to claim (the claim needs a due row).
    """
    now = now_ts()
    moved: list[int] = []
    with db.write() as s:
        for outbox_id in dict.fromkeys(ids):
            result = s.execute(
                update(Outbox)
                .where(col(Outbox.id) == outbox_id, col(Outbox.status) == FAILED)
                .values(
                    status=QUEUED,
                    next_attempt_at=None,
                    lease_until=None,
                    max_attempts=col(Outbox.attempts) + policy.max_attempts,
                    updated_at=now,
                )
            )
            if _rowcount(result) == 0 and send_now:
                result = s.execute(
                    update(Outbox)
                    .where(col(Outbox.id) == outbox_id, col(Outbox.status) == RETRYING)
                    .values(next_attempt_at=now, updated_at=now)
                )
            if _rowcount(result) == 1:
                moved.append(outbox_id)
    return moved


def not_retried_reason(status: str | None) -> str | None:
    """Why a row in this status is not taken by a manual retry; None if it would be.

    `status` None means there is no such row.
    """
    if status is None:
        return "no outbound email with that id"
    return {
        SENT: "already sent; nothing to retry",
        QUEUED: "already queued; a worker will send it",
        SENDING: "being sent right now",
    }.get(status)


def failed_ids(db: Database) -> list[int]:
    """Ids of every failed row, oldest first."""
    with db.read() as s:
        return [
            int(i)
            for i in s.exec(select(Outbox.id).where(col(Outbox.status) == FAILED).order_by(
                col(Outbox.id)
            ))
            if i is not None
        ]


def _abandoned(now: float, stale_after: float) -> Any:
    """`sending` rows whose lease ran out, or whose worker's heartbeat stopped."""
    live = select(WorkerBeat.engine_id).where(col(WorkerBeat.beat_at) >= now - stale_after)
    return and_(
        col(Outbox.status) == SENDING,
        or_(
            col(Outbox.lease_until) < now,
            and_(
                col(Outbox.claimed_by).is_not(None),
                col(Outbox.updated_at) < now - stale_after,
                col(Outbox.claimed_by).not_in(live),
            ),
        ),
    )


def release_expired_leases(db: Database, stale_after: float) -> list[int]:
    """`sending` rows abandoned by their worker → retrying now, or failed if out of attempts.

    Abandoned means the lease ran out, or the claiming worker's heartbeat has been
    silent for `stale_after` seconds (a killed process). The lost attempt is
    recorded. Returns the ids that should be delivered again.
    """
    now = now_ts()
    again: list[int] = []
    with db.write() as s:
        rows = s.exec(select(Outbox).where(_abandoned(now, stale_after))).all()
        for row in rows:
            assert row.id is not None
            exhausted = row.attempts >= row.max_attempts
            error = "abandoned: the worker sending it stopped before recording a result"
            if exhausted:
                error = f"gave up after {row.attempts} attempts; last: {error}"
            result = s.execute(
                update(Outbox)
                .where(col(Outbox.id) == row.id, _abandoned(now, stale_after))
                .values(
                    status=FAILED if exhausted else RETRYING,
                    lease_until=None,
                    claimed_by=None,
                    next_attempt_at=None if exhausted else now,
                    last_code=None,
                    last_error=error,
                    updated_at=now,
                )
            )
            if _rowcount(result) != 1:
                continue
            s.add(
                DeliveryAttempt(
                    outbox_id=row.id,
                    number=row.attempts,
                    started_at=row.updated_at,
                    duration_ms=max(0.0, (now - row.updated_at) * 1000.0),
                    code=None,
                    reply="",
                    outcome="failed" if exhausted else "retry",
                    error=error,
                )
            )
            if not exhausted:
                again.append(row.id)
    return again


def stranded_ids(db: Database, grace_seconds: float) -> list[int]:
    """Rows that should have a task by now: queued, or retrying past their time, for > grace."""
    now = now_ts()
    cutoff = now - grace_seconds
    with db.read() as s:
        ids = s.exec(
            select(Outbox.id).where(
                or_(
                    and_(col(Outbox.status) == QUEUED, col(Outbox.updated_at) < cutoff),
                    and_(
                        col(Outbox.status) == RETRYING,
                        col(Outbox.next_attempt_at) < cutoff,
                        col(Outbox.updated_at) < cutoff,
                    ),
                )
            )
        ).all()
    return [int(i) for i in ids if i is not None]


def touch(db: Database, ids: list[int]) -> None:
    """Stamp updated_at on rows just re-enqueued, so the sweeper leaves them alone a while."""
    if not ids:
        return
    now = now_ts()
    with db.write() as s:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            s.execute(
                update(Outbox)
                .where(col(Outbox.id).in_(chunk), col(Outbox.status).in_((QUEUED, RETRYING)))
                .values(updated_at=now)
            )
