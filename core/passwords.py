"""Password hashing with argon2id (argon2-cffi); cost from Settings, library defaults otherwise."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from core.settings import Settings


def make_hasher(settings: Settings) -> PasswordHasher:
    """An argon2id hasher; unset cost settings keep argon2-cffi's defaults."""
    default = PasswordHasher()
    return PasswordHasher(
        time_cost=settings.argon2_time_cost or default.time_cost,
        memory_cost=settings.argon2_memory_cost or default.memory_cost,
        parallelism=settings.argon2_parallelism or default.parallelism,
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
