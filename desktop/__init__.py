"""Mailroom's desktop console and the `mailroom` command: the composition root."""
