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
from tests.desktop.cli_helpers import wait_for


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
