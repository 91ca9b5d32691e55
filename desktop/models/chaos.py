"""The chaos panel's lists: the catcher's fault rules and the faults it injected lately."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor

from desktop.models.base import FOREGROUND, TOOLTIP, RowsModel
from desktop.models.format import fmt_full_time, fmt_time, one_line


class ChaosRulesModel(RowsModel[Any]):
    """Rows are mailcatcher `ChaosRule`s (with ids, as stored)."""

    COL_ID, COL_STAGE, COL_EFFECT, COL_PROBABILITY, COL_MATCH, COL_PER = range(6)
    HEADERS = ("#", "Stage", "Effect", "Probability", "Recipient match", "Per")

    def display(self, row: Any, column: int) -> str:
        if column == self.COL_ID:
            return "" if row.id is None else str(row.id)
        if column == self.COL_STAGE:
            return str(row.stage)
        if column == self.COL_EFFECT:
            return self.effect(row)
        if column == self.COL_PROBABILITY:
            return f"{float(row.probability):g} %"
        if column == self.COL_MATCH:
            return one_line(row.match or "")
        if column == self.COL_PER:
            return str(row.per)
        return ""

    @staticmethod
    def effect(rule: Any) -> str:
        """What the rule does, in a few words: delay, then drop or reply."""
        parts = []
        if rule.delay_ms:
            parts.append(f"delay {rule.delay_ms} ms")
        if rule.drop:
            parts.append("drop connection")
        elif rule.code:
            parts.append(one_line(f"{rule.code} {rule.message or ''}".strip(), 120))
        return ", then ".join(parts) or "nothing"

    def cell_data(self, row: Any, column: int, role: int) -> Any:
        if role == TOOLTIP:
            describe = getattr(row, "describe", None)
            return one_line(describe() if callable(describe) else "", 500) or None
        return None


class FaultsModel(RowsModel[Any]):
    """Rows are mailcatcher `FaultRecord`s, newest first.

    A fault with a rule is injected on purpose; one without (e.g. 552 too big) is the
    server's own answer: the Cause column tells them apart.
    """

    COL_TIME, COL_STAGE, COL_KIND, COL_REPLY, COL_RCPT, COL_CAUSE = range(6)
    HEADERS = ("Time", "Stage", "Kind", "Reply", "Recipients", "Cause")

    def display(self, row: Any, column: int) -> str:
        if column == self.COL_TIME:
            return fmt_time(row.created_at)
        if column == self.COL_STAGE:
            return str(row.stage)
        if column == self.COL_KIND:
            kind = str(row.kind)
            return f"{kind} {row.delay_ms} ms" if row.delay_ms and kind == "delay" else kind
        if column == self.COL_REPLY:
            return one_line(row.reply, 200)
        if column == self.COL_RCPT:
            return one_line(", ".join(row.rcpt_to), 200)
        if column == self.COL_CAUSE:
            return f"rule #{row.rule_id}" if row.rule_id is not None else "server (not injected)"
        return ""

    def cell_data(self, row: Any, column: int, role: int) -> Any:
        if role == TOOLTIP and column == self.COL_TIME:
            return fmt_full_time(row.created_at) or None
        if role == TOOLTIP and column == self.COL_RCPT:
            return one_line(f"peer {row.peer}, from {row.mail_from}", 500)
        if role == FOREGROUND and column == self.COL_REPLY:
            code = str(row.reply)[:1]
            if code == "5":
                return QColor("#d9443f")
            if code == "4":
                return QColor("#e08a00")
        return None
