"""Mailroom's catching SMTP server: takes any mail, stores it byte-exact, can misbehave on purpose.

mailcatcher knows nothing of core or of Qt.
"""
