"""How values look in the window: times, durations, sizes, addresses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

# What each kind of outbound email is called where people read it (JSON keeps the name).
_KIND_LABELS = {
    "activation": "activation",
    "signup_attempt_notice": "account-exists notice",
}


def kind_label(kind: str) -> str:
    """An outbound email's kind as people read it ("account-exists notice")."""
    return _KIND_LABELS.get(kind, kind.replace("_", " "))


def as_datetime(value: object) -> datetime | None:
    """A datetime from a datetime, an epoch number or an ISO string; None if it is none."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def fmt_time(value: object) -> str:
    """Local wall-clock time, with the date only when it is not today."""
    dt = as_datetime(value)
    if dt is None:
        return ""
    local = dt.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def fmt_full_time(value: object) -> str:
    """The exact local time with milliseconds, for tooltips and the sign-up path."""
    dt = as_datetime(value)
    if dt is None:
        return ""
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def fmt_header_time(value: object) -> str:
    """A time read from a header (seconds at most), in local time: no milliseconds."""
    dt = as_datetime(value)
    if dt is None:
        return ""
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_ms(value: float | int | None) -> str:
    """A duration, one way everywhere: "5.8 ms", "17 ms", "470 ms", "2.4 s", "75 s"."""
    if value is None:
        return ""
    ms = float(value)
    if round(ms, 1) < 10:
        return f"{ms:.1f} ms"
    if round(ms) < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def fmt_attempts(attempts: int, max_attempts: int, status: str) -> str:
    """Attempts made, and while delivery goes on, how many the budget still allows.

    "2 (6 left)" rather than "2/8": after a manual retry the budget is refreshed, and a
    total that grows with it ("2/9", then "3/10") reads as if attempts were lost.
    """
    if status in ("queued", "sending", "retrying"):
        return f"{attempts} ({max(0, max_attempts - attempts)} left)"
    return str(attempts)


def fmt_size(size: int | None) -> str:
    """Bytes as B, KiB, MiB."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def fmt_list(values: object) -> str:
    """A list of addresses (or a single string) as one line."""
    if values is None:
        return ""
    if isinstance(values, str):
        return values
    if isinstance(values, Iterable):
        return ", ".join(str(v) for v in values)
    return str(values)


def one_line(text: object, limit: int = 300) -> str:
    """Any text squeezed onto one line (control characters become spaces), cut at limit."""
    if text is None:
        return ""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"
