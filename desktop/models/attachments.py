"""The attachments of the message shown in the preview."""

from __future__ import annotations

from typing import Any

from desktop.models.base import RowsModel
from desktop.models.format import fmt_size, one_line


class AttachmentsModel(RowsModel[Any]):
    """Rows are mailcatcher parsing `Attachment`s (index, filename, content_type, size, ...)."""

    COL_NAME, COL_TYPE, COL_SIZE, COL_DISPOSITION, COL_CID = range(5)
    HEADERS = ("Name", "Type", "Size", "Disposition", "Content-ID")

    def key(self, row: Any) -> object:
        return row.index

    def display(self, row: Any, column: int) -> str:
        if column == self.COL_NAME:
            return one_line(row.filename) or "(no name)"
        if column == self.COL_TYPE:
            return one_line(row.content_type)
        if column == self.COL_SIZE:
            return fmt_size(row.size)
        if column == self.COL_DISPOSITION:
            return str(row.disposition)
        if column == self.COL_CID:
            return one_line(row.content_id or "")
        return ""
