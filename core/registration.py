"""The use cases: register, activate, resend.

register() validates and normalises, hashes the password, writes the user and
the outbox row in ONE transaction, and only after the commit hands the row to the
queue (best effort: the sweeper covers a crash in between) — or, in `sync` mode,
delivers it inline through the same code path the worker uses.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import delete, update
from sqlmodel import col, select

from core.db import Database, FastTx, now_ts
from core.errors import RateLimited, ValidationError
from core.identity import check_display_name, check_password, normalize_email
from core.models import (
    ACTIVE,
    KIND_ACTIVATION,
    KIND_SIGNUP_ATTEMPT_NOTICE,
    PENDING,
    RATE_RESEND,
    Outbox,
    RateEvent,
    User,
)
from core.queries import ActivationResult, RegistrationResult, ResendResult
from core.settings import DELIVERY_MODES, DeliveryMode, Settings
from core.tokens import (
    derive_token,
    extract_token,
    hash_token,
    message_id_for,
    new_nonce,
    tokens_match,
)

log = logging.getLogger(__name__)

ACTIVATION_SUBJECT = "Activate your Mailroom account"
NOTICE_SUBJECT = "Someone tried to sign up with your address"
ACCEPTED_MESSAGE = "Thanks! Check your inbox for a link to activate your account."
RESEND_MESSAGE = (
    "If a pending account exists for this address, a new activation email is on its way."
)


_FIND_OWNER_SQL = "SELECT id, email, display_name FROM users WHERE email_key = :key"
_INSERT_USER_SQL = """
    INSERT INTO users (email, email_key, display_name, password_hash, status, created_at)
    VALUES (:email, :key, :name, :hash, 'pending', :now)
    RETURNING id
"""
_INSERT_OUTBOX_SQL = """
    INSERT INTO outbox (user_id, kind, is_resend, to_addr, to_name, subject, status, attempts,
                        max_attempts, message_id, created_at, updated_at, token_nonce,
                        token_hash)
    VALUES (:user_id, :kind, :is_resend, :to_addr, :to_name, :subject, 'queued', 0,
            :max_attempts, '', :now, :now, :token_nonce, :token_hash)
    RETURNING id
"""
_RECENT_NOTICES_SQL = """
    SELECT count(*) FROM outbox
     WHERE user_id = :user_id AND kind = :kind AND created_at > :since
"""
_SET_MESSAGE_ID_SQL = "UPDATE outbox SET message_id = :mid WHERE id = :id"
_SET_SIGNUP_MS_SQL = "UPDATE users SET signup_ms = :ms WHERE id = :id"


def _outbox_values(
    user_id: int,
    kind: str,
    to_addr: str,
    to_name: str,
    subject: str,
    max_attempts: int,
    now: float,
    *,
    nonce: str | None = None,
    token_hash: str | None = None,
    is_resend: bool = False,
) -> dict[str, object]:
    return {
        "user_id": user_id,
        "kind": kind,
        "is_resend": is_resend,
        "to_addr": to_addr,
        "to_name": to_name,
        "subject": subject,
        "max_attempts": max_attempts,
        "now": now,
        "token_nonce": nonce,
        "token_hash": token_hash,
    }


@dataclass
class Registration:
    """register / activate / resend over one app database."""

    db: Database
    settings: Settings
    hasher: PasswordHasher
    secret: bytes
    enqueue: Callable[[int], None]
    deliver_now: Callable[[int], None]

    def register(
        self,
        email: str,
        password: str,
        display_name: str = "",
        *,
        delivery: DeliveryMode | None = None,
    ) -> RegistrationResult:
        """Sign someone up; see RegistrationResult for what a duplicate address gets.

        A duplicate notifies the owner at most `signup_notice_limit` times per
        `signup_notice_window_seconds`; beyond that it answers the same and queues nothing.
        """
        t0 = time.perf_counter()
        mode = delivery or self.settings.delivery
        if mode not in DELIVERY_MODES:
            raise ValidationError("delivery", f"must be one of {', '.join(DELIVERY_MODES)}")
        norm = normalize_email(email)
        name = check_display_name(display_name)
        check_password(password, norm)
        h0 = time.perf_counter()
        password_hash = self.hasher.hash(password)
        hash_ms = (time.perf_counter() - h0) * 1000.0

        def transaction() -> tuple[int | None, int | None]:
            # Plain SQL: this is the hot path of every sign-up (see db.fast_write).
            now = now_ts()
            max_attempts = self.settings.retry.max_attempts
            with self.db.fast_write() as tx:
                owners, _ = tx.execute(_FIND_OWNER_SQL, {"key": norm.key})
                user_id: int | None = None
                if owners:
                    owner_id, owner_email, owner_name = owners[0]
                    if self._notice_limit_reached(tx, int(owner_id), now):
                        return None, None
                    # Mail goes to the address as stored, never the look-alike just typed.
                    values = _outbox_values(
                        int(owner_id), KIND_SIGNUP_ATTEMPT_NOTICE, str(owner_email),
                        str(owner_name), NOTICE_SUBJECT, max_attempts, now,
                    )
                else:
                    rows, _ = tx.execute(
                        _INSERT_USER_SQL,
                        {
                            "email": norm.address,
                            "key": norm.key,
                            "name": name,
                            "hash": password_hash,
                            "now": now,
                        },
                    )
                    user_id = int(rows[0][0])
                    nonce = new_nonce()
                    token = derive_token(self.secret, user_id, norm.address, nonce)
                    values = _outbox_values(
                        user_id, KIND_ACTIVATION, norm.address, name, ACTIVATION_SUBJECT,
                        max_attempts, now, nonce=nonce, token_hash=hash_token(token),
                    )
                rows, _ = tx.execute(_INSERT_OUTBOX_SQL, values)
                outbox_id = int(rows[0][0])
                tx.execute(
                    _SET_MESSAGE_ID_SQL,
                    {"id": outbox_id, "mid": message_id_for(self.secret, outbox_id)},
                )
                if user_id is not None:
                    tx.execute(
                        _SET_SIGNUP_MS_SQL,
                        {"id": user_id, "ms": (time.perf_counter() - t0) * 1000.0},
                    )
                return user_id, outbox_id

        user_id, outbox_id = self.db.run_locked_retry(transaction)
        if outbox_id is not None:
            self._hand_over(outbox_id, mode)
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        if mode == "sync" and user_id is not None:
            # Inline delivery is part of the sign-up's time; record the full figure.
            with self.db.write() as s:
                s.execute(
                    update(User).where(col(User.id) == user_id).values(signup_ms=elapsed_ms)
                )
        return RegistrationResult(
            user_id=user_id,
            email=norm.address,
            status="pending",
            outbox_id=outbox_id,
            elapsed_ms=elapsed_ms,
            delivery=mode,
            hash_ms=hash_ms,
            message=ACCEPTED_MESSAGE,
        )

    def _notice_limit_reached(self, tx: FastTx, owner_id: int, now: float) -> bool:
        """True when the owner has had signup_notice_limit notices within the window."""
        limit = self.settings.signup_notice_limit
        since = now - self.settings.signup_notice_window_seconds
        rows, _ = tx.execute(
            _RECENT_NOTICES_SQL,
            {"user_id": owner_id, "kind": KIND_SIGNUP_ATTEMPT_NOTICE, "since": since},
        )
        return int(rows[0][0]) >= limit

    def _rate_key(self, kind: str, key: str) -> str:
        """The stored form of an address in rate_events: an HMAC, never the address."""
        return hmac.new(self.secret, f"{kind}:{key}".encode(), hashlib.sha256).hexdigest()

    def _activation_row(
        self, user_id: int, address: str, name: str, now: float, *, resend: bool
    ) -> Outbox:
        nonce = new_nonce()
        token = derive_token(self.secret, user_id, address, nonce)
        return Outbox(
            user_id=user_id,
            kind=KIND_ACTIVATION,
            is_resend=resend,
            to_addr=address,
            to_name=name,
            subject=ACTIVATION_SUBJECT,
            max_attempts=self.settings.retry.max_attempts,
            created_at=now,
            updated_at=now,
            token_nonce=nonce,
            token_hash=hash_token(token),
        )

    def _hand_over(self, outbox_id: int, mode: DeliveryMode) -> None:
        if mode == "sync":
            self.deliver_now(outbox_id)
            return
        try:
            self.enqueue(outbox_id)
        except Exception:  # the row is committed; the sweeper will enqueue it
            log.exception("enqueue of outbox %s failed; the sweeper will pick it up", outbox_id)

    def activate(self, token_or_link: str) -> ActivationResult:
        """Use an activation token (bare, or the whole link)."""
        token = extract_token(token_or_link)
        if token is None:
            return _invalid()
        digest = hash_token(token)
        ttl = self.settings.token_ttl_seconds

        def transaction() -> ActivationResult:
            now = now_ts()
            with self.db.write() as s:
                row = s.exec(
                    select(Outbox).where(
                        col(Outbox.token_hash) == digest, col(Outbox.kind) == KIND_ACTIVATION
                    )
                ).first()
                if row is None or row.token_nonce is None:
                    return _invalid()
                user = s.get(User, row.user_id)
                if user is None or user.id is None:
                    return _invalid()
                expected = derive_token(self.secret, user.id, user.email, row.token_nonce)
                if not tokens_match(expected, token) or row.to_addr != user.email:
                    return _invalid()
                if user.status == ACTIVE or row.token_used_at is not None:
                    return ActivationResult(
                        "already_active",
                        user.id,
                        user.email,
                        f"The account for {user.email} is already active; nothing more to do.",
                    )
                start = row.sent_at if row.sent_at is not None else row.created_at
                if now > start + ttl:
                    return ActivationResult(
                        "expired",
                        user.id,
                        user.email,
                        f"This activation link has expired (links last {ttl / 3600:g} hours "
                        "from when the email was sent). Ask for a new one: "
                        f"`mailroom resend {user.email}` or the Resend button.",
                    )
                user.status = ACTIVE
                user.activated_at = now
                row.token_used_at = now
                s.add(user)
                s.add(row)
                return ActivationResult(
                    "activated",
                    user.id,
                    user.email,
                    f"Thanks! The account for {user.email} is now active.",
                )

        return self.db.run_locked_retry(transaction)

    def resend(self, email: str) -> ResendResult:
        """Queue a new activation email if the address belongs to a pending user.

        Rate-limited per address, whatever the address is: every request for the
        same normalised address (email_key) counts, for unknown, pending and active
        addresses alike, so RateLimited comes at the same count for all of them and
        its message does not name the address. `email` and `message` of the answer
        are the same for all three; `outbox_id` (operator information, see
        ResendResult) is set only when an email was queued.
        """
        norm = normalize_email(email)
        window = self.settings.resend_window_seconds
        limit = self.settings.resend_limit
        rate_key = self._rate_key(RATE_RESEND, norm.key)

        def transaction() -> ResendResult:
            now = now_ts()
            with self.db.write() as s:
                s.execute(
                    delete(RateEvent).where(
                        col(RateEvent.kind) == RATE_RESEND, col(RateEvent.at) <= now - window
                    )
                )
                recent = s.exec(
                    select(RateEvent.at)
                    .where(
                        col(RateEvent.kind) == RATE_RESEND,
                        col(RateEvent.key) == rate_key,
                        col(RateEvent.at) > now - window,
                    )
                    .order_by(col(RateEvent.at))
                ).all()
                if len(recent) >= limit:
                    # Room for one more once all but limit-1 of these have aged out.
                    frees_at = recent[len(recent) - limit] + window if limit > 0 else now + window
                    wait = max(0.0, frees_at - now)
                    raise RateLimited(
                        "Too many activation email requests for this address: at most "
                        f"{limit} per {_duration(window)}. Try again in {_duration(wait)}.",
                        retry_after_seconds=wait,
                    )
                s.add(RateEvent(kind=RATE_RESEND, key=rate_key, at=now))
                user = s.exec(select(User).where(col(User.email_key) == norm.key)).first()
                if user is None or user.id is None or user.status != PENDING:
                    return ResendResult(None, norm.address, RESEND_MESSAGE)
                row = self._activation_row(
                    user.id, user.email, user.display_name, now, resend=True
                )
                s.add(row)
                s.flush()
                assert row.id is not None
                row.message_id = message_id_for(self.secret, row.id)
                return ResendResult(row.id, norm.address, RESEND_MESSAGE)

        result = self.db.run_locked_retry(transaction)
        if result.outbox_id is not None:
            self._hand_over(result.outbox_id, self.settings.delivery)
        return result


def _invalid() -> ActivationResult:
    return ActivationResult(
        "invalid",
        None,
        None,
        "This activation link is not valid. Check that it was copied whole, "
        "or ask for a new one.",
    )


def _duration(seconds: float) -> str:
    # Rounded up: trying again after the time said always works.
    if seconds > 120:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{max(1, math.ceil(seconds))} seconds"
