"""Chaos rules: validation, the pure decision, and each fault injected by a real running catcher."""

from __future__ import annotations

import random
import smtplib
import socket
import time
from collections.abc import Callable

import pytest

from mailcatcher.chaos import ChaosRule, ConnectionRolls, decide
from mailcatcher.server import CatcherServer
from mailcatcher.store import MessageStore

from .smtp_helpers import RawSMTP

BODY = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: chaos\r\n\r\nhello\r\n"


def _send(server: CatcherServer, rcpts: list[str] | None = None, timeout: float = 10) -> None:
    with smtplib.SMTP(*server.address, timeout=timeout) as client:
        client.sendmail("a@x.test", rcpts or ["b@y.test"], BODY)


# -- the rule itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"stage": "helo", "code": 451}, "stage"),
        ({"stage": "rcpt", "code": 250}, "code"),
        ({"stage": "rcpt", "code": 600}, "code"),
        ({"stage": "rcpt", "code": True}, "code"),
        ({"stage": "rcpt", "code": 451, "probability": 101}, "probability"),
        ({"stage": "rcpt", "code": 451, "probability": -1}, "probability"),
        ({"stage": "rcpt", "delay_ms": -5}, "delay_ms"),
        ({"stage": "rcpt", "code": 451, "per": "day"}, "per"),
        ({"stage": "mail", "code": 451, "match": "*@x.test"}, "match"),
        ({"stage": "rcpt", "code": 451, "match": "  "}, "match"),
        ({"stage": "rcpt", "code": 451, "match": ""}, "match"),
        ({"stage": "rcpt", "code": 451, "match": "["}, "match"),
        ({"stage": "rcpt", "code": 451, "match": "*@[example.test"}, "match"),
        ({"stage": "rcpt", "code": 451, "match": "[!]"}, "match"),
        ({"stage": "data", "code": 451, "match": "user[z-a]@x.test"}, "match"),
        ({"stage": "rcpt", "code": 451, "match": "a@x.test\nb@y.test"}, "match"),
        ({"stage": "rcpt", "code": 451, "match": "a\x00@x.test"}, "match"),
        ({"stage": "rcpt", "code": 451, "match": "a\x7f@x.test"}, "match"),
        ({"stage": "rcpt", "code": 451, "match": 42}, "match"),
        ({"stage": "rcpt", "code": 451, "message": "a\r\n250 fake"}, "message"),
        ({"stage": "rcpt", "message": "text without code", "delay_ms": 5}, "message"),
        ({"stage": "rcpt", "code": 451, "drop": True}, "drop"),
        ({"stage": "rcpt"}, "code"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(fields: dict[str, object], named: str) -> None:
    """A rule with a bad field raises ValueError whose message names that field."""
    with pytest.raises(ValueError, match=named):
        ChaosRule(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pattern", ["*@x.test", "[[]*", "*@[[]127.0.0.1]", "user[0-9]@x.test", "[!a]*", "[]]*", "?*"]
)
def test_valid_patterns_are_accepted(pattern: str) -> None:
    """Well-formed fnmatch patterns (classes, negation, a literal '[' written [[]) are kept."""
    assert ChaosRule(stage="rcpt", code=451, match=pattern).match == pattern


def test_literal_bracket_pattern_matches_a_domain_literal() -> None:
    """`[[]` is how a literal bracket is written, so an address literal can be targeted."""
    rule = ChaosRule(stage="rcpt", code=550, match="*@[[]127.0.0.1]")
    assert rule.matches(["root@[127.0.0.1]"])
    assert not rule.matches(["root@127.0.0.1"])


def test_describe_says_what_the_rule_does() -> None:
    """describe() is one line with the stage, the action, the probability and the pattern."""
    rule = ChaosRule(stage="rcpt", code=451, message="4.7.1 Greylisted", probability=50,
                     match="*@slow.test", id=3)
    assert rule.describe() == (
        "rcpt: reply 451 4.7.1 Greylisted (50%, per message, to *@slow.test)"
    )
    assert "wait 2000 ms, then accept" in ChaosRule(stage="data", delay_ms=2000).describe()
    assert "drop the connection" in ChaosRule(stage="connect", drop=True).describe()


def test_default_reply_names_the_rule() -> None:
    """Without a message, the reply text says it was injected and by which rule."""
    assert ChaosRule(stage="rcpt", code=451, id=7).reply() == "451 4.0.0 Injected by chaos rule 7"
    assert ChaosRule(stage="data", code=550, id=2).reply().startswith("550 5.0.0 ")


@pytest.mark.parametrize("probability", [0.0, 100.0])
def test_probability_zero_never_fires_hundred_always_fires(probability: float) -> None:
    """Probability 0 never fires and 100 always fires, over many rolls."""
    rule = ChaosRule(stage="rcpt", code=451, probability=probability, id=1)
    rng = random.Random(1)
    fired = sum(not decide([rule], "rcpt", rng, recipients=["x@y"]).quiet for _ in range(1000))
    assert fired == (1000 if probability == 100.0 else 0)


def test_probability_is_roughly_honoured() -> None:
    """A 30% rule fires in about 30% of 2000 seeded rolls."""
    rule = ChaosRule(stage="rcpt", code=451, probability=30, id=1)
    rng = random.Random(42)
    fired = sum(not decide([rule], "rcpt", rng, recipients=["x@y"]).quiet for _ in range(2000))
    assert 500 <= fired <= 700


def test_per_connection_rule_keeps_its_roll() -> None:
    """A per-connection rule fires for all messages of a connection or for none."""
    rule = ChaosRule(stage="data", code=451, probability=50, per="connection", id=1)
    rng = random.Random(5)
    outcomes = set()
    for _ in range(50):
        rolls = ConnectionRolls.roll([rule], rng)
        seen = {not decide([rule], "data", rng, rolls=rolls).quiet for _ in range(20)}
        assert len(seen) == 1
        outcomes |= seen
    assert outcomes == {True, False}


def test_pattern_matches_recipients_case_insensitively() -> None:
    """match is an fnmatch pattern over the recipients, ignoring case."""
    rule = ChaosRule(stage="rcpt", code=550, match="*@Fail.test", id=1)
    rng = random.Random(0)
    assert not decide([rule], "rcpt", rng, recipients=["Bob@FAIL.TEST"]).quiet
    assert decide([rule], "rcpt", rng, recipients=["bob@pass.test"]).quiet
    assert not decide([rule], "rcpt", rng, recipients=["a@pass.test", "c@fail.test"]).quiet


def test_delays_add_up_and_first_rejection_wins() -> None:
    """Delays of all fired rules add up; the first rule that rejects or drops decides."""
    rules = [
        ChaosRule(stage="rcpt", delay_ms=100, id=1),
        ChaosRule(stage="rcpt", code=451, delay_ms=50, id=2),
        ChaosRule(stage="rcpt", code=550, id=3),
        ChaosRule(stage="data", code=554, id=4),
    ]
    decision = decide(rules, "rcpt", random.Random(0), recipients=["x@y"])
    assert decision.delay_ms == 150
    assert decision.outcome is not None and decision.outcome.id == 2
    assert [r.id for r in decision.fired] == [1, 2, 3]


# -- injected by the running server ------------------------------------------------------


def test_451_at_rcpt(catcher: CatcherServer, store: MessageStore) -> None:
    """A 451 rule at RCPT refuses the recipient with 451 and nothing is stored."""
    rule = store.add_chaos_rule(ChaosRule(stage="rcpt", code=451, message="4.7.1 Try later"))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        _send(catcher)
    assert info.value.recipients == {"b@y.test": (451, b"4.7.1 Try later")}
    assert store.count_messages() == 0
    (fault,) = store.list_faults()
    assert (fault.stage, fault.kind, fault.rule_id) == ("rcpt", "reject", rule.id)
    assert fault.reply == "451 4.7.1 Try later"
    assert fault.rcpt_to == ("b@y.test",) and fault.mail_from == "a@x.test"


def test_550_at_data(catcher: CatcherServer, store: MessageStore) -> None:
    """A 550 rule at DATA rejects the message after it was sent; it is not stored."""
    rule = store.add_chaos_rule(ChaosRule(stage="data", code=550))
    with pytest.raises(smtplib.SMTPDataError) as info:
        _send(catcher)
    assert info.value.smtp_code == 550
    assert store.count_messages() == 0
    (fault,) = store.list_faults()
    assert (fault.stage, fault.kind, fault.rule_id) == ("data", "reject", rule.id)


def test_reject_at_connect(catcher: CatcherServer, store: MessageStore) -> None:
    """A connect rule answers the greeting with its code instead of 220."""
    rule = store.add_chaos_rule(ChaosRule(stage="connect", code=421, message="4.3.2 Going away"))
    with pytest.raises(smtplib.SMTPConnectError) as info:
        smtplib.SMTP(*catcher.address, timeout=10)
    assert info.value.smtp_code == 421
    (fault,) = store.list_faults()
    assert (fault.stage, fault.rule_id) == ("connect", rule.id)


def test_reject_at_mail(catcher: CatcherServer, store: MessageStore) -> None:
    """A MAIL rule refuses the sender."""
    store.add_chaos_rule(ChaosRule(stage="mail", code=553))
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        _send(catcher)
    assert info.value.smtp_code == 553
    assert store.count_messages() == 0


def test_delay_at_rcpt_slows_the_reply(catcher: CatcherServer, store: MessageStore) -> None:
    """A delay rule holds the reply back by its delay, then the message is accepted."""
    store.add_chaos_rule(ChaosRule(stage="rcpt", delay_ms=300))
    start = time.monotonic()
    _send(catcher)
    assert time.monotonic() - start >= 0.3
    assert store.count_messages() == 1
    (fault,) = store.list_faults()
    assert (fault.kind, fault.delay_ms) == ("delay", 300)


def test_drop_at_rcpt_closes_the_connection(catcher: CatcherServer, store: MessageStore) -> None:
    """A drop rule closes the connection without a reply."""
    rule = store.add_chaos_rule(ChaosRule(stage="rcpt", drop=True))
    with RawSMTP(catcher.address) as raw:
        raw.command("EHLO me")
        raw.command("MAIL FROM:<a@x.test>")
        raw.send(b"RCPT TO:<b@y.test>\r\n")
        assert raw.file.readline() == b""  # end of stream, no reply line
    with pytest.raises(smtplib.SMTPServerDisconnected):
        _send(catcher)
    faults = store.list_faults()
    assert len(faults) == 2 and {(f.kind, f.rule_id) for f in faults} == {("drop", rule.id)}
    assert store.count_messages() == 0


def test_drop_at_connect(catcher: CatcherServer, store: MessageStore) -> None:
    """A connect-stage drop closes the connection before any greeting."""
    store.add_chaos_rule(ChaosRule(stage="connect", drop=True))
    with socket.create_connection(catcher.address, timeout=5) as sock:
        assert sock.recv(1024) == b""


def test_delay_at_connect_holds_the_greeting(catcher: CatcherServer, store: MessageStore) -> None:
    """A connect-stage delay holds the 220 greeting back by its delay."""
    store.add_chaos_rule(ChaosRule(stage="connect", delay_ms=300))
    start = time.monotonic()
    with RawSMTP(catcher.address) as raw:
        assert raw.greeting[0] == 220
    assert time.monotonic() - start >= 0.3


def test_drop_at_data_stores_nothing(catcher: CatcherServer, store: MessageStore) -> None:
    """A DATA-stage drop closes the connection after the message was sent; it is not stored."""
    rule = store.add_chaos_rule(ChaosRule(stage="data", drop=True))
    with pytest.raises(smtplib.SMTPServerDisconnected):
        _send(catcher)
    assert store.count_messages() == 0
    (fault,) = store.list_faults()
    assert (fault.stage, fault.kind, fault.rule_id) == ("data", "drop", rule.id)


def test_accept_after_delay_trips_the_sender_timeout_but_stores(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """A DATA delay without a code stores the message, then holds the 250 past the client's timeout.

    That is how a sender ends up delivering twice: it gave up, yet the message arrived.
    """
    store.add_chaos_rule(ChaosRule(stage="data", delay_ms=1500))
    body = b"Message-ID: <retry@x.test>\r\n" + BODY
    with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
        with smtplib.SMTP(*catcher.address, timeout=0.5) as client:
            client.sendmail("a@x.test", ["b@y.test"], body)
    assert store.count_messages() == 1
    (fault,) = store.list_faults()
    assert (fault.stage, fault.kind, fault.delay_ms) == ("data", "delay", 1500)
    store.clear_chaos_rules()
    with smtplib.SMTP(*catcher.address, timeout=10) as client:  # the sender retries
        client.sendmail("a@x.test", ["b@y.test"], body)
    retry, first = store.list_messages()
    assert first.duplicate_of is None
    assert retry.duplicate_of == first.id


def test_pattern_fails_one_recipient_only(catcher: CatcherServer, store: MessageStore) -> None:
    """A rule with a recipient pattern refuses the matching address and lets the others pass."""
    store.add_chaos_rule(ChaosRule(stage="rcpt", code=550, match="*@fail.test"))
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        refused = client.sendmail("a@x.test", ["ok@pass.test", "no@fail.test"], BODY)
    assert set(refused) == {"no@fail.test"}
    (msg,) = store.list_messages()
    assert msg.rcpt_to == ("ok@pass.test",)


def test_pattern_at_data_rejects_messages_for_that_recipient(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """A DATA rule with a pattern rejects only messages with a matching recipient."""
    store.add_chaos_rule(ChaosRule(stage="data", code=554, match="victim@*"))
    _send(catcher, ["someone@x.test"])
    with pytest.raises(smtplib.SMTPDataError):
        _send(catcher, ["victim@x.test"])
    assert store.count_messages() == 1


def test_probability_zero_rule_never_fires_on_the_server(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """A 0% rule on a running server lets every message through and logs nothing."""
    store.add_chaos_rule(ChaosRule(stage="rcpt", code=451, probability=0))
    with smtplib.SMTP(*catcher.address, timeout=10) as client:
        for _ in range(20):
            client.sendmail("a@x.test", ["b@y.test"], BODY)
    assert store.count_messages() == 20
    assert store.list_faults() == []


def test_rule_added_while_running_applies_from_next_connection(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """A rule added by another process while the server runs refuses the next connection."""
    writer = MessageStore(store.path)  # as `mailroom chaos add` would, from another process
    try:
        _send(catcher)
        writer.add_chaos_rule(ChaosRule(stage="rcpt", code=451))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            _send(catcher)
        writer.clear_chaos_rules()
        _send(catcher)
        assert store.count_messages() == 2
    finally:
        writer.close()


def test_rule_changes_reach_a_connection_kept_open(
    catcher: CatcherServer, store: MessageStore
) -> None:
    """On a pooled connection, a rule added or removed applies from the next message."""
    writer = MessageStore(store.path)
    try:
        with smtplib.SMTP(*catcher.address, timeout=10) as pooled:
            pooled.sendmail("a@x.test", ["b@y.test"], BODY)
            rule = writer.add_chaos_rule(ChaosRule(stage="rcpt", code=451))
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                pooled.sendmail("a@x.test", ["b@y.test"], BODY)
            pooled.rset()
            writer.remove_chaos_rule(rule.id)  # type: ignore[arg-type]
            pooled.sendmail("a@x.test", ["b@y.test"], BODY)
        assert store.count_messages() == 2
    finally:
        writer.close()


def test_master_switch_off_disables_all_rules(catcher: CatcherServer, store: MessageStore) -> None:
    """With the master switch off, rules are kept but nothing is injected."""
    store.add_chaos_rule(ChaosRule(stage="rcpt", code=451))
    store.set_chaos_enabled(False)
    _send(catcher)
    assert store.count_messages() == 1 and store.list_faults() == []
    store.set_chaos_enabled(True)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _send(catcher)


def test_per_connection_rule_fails_whole_connection(
    store: MessageStore, free_port: Callable[[], int]
) -> None:
    """A per-connection rule that fired rejects every message on that connection."""
    port = free_port()
    server = CatcherServer(store, port=port, rng=random.Random(3))
    rule = store.add_chaos_rule(ChaosRule(stage="data", code=451, probability=50, per="connection"))
    outcomes = []
    with server:
        for _ in range(12):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                results = []
                for _ in range(4):
                    try:
                        client.sendmail("a@x.test", ["b@y.test"], BODY)
                        results.append(True)
                    except smtplib.SMTPDataError:
                        results.append(False)
                assert len(set(results)) == 1
                outcomes.append(results[0])
    assert set(outcomes) == {True, False}
    assert all(f.rule_id == rule.id for f in store.list_faults())


def test_startup_probe_is_not_a_fault(store: MessageStore, free_port: Callable[[], int]) -> None:
    """aiosmtpd's own start-up connection is not hit by connect rules nor logged."""
    store.add_chaos_rule(ChaosRule(stage="connect", code=421))
    with CatcherServer(store, port=free_port()):
        pass
    assert store.list_faults() == []
