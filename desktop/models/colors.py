"""Colours that mean a state; mid-tones that read on light and dark palettes alike."""

from __future__ import annotations

from PySide6.QtGui import QColor

STATE_COLORS: dict[str, str] = {
    "sent": "#2e9d4a",
    "active": "#2e9d4a",
    "failed": "#d9443f",
    "retrying": "#e08a00",
    "sending": "#3a7fd5",
    "queued": "#8a8a8a",
    "pending": "#e08a00",
}


def state_color(state: str | None) -> QColor | None:
    """The colour of a state name, or None for the palette's text colour."""
    code = STATE_COLORS.get((state or "").lower())
    return QColor(code) if code else None
