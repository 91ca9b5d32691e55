"""Mailroom's registration engine: users, activation tokens, the outbox and its delivery queue.

core knows nothing of the mailcatcher or of Qt: it speaks SMTP to a host and port.
"""
