"""Qt item models of the window: one read-only table model per list, fed plain read objects."""
