"""How values look in the window: times, durations, sizes, addresses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime


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


def fmt_ms(value: float | int | None) -> str:
    """A duration in milliseconds, readable at any scale."""
    if value is None:
        return ""
    ms = float(value)
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


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
