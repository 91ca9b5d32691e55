"""The HTTP port: activation links answered for a browser, and the Mailpit-shaped API."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from desktop.runtime import Runtime
from tests.waiting import wait_until as wait_for


@pytest.fixture
def runtime(data_dir: Path, free_port: Callable[[], int]) -> Iterator[Runtime]:
    settings = Settings(data_dir=data_dir, smtp_port=free_port(), http_port=free_port())
    with Runtime(settings, workers=1) as rt:
        yield rt


def _url(rt: Runtime, path: str) -> str:
    assert rt.http_address is not None
    host, port = rt.http_address
    return f"http://{host}:{port}{path}"


def _get(rt: Runtime, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(_url(rt, path), timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as err:
        body = err.read()
        err.close()
        return err.code, err.headers.get("Content-Type", ""), body


def _get_json(rt: Runtime, path: str) -> Any:
    status, ctype, body = _get(rt, path)
    assert status == 200, body
    assert ctype.startswith("application/json")
    return json.loads(body)


def _send(rt: Runtime, subject: str, body: str = "hello") -> None:
    host, port = rt.smtp_address
    msg = (f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject}@example.com>\r\n\r\n{body}\r\n")
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], msg.encode())


def _link_for(rt: Runtime, email: str) -> str:
    def caught() -> Any:
        found = rt.store.list_messages(search=email.split("@")[0])
        return found[0] if found else None

    msg = wait_for(caught, what=f"activation email for {email}")
    text = _get_json(rt, f"/api/v1/message/{msg.id}")["Text"]
    import re

    match = re.search(r"https?://\S+/activate/\S+", text)
    assert match, text
    return match.group(0).rstrip(".")


def test_activation_link_activates_once_then_says_already_active(runtime: Runtime) -> None:
    """Opening the emailed link activates the user (200); opening it again does not re-run."""
    runtime.engine.register("carol@example.com", "correct horse battery", "Carol")
    link = _link_for(runtime, "carol@example.com")
    path = link.split(str(runtime.http_address[1]), 1)[1]  # type: ignore[index]
    status, ctype, body = _get(runtime, path)
    assert status == 200 and ctype.startswith("text/html")
    assert b"activated" in body.lower()
    user = runtime.engine.find_user("carol@example.com")
    assert user is not None and user.status == "active"
    status, _, body = _get(runtime, path)
    assert status == 200 and b"already" in body.lower()


def test_unknown_token_gets_a_404_page_that_escapes_nothing_into_markup(runtime: Runtime) -> None:
    """A made-up token is refused with 404, and the page never reflects it as markup."""
    status, ctype, body = _get(runtime, "/activate/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert status == 404 and ctype.startswith("text/html")
    assert b"<script>" not in body


def test_api_lists_newest_first_with_mailpit_fields(runtime: Runtime) -> None:
    """/api/v1/messages lists captured mail newest first with Mailpit's field names."""
    _send(runtime, "first")
    _send(runtime, "second")
    wait_for(lambda: runtime.store.count_messages() == 2, what="two messages")
    data = _get_json(runtime, "/api/v1/messages")
    assert data["total"] == 2 and data["count"] == 2
    assert [m["Subject"] for m in data["messages"]] == ["second", "first"]
    first = data["messages"][0]
    assert {"ID", "MessageID", "From", "To", "Subject", "Created", "Size"} <= set(first)
    assert first["MessageID"] == "second@example.com"
    assert first["To"][0]["Address"] == "b@example.com"


def test_api_search_and_latest_and_raw(runtime: Runtime) -> None:
    """search finds by body word, `latest` is the newest, raw is the exact stored bytes."""
    _send(runtime, "alpha", body="the word zebra lives here")
    _send(runtime, "beta", body="nothing to see")
    wait_for(lambda: runtime.store.count_messages() == 2, what="two messages")
    found = _get_json(runtime, "/api/v1/search?query=zebra")
    assert [m["Subject"] for m in found["messages"]] == ["alpha"]
    latest = _get_json(runtime, "/api/v1/message/latest")
    assert latest["Subject"] == "beta" and "nothing to see" in latest["Text"]
    status, ctype, raw = _get(runtime, f"/api/v1/message/{latest['ID']}/raw")
    assert status == 200 and ctype.startswith("text/plain")
    assert raw == runtime.store.get_raw(int(latest["ID"]))


def test_api_delete_all_and_by_id(runtime: Runtime) -> None:
    """DELETE /api/v1/messages removes the listed IDs, or every message without a body."""
    for s in ("one", "two", "three"):
        _send(runtime, s)
    wait_for(lambda: runtime.store.count_messages() == 3, what="three messages")
    ids = [m.id for m in runtime.store.list_messages()]
    req = urllib.request.Request(_url(runtime, "/api/v1/messages"), method="DELETE",
                                 data=json.dumps({"IDs": [str(ids[0])]}).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["deleted"] == 1
    assert runtime.store.count_messages() == 2
    req = urllib.request.Request(_url(runtime, "/api/v1/messages"), method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    assert runtime.store.count_messages() == 0


def test_api_rejects_bad_paging_with_a_clear_message(runtime: Runtime) -> None:
    """Non-numeric paging gets 400 and a message naming the parameters."""
    status, _, body = _get(runtime, "/api/v1/messages?limit=lots")
    assert status == 400 and b"limit" in body


def test_a_big_or_zero_page_size_is_answered_not_refused(runtime: Runtime) -> None:
    """As Mailpit: limit=0 is the default page, a huge limit gets what one page holds."""
    for subject in ("one", "two", "three"):
        _send(runtime, subject)
    wait_for(lambda: runtime.store.count_messages() == 3, 10, "three messages")
    for query in ("limit=0", "limit=100000000"):
        data = _get_json(runtime, f"/api/v1/messages?{query}")
        assert data["count"] == 3 and data["total"] == 3, query


# -- Mailpit compatibility: search syntax, JSON shape, bodies, HEAD ----------------------


def _send_raw(rt: Runtime, headers: str, body: str = "hello", *,
              rcpts: tuple[str, ...] = ("b@example.com",)) -> None:
    host, port = rt.smtp_address
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail("bounce@example.com", list(rcpts), f"{headers}\r\n\r\n{body}\r\n".encode())


def _request(rt: Runtime, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(_url(rt, path), method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        content = err.read()
        err.close()
        return err.code, content


def _subjects(rt: Runtime, query: str) -> list[str]:
    from urllib.parse import quote

    found = _get_json(rt, f"/api/v1/search?query={quote(query)}")
    assert found["messages_count"] == len(found["messages"])
    return sorted(m["Subject"] for m in found["messages"])


@pytest.fixture
def mailbox(runtime: Runtime) -> Runtime:
    """Four messages that differ in To, From, Cc, subject, body and attachments."""
    _send_raw(runtime, "From: Alice <alice@example.com>\r\nTo: W5 <w5@example.com>\r\n"
              "Subject: cc test\r\nMessage-ID: <m1@example.com>", "the zebra crossing",
              rcpts=("w5@example.com",))
    _send_raw(runtime, "From: bob@example.com\r\nTo: w6@example.com\r\n"
              "Cc: Carol <carol@example.com>\r\nSubject: test cc\r\n"
              "Message-ID: <m2@example.com>", "no stripes here",
              rcpts=("w6@example.com", "carol@example.com"))
    _send_raw(runtime, "From: bob@example.com\r\nTo: w7@example.com\r\nSubject: report\r\n"
              "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n"
              "Message-ID: <m3@example.com>",
              "--XX\r\nContent-Type: text/plain\r\n\r\nsee the zebra file\r\n"
              "--XX\r\nContent-Type: application/pdf\r\n"
              "Content-Disposition: attachment; filename=r.pdf\r\n\r\nPDF\r\n--XX--",
              rcpts=("w7@example.com",))
    _send_raw(runtime, "From: dave@example.com\r\nTo: w8@example.com\r\nSubject: plain\r\n"
              "Message-ID: <m4@example.com>", "nothing", rcpts=("w8@example.com",))
    wait_for(lambda: runtime.store.count_messages() == 4, what="four messages")
    return runtime


def test_search_understands_mailpit_field_terms(mailbox: Runtime) -> None:
    """to:, from:, cc:, subject:, message-id: and has:attachment select by their field only."""
    assert _subjects(mailbox, "to:w5@example.com") == ["cc test"]
    assert _subjects(mailbox, "from:bob@example.com") == ["report", "test cc"]
    assert _subjects(mailbox, "from:Alice") == ["cc test"]
    assert _subjects(mailbox, "cc:carol@example.com") == ["test cc"]
    assert _subjects(mailbox, 'subject:"cc test"') == ["cc test"]
    assert _subjects(mailbox, "message-id:m4@example.com") == ["plain"]
    assert _subjects(mailbox, "has:attachment") == ["report"]
    assert _subjects(mailbox, "from:bob@example.com -has:attachment") == ["test cc"]


def test_search_phrases_exclusions_and_words(mailbox: Runtime) -> None:
    """A quoted phrase needs its words in order; -term excludes; plain words still match."""
    assert _subjects(mailbox, '"cc test"') == ["cc test"]
    assert _subjects(mailbox, "zebra") == ["cc test", "report"]
    assert _subjects(mailbox, "zebra -crossing") == ["report"]
    assert _subjects(mailbox, "-zebra") == ["plain", "test cc"]
    assert _subjects(mailbox, "!from:bob@example.com -to:w8") == ["cc test"]


def test_search_read_state_follows_opening_and_put(mailbox: Runtime) -> None:
    """is:unread/is:read follow GET of a message (marks it read) and PUT /api/v1/messages."""
    assert len(_subjects(mailbox, "is:unread")) == 4
    first = _get_json(mailbox, "/api/v1/search?query=subject:plain")["messages"][0]
    _get_json(mailbox, f"/api/v1/message/{first['ID']}")
    assert _subjects(mailbox, "is:read") == ["plain"]
    listing = _get_json(mailbox, "/api/v1/messages")
    assert listing["unread"] == 3 and listing["messages_unread"] == 3
    status, _ = _request(mailbox, "PUT", "/api/v1/messages", {"IDs": [first["ID"]], "Read": False})
    assert status == 200 and _subjects(mailbox, "is:read") == []
    status, _ = _request(mailbox, "PUT", "/api/v1/messages", {"Read": True})
    assert status == 200 and _subjects(mailbox, "is:unread") == []
    status, body = _request(mailbox, "PUT", "/api/v1/messages", {"IDs": [1], "Read": "yes"})
    assert status == 400 and b"Read" in body


def test_head_of_a_message_does_not_mark_it_read(mailbox: Runtime) -> None:
    """A HEAD request for a message leaves it unread."""
    newest = mailbox.store.list_messages(limit=1)[0]
    status, _ = _request(mailbox, "HEAD", f"/api/v1/message/{newest.id}")
    assert status == 200
    summary = mailbox.store.get_message(newest.id)
    assert summary is not None and not summary.read


def test_message_json_has_mailpit_shape(runtime: Runtime) -> None:
    """To/Cc from the headers as {Name, Address}; Bcc = envelope only; Mailpit's other fields."""
    _send_raw(runtime, "From: Ann <ann@example.com>\r\nTo: Bea <bea@example.com>\r\n"
              "Cc: cid@example.com\r\nReply-To: Help <help@example.com>\r\n"
              "Return-Path: <bounce@example.com>\r\nSubject: shape\r\n"
              "Message-ID: <shape@example.com>",
              "first line\r\n\r\n  second   line " + "x" * 400,
              rcpts=("bea@example.com", "cid@example.com", "hidden@example.com"))
    wait_for(lambda: runtime.store.count_messages() == 1, what="one message")
    listing = _get_json(runtime, "/api/v1/messages")
    assert {"total", "unread", "count", "messages_count", "messages_unread", "start", "tags",
            "messages"} <= set(listing)
    item = listing["messages"][0]
    assert item["To"] == [{"Name": "Bea", "Address": "bea@example.com"}]
    assert item["Cc"] == [{"Name": "", "Address": "cid@example.com"}]
    assert item["Bcc"] == [{"Name": "", "Address": "hidden@example.com"}]
    assert item["ReplyTo"] == [{"Name": "Help", "Address": "help@example.com"}]
    assert item["From"] == {"Name": "Ann", "Address": "ann@example.com"}
    assert item["Tags"] == [] and item["Read"] is False and item["Attachments"] == 0
    assert item["Snippet"].startswith("first line second line xxx")
    assert len(item["Snippet"]) == 250
    msg = _get_json(runtime, f"/api/v1/message/{item['ID']}")
    assert msg["To"] == item["To"] and msg["Bcc"] == item["Bcc"] and msg["Cc"] == item["Cc"]
    assert msg["ReturnPath"] == "bounce@example.com"
    assert msg["Tags"] == [] and msg["Inline"] == [] and msg["Attachments"] == []
    assert msg["MessageID"] == "shape@example.com" and msg["Subject"] == "shape"
    assert isinstance(msg["Size"], int) and msg["Date"]


def test_headers_and_info_endpoints(runtime: Runtime) -> None:
    """/message/{ID}/headers maps each header name to its values; /info counts messages."""
    _send_raw(runtime, "From: a@example.com\r\nTo: b@example.com\r\nReceived: one\r\n"
              "Received: two\r\nSubject: hdr")
    wait_for(lambda: runtime.store.count_messages() == 1, what="one message")
    headers = _get_json(runtime, "/api/v1/message/latest/headers")
    assert headers["Received"] == ["one", "two"] and headers["Subject"] == ["hdr"]
    info = _get_json(runtime, "/api/v1/info")
    assert info["Messages"] == 1 and info["Unread"] == 1 and info["DatabaseSize"] > 0
    status, _, _ = _get(runtime, "/api/v1/message/999/headers")
    assert status == 404


@pytest.mark.parametrize(
    "body",
    [{"IDs": "12"}, {"IDs": 12}, {"IDs": ["1", "x"]}, {"IDs": [True]}, ["1"], b"not json"],
)
def test_delete_refuses_a_body_that_is_not_a_list_of_ids(runtime: Runtime, body: Any) -> None:
    """A DELETE whose IDs are not a list of ids gets 400 naming the field and deletes nothing."""
    for s in ("one", "two", "three"):
        _send(runtime, s)
    wait_for(lambda: runtime.store.count_messages() == 3, what="three messages")
    status, content = _request(runtime, "DELETE", "/api/v1/messages", body)
    assert status == 400, content
    assert b"IDs" in content or b"JSON" in content
    assert runtime.store.count_messages() == 3


def test_delete_takes_ids_as_numbers_or_strings(runtime: Runtime) -> None:
    """DELETE with {"IDs": [n, "m"]} removes exactly those messages."""
    for s in ("one", "two", "three"):
        _send(runtime, s)
    wait_for(lambda: runtime.store.count_messages() == 3, what="three messages")
    one, two, three = sorted(m.id for m in runtime.store.list_messages())
    status, content = _request(runtime, "DELETE", "/api/v1/messages", {"IDs": [one, str(three)]})
    assert status == 200 and json.loads(content)["deleted"] == 2
    assert [m.id for m in runtime.store.list_messages()] == [two]


def test_head_on_an_activation_link_does_not_activate(runtime: Runtime) -> None:
    """A HEAD of the activation link (a link scanner) leaves the user pending; GET activates."""
    runtime.engine.register("dora@example.com", "correct horse battery", "Dora")
    link = _link_for(runtime, "dora@example.com")
    path = link.split(str(runtime.http_address[1]), 1)[1]  # type: ignore[index]
    status, body = _request(runtime, "HEAD", path)
    assert status == 200 and body == b""
    user = runtime.engine.find_user("dora@example.com")
    assert user is not None and user.status == "pending"
    status, _, _ = _get(runtime, path)
    user = runtime.engine.find_user("dora@example.com")
    assert status == 200 and user is not None and user.status == "active"


def test_delete_search_removes_only_the_matching_messages(mailbox: Runtime) -> None:
    """DELETE /api/v1/search?query= deletes what the search finds and nothing else."""
    status, content = _request(mailbox, "DELETE", "/api/v1/search?query=from:bob%40example.com")
    assert status == 200 and json.loads(content)["deleted"] == 2
    assert sorted(m.subject for m in mailbox.store.list_messages()) == ["cc test", "plain"]
    status, content = _request(mailbox, "DELETE", "/api/v1/search")
    assert status == 400 and b"query" in content


def test_a_mailpit_style_helper_finds_the_activation_email_by_recipient(runtime: Runtime) -> None:
    """The usual e2e helper: search to:ADDRESS, open the latest hit, follow its link."""
    runtime.engine.register("erin@example.com", "correct horse battery", "Erin")
    runtime.engine.register("frank@example.com", "correct horse battery", "Frank")

    def found() -> Any:
        hits = _get_json(runtime, "/api/v1/search?query=to:erin@example.com")["messages"]
        return hits or None

    hits = wait_for(found, what="Erin's activation email")
    assert [h["To"][0]["Address"] for h in hits] == ["erin@example.com"]
    text = _get_json(runtime, f"/api/v1/message/{hits[0]['ID']}")["Text"]
    import re

    link = re.search(r"https?://\S+/activate/\S+", text)
    assert link, text
    path = link.group(0).rstrip(".").split(str(runtime.http_address[1]), 1)[1]  # type: ignore[index]
    status, _, _ = _get(runtime, path)
    user = runtime.engine.find_user("erin@example.com")
    assert status == 200 and user is not None and user.status == "active"


def _raw_request(rt: Runtime, method: str, path: str, headers: dict[str, str],
                 body: bytes = b"") -> tuple[int, Any]:
    import http.client

    assert rt.http_address is not None
    conn = http.client.HTTPConnection(*rt.http_address, timeout=10)
    try:
        conn.putrequest(method, path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_an_oversized_body_is_refused_with_413_unread(runtime: Runtime) -> None:
    """A Content-Length over the limit gets a JSON 413 at once (nothing is allocated or
    waited for), and the server goes on answering."""
    status, data = _raw_request(runtime, "PUT", "/api/v1/messages",
                                {"Content-Length": "100000000000"})
    assert status == 413 and "at most" in data["error"]
    status, data = _raw_request(runtime, "PUT", "/api/v1/messages", {"Content-Length": "-5"})
    assert status == 400 and "Content-Length" in data["error"]
    assert _get_json(runtime, "/api/v1/messages")["total"] == 0


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unsupported_methods_get_a_json_405(runtime: Runtime, method: str) -> None:
    """POST and PATCH are answered like every other API error: JSON, with a reason."""
    status, data = _raw_request(runtime, method, "/api/v1/messages",
                                {"Content-Length": "2", "Content-Type": "application/json"},
                                b"{}")
    assert status == 405 and method in data["error"]
