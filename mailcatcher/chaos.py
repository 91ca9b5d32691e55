"""Chaos rules: faults the catcher injects on purpose, and the record of every fault it injected.

A rule names an SMTP stage (connect, MAIL, RCPT, DATA) and what to do there: wait
`delay_ms`, then either drop the connection, answer with `code` and `message`, or
carry on normally (a pure delay). At the DATA stage a delay without a code means
"accept, but only after a delay": the message is stored at once and the 250 is held
back, so a sender that gives up waiting has delivered nonetheless (that is how
duplicate deliveries arise in real life). A rejection or a drop at DATA stores nothing.

`decide()` is the pure part: given the rules in force and a random source it says
which rules fire at a stage; the SMTP handler in server.py carries the decision out.
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

Stage = Literal["connect", "mail", "rcpt", "data"]
Per = Literal["message", "connection"]
FaultKind = Literal["reject", "drop", "delay", "too-big", "line-too-long"]

STAGES: tuple[Stage, ...] = get_args(Stage)
PERS: tuple[Per, ...] = get_args(Per)

MAX_DELAY_MS = 24 * 3600 * 1000
MAX_MESSAGE_LEN = 400


def _unclosed_bracket(pattern: str) -> int | None:
    """Index of a `[` that fnmatch would read as a literal because nothing closes it."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                return i
            i = j
        i += 1
    return None


def check_match_pattern(pattern: object) -> None:
    """Raise ValueError (naming `match`) unless `pattern` is a usable recipient pattern.

    fnmatch itself accepts anything: an unclosed `[` silently becomes a literal bracket
    and a class like `[z-a]` silently matches nothing, so a typo would make a rule that
    never fires. Refused: non-text, empty or blank, control characters, an unclosed `[`
    (write `[[]` for a literal bracket), a class that can match no character.
    """
    if not isinstance(pattern, str):
        raise ValueError(f"match must be text, not {pattern!r}")
    if not pattern.strip():
        raise ValueError("match must not be empty")
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in pattern):
        raise ValueError(f"match must not contain control characters: {pattern!r}")
    if len(pattern) > MAX_MESSAGE_LEN:
        raise ValueError(f"match must be at most {MAX_MESSAGE_LEN} characters")
    at = _unclosed_bracket(pattern)
    if at is not None:
        raise ValueError(
            f"match {pattern!r} has a '[' at position {at + 1} that no ']' closes "
            "(write [[] for a literal '[')"
        )
    translated = fnmatch.translate(pattern.strip().lower())
    try:
        re.compile(translated)
    except re.error as error:
        raise ValueError(f"match {pattern!r} is not a valid pattern: {error}") from None
    # fnmatch turns a character class that can hold no character (like [z-a]) into (?!).
    if "(?!)" in translated:
        raise ValueError(f"match {pattern!r} has a character class that matches nothing")


@dataclass(frozen=True)
class ChaosRule:
    """One fault to inject.

    stage: where in the SMTP conversation it applies.
    code: the SMTP reply code to answer with (400-599); None means no rejection.
    message: the reply text after the code (a default naming the rule if empty).
    delay_ms: wait this long before the reply (or before the drop).
    drop: close the connection without a reply.
    probability: chance in percent (0-100) that the rule fires when it is consulted.
    match: an fnmatch-style recipient pattern (case-insensitive); only at rcpt and data.
    per: "message" rolls the dice at every MAIL/RCPT/DATA; "connection" rolls once
        per connection (when it opens, or when the rule first applies to it) and keeps
        the outcome for the rest of the connection.
    id: set by the store.
    """

    stage: Stage
    code: int | None = None
    message: str = ""
    delay_ms: int = 0
    drop: bool = False
    probability: float = 100.0
    match: str | None = None
    per: Per = "message"
    id: int | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {self.stage!r}")
        if self.code is not None:
            if isinstance(self.code, bool) or not isinstance(self.code, int):
                raise ValueError(f"code must be an integer, not {self.code!r}")
            if not 400 <= self.code <= 599:
                raise ValueError(f"code must be between 400 and 599, not {self.code}")
        if not isinstance(self.message, str):
            raise ValueError("message must be text")
        if len(self.message) > MAX_MESSAGE_LEN:
            raise ValueError(f"message must be at most {MAX_MESSAGE_LEN} characters")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in self.message):
            raise ValueError("message must not contain control characters (CR, LF, ...)")
        if self.message and self.code is None:
            raise ValueError("message needs a code: a reply text is only sent with a code")
        if isinstance(self.delay_ms, bool) or not isinstance(self.delay_ms, int):
            raise ValueError(f"delay_ms must be an integer, not {self.delay_ms!r}")
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"delay_ms must be between 0 and {MAX_DELAY_MS}, not {self.delay_ms}")
        if not isinstance(self.probability, int | float) or isinstance(self.probability, bool):
            raise ValueError(f"probability must be a number, not {self.probability!r}")
        if not 0.0 <= float(self.probability) <= 100.0:
            raise ValueError(f"probability must be between 0 and 100, not {self.probability}")
        if self.per not in PERS:
            raise ValueError(f"per must be one of {', '.join(PERS)}, not {self.per!r}")
        if self.match is not None:
            check_match_pattern(self.match)
            if self.stage not in ("rcpt", "data"):
                raise ValueError(
                    f"match applies to recipients, so only at stage rcpt or data, not {self.stage}"
                )
        if self.drop and self.code is not None:
            raise ValueError("drop and code exclude each other: a dropped connection has no reply")
        if not self.drop and self.code is None and self.delay_ms == 0:
            raise ValueError("a rule needs at least one of code, drop or delay_ms")

    @property
    def action(self) -> Literal["reject", "drop", "delay"]:
        """What the rule does once any delay is over."""
        if self.drop:
            return "drop"
        if self.code is not None:
            return "reject"
        return "delay"

    def reply(self) -> str:
        """The SMTP reply line this rule answers with (only meaningful when code is set)."""
        code = self.code if self.code is not None else 451
        text = self.message or (
            f"{code // 100}.0.0 Injected by chaos rule {self.id if self.id is not None else '?'}"
        )
        return f"{code} {text}"

    def matches(self, recipients: Sequence[str]) -> bool:
        """True if the rule's recipient pattern (if any) matches one of the recipients."""
        if self.match is None:
            return True
        pattern = self.match.strip().lower()
        return any(fnmatch.fnmatchcase(r.lower(), pattern) for r in recipients)

    def describe(self) -> str:
        """One readable line: `rcpt: reply 451 ... (50%, per message, to *@x.test)`.

        The rule only, without its id: callers that list rules print the id themselves.
        """
        parts: list[str] = []
        if self.delay_ms:
            parts.append(f"wait {self.delay_ms} ms")
        if self.drop:
            parts.append("drop the connection")
        elif self.code is not None:
            parts.append(f"reply {self.reply()}")
        elif self.stage == "data":
            parts.append("then accept")
        else:
            parts.append("then carry on")
        extras = [f"{self.probability:g}%", f"per {self.per}"]
        if self.match is not None:
            extras.append(f"to {self.match}")
        return f"{self.stage}: {', '.join(parts)} ({', '.join(extras)})"


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault or one rejection the server made on its own (e.g. 552 too big).

    rule_id is None for rejections that no chaos rule caused: that is how a user tells
    an injected fault from a real one.
    """

    id: int
    created_at: datetime
    stage: str
    kind: FaultKind
    peer: str
    rule_id: int | None
    reply: str
    mail_from: str = ""
    rcpt_to: tuple[str, ...] = ()
    delay_ms: int = 0

    @property
    def injected(self) -> bool:
        """True if a chaos rule caused it."""
        return self.rule_id is not None


@dataclass(frozen=True)
class ChaosDecision:
    """What happens at one stage: the rules that fired, the total wait, the final action."""

    fired: tuple[ChaosRule, ...] = ()
    delay_ms: int = 0
    # The first fired rule that drops or rejects; None means carry on after the delay.
    outcome: ChaosRule | None = None

    @property
    def quiet(self) -> bool:
        """True if nothing fired."""
        return not self.fired


@dataclass
class ConnectionRolls:
    """Dice rolled once per connection for the rules with per="connection"."""

    fired: dict[int, bool] = field(default_factory=dict)

    @classmethod
    def roll(cls, rules: Iterable[ChaosRule], rng: random.Random) -> ConnectionRolls:
        """Roll every per-connection rule once."""
        rolls = cls()
        rolls.add_new(rules, rng)
        return rolls

    def add_new(self, rules: Iterable[ChaosRule], rng: random.Random) -> None:
        """Roll the per-connection rules that appeared since (rules added meanwhile)."""
        for r in rules:
            if r.per == "connection" and r.id is not None and r.id not in self.fired:
                self.fired[r.id] = _fires(r, rng)


def _fires(rule: ChaosRule, rng: random.Random) -> bool:
    if rule.probability >= 100.0:
        return True
    if rule.probability <= 0.0:
        return False
    return rng.random() * 100.0 < rule.probability


def decide(
    rules: Sequence[ChaosRule],
    stage: Stage,
    rng: random.Random,
    *,
    recipients: Sequence[str] = (),
    rolls: ConnectionRolls | Mapping[int, bool] | None = None,
) -> ChaosDecision:
    """Which of `rules` fire at `stage` for these recipients.

    Delays of all fired rules add up; the first fired rule (by id) that drops or
    rejects decides the outcome. Per-connection rules use the outcome in `rolls`.
    """
    fixed = rolls.fired if isinstance(rolls, ConnectionRolls) else (rolls or {})
    fired: list[ChaosRule] = []
    for rule in rules:
        if rule.stage != stage or not rule.matches(recipients):
            continue
        if rule.per == "connection" and rule.id is not None and rule.id in fixed:
            hit = fixed[rule.id]
        else:
            hit = _fires(rule, rng)
        if hit:
            fired.append(rule)
    outcome = next((r for r in fired if r.action != "delay"), None)
    return ChaosDecision(tuple(fired), sum(r.delay_ms for r in fired), outcome)
