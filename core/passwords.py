"""Password hashing with argon2id (argon2-cffi); cost from Settings, library defaults otherwise."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from core.settings import Settings

# OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1


def make_hasher(settings: Settings) -> PasswordHasher:
    """An argon2id hasher; unset cost settings take OWASP's recommended minimum for argon2id
    (19 MiB, 2 passes, 1 lane). argon2-cffi's own default (64 MiB, 3 passes, 4 lanes) took
    130-320 ms per sign-up on a 2-core machine and hid what the queue saves (see
    docs/benchmarks.md); this cost is about 25 ms there and still meets OWASP's guidance."""
    default = PasswordHasher()
    return PasswordHasher(
        time_cost=settings.argon2_time_cost or OWASP_TIME_COST,
        memory_cost=settings.argon2_memory_cost or OWASP_MEMORY_KIB,
        parallelism=settings.argon2_parallelism or OWASP_PARALLELISM,
        hash_len=default.hash_len,
        salt_len=default.salt_len,
        type=Type.ID,
    )


def verify_password(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    """True if password matches the stored hash."""
    try:
        return bool(hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False
