"""One captured message as the preview shows it (a plain read object)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MessageView:
    """Everything the preview shows of one message, loaded off the GUI thread."""

    summary: Any  # mailcatcher MessageSummary
    raw: bytes
    parsed: Any  # mailcatcher ParsedMessage
    inline: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    @property
    def id(self) -> int:
        """The message's id in the store."""
        return int(self.summary.id)
