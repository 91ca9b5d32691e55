"""The local HTTP port: activation links, and a read API over the mail store shaped like Mailpit's.

One small threaded server from the standard library: it answers a browser clicking an
activation link and end-to-end test helpers written for Mailpit's `/api/v1`
(list, message, raw, search, delete). Nothing here needs more than that, so no web
framework is pulled in; the handler only routes and formats, the work is done by
core.Engine and mailcatcher.MessageStore.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from core.engine import Engine
from mailcatcher.parsing import parse_message
from mailcatcher.store import MessageStore, MessageSummary

Route = Callable[["_Handler", re.Match[str]], None]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;
color:#1f2328}}h1{{font-size:1.4rem}}.ok{{color:#1a7f37}}.bad{{color:#cf222e}}
code{{background:#f6f8fa;padding:.1rem .3rem}}</style></head>
<body><h1 class="{css}">{title}</h1><p>{body}</p><p><small>Mailroom</small></p></body></html>
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _address(text: str) -> dict[str, str]:
    from email.utils import parseaddr

    name, addr = parseaddr(text)
    return {"Name": name, "Address": addr}


def message_summary_json(msg: MessageSummary) -> dict[str, Any]:
    """One message in the shape of Mailpit's message summary (plus Mailroom's own fields)."""
    return {
        "ID": str(msg.id),
        "MessageID": (msg.message_id or "").strip("<>"),
        "Read": msg.read,
        "From": _address(msg.from_ or msg.mail_from),
        "To": [_address(a) for a in msg.rcpt_to],
        "Subject": msg.subject,
        "Created": _iso(msg.received_at),
        "Size": msg.size,
        "Attachments": msg.attachment_count,
        "Snippet": "",
        "Envelope": {"From": msg.mail_from, "To": list(msg.rcpt_to), "Peer": msg.peer},
        "DuplicateOf": msg.duplicate_of,
    }


class _Handler(BaseHTTPRequestHandler):
    server: MailroomHTTPServer
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        return  # `serve` reports events itself; no access log on stderr

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, data: Any, status: int = 200) -> None:
        body = json.dumps(data, ensure_ascii=False, indent=1).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def send_page(self, status: int, title: str, body: str, ok: bool) -> None:
        page = PAGE.format(title=html.escape(title), body=body, css="ok" if ok else "bad")
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json({"error": message}, status)

    def _dispatch(self, routes: list[tuple[re.Pattern[str], Route]]) -> None:
        path = urlsplit(self.path).path
        for pattern, route in routes:
            match = pattern.fullmatch(path)
            if match:
                try:
                    route(self, match)
                except Exception as exc:  # noqa: BLE001 - a bad request must not kill the server
                    self.send_error_json(500, f"{type(exc).__name__}: {exc}")
                return
        self.send_error_json(404, f"no such path: {path}")

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._dispatch(GET_ROUTES)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(GET_ROUTES)

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch(DELETE_ROUTES)

    # -- activation ---------------------------------------------------------------------
    def activate(self, match: re.Match[str]) -> None:
        token = unquote(match["token"])
        result = self.server.engine.activate(token)
        who = html.escape(result.email or "")
        if result.outcome == "activated":
            self.send_page(200, "Account activated", f"<code>{who}</code> is now active.", True)
        elif result.outcome == "already_active":
            self.send_page(200, "Already active", f"<code>{who}</code> was already active.", True)
        elif result.outcome == "expired":
            self.send_page(410, "Link expired", html.escape(result.message), False)
        else:
            self.send_page(404, "Link not valid", html.escape(result.message), False)

    def index(self, match: re.Match[str]) -> None:
        self.send_page(
            200,
            "Mailroom",
            "This port answers activation links and a Mailpit-style API under "
            "<code>/api/v1/</code>.",
            True,
        )

    # -- Mailpit-shaped API -----------------------------------------------------------
    def _store(self) -> MessageStore:
        return self.server.store

    def _paging(self) -> tuple[int, int]:
        try:
            start = int(self.query.get("start", ["0"])[0])
            limit = int(self.query.get("limit", ["50"])[0])
        except ValueError:
            raise _BadRequest("start and limit must be whole numbers") from None
        if start < 0 or not 0 < limit <= 1000:
            raise _BadRequest("start must be >= 0 and limit between 1 and 1000")
        return start, limit

    def list_messages(self, match: re.Match[str], search: str | None = None) -> None:
        try:
            start, limit = self._paging()
        except _BadRequest as exc:
            self.send_error_json(400, str(exc))
            return
        store = self._store()
        messages = store.list_messages(limit=limit, offset=start, search=search)
        total = store.count_messages()
        found = store.count_messages(search) if search else total
        self.send_json(
            {
                "total": total,
                "unread": None,
                "count": len(messages),
                "messages_count": found,
                "start": start,
                "messages": [message_summary_json(m) for m in messages],
            }
        )

    def search(self, match: re.Match[str]) -> None:
        query = self.query.get("query", [""])[0].strip()
        if not query:
            self.send_error_json(400, "missing query parameter: query")
            return
        self.list_messages(match, search=query)

    def _message_id(self, match: re.Match[str]) -> int | None:
        raw_id = match["id"]
        store = self._store()
        if raw_id == "latest":
            latest = store.list_messages(limit=1)
            return latest[0].id if latest else None
        return int(raw_id) if raw_id.isdigit() else None

    def message(self, match: re.Match[str]) -> None:
        message_id = self._message_id(match)
        summary = self._store().get_message(message_id) if message_id else None
        raw = self._store().get_raw(message_id) if message_id else None
        if summary is None or raw is None:
            self.send_error_json(404, f"no message {match['id']}")
            return
        parsed = parse_message(raw).to_json()
        data = message_summary_json(summary)
        data.update(
            {
                "Text": parsed.get("text") or "",
                "HTML": parsed.get("html") or "",
                "Cc": parsed.get("cc", []),
                "Date": parsed.get("date"),
                "Headers": parsed.get("headers", []),
                "Attachments": parsed.get("attachments", []),
                "Notes": parsed.get("notes", []),
            }
        )
        self.send_json(data)

    def raw(self, match: re.Match[str]) -> None:
        message_id = self._message_id(match)
        raw = self._store().get_raw(message_id) if message_id else None
        if raw is None:
            self.send_error_json(404, f"no message {match['id']}")
            return
        # Always the stored bytes, as an opaque download: never rendered by a browser.
        self._send(200, raw, "text/plain; charset=utf-8")

    def delete_messages(self, match: re.Match[str]) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ids: list[int] = []
        if body.strip():
            try:
                payload = json.loads(body)
                ids = [int(i) for i in payload.get("IDs", [])]
            except (ValueError, AttributeError, TypeError):
                self.send_error_json(400, 'body must be JSON like {"IDs": ["1", "2"]}')
                return
        store = self._store()
        deleted = store.delete_messages(ids) if ids else store.clear_messages()
        self.send_json({"deleted": deleted})


class _BadRequest(Exception):
    pass


GET_ROUTES: list[tuple[re.Pattern[str], Route]] = [
    (re.compile(r"/"), _Handler.index),
    (re.compile(r"/activate/(?P<token>[^/]+)"), _Handler.activate),
    (re.compile(r"/api/v1/messages"), _Handler.list_messages),
    (re.compile(r"/api/v1/search"), _Handler.search),
    (re.compile(r"/api/v1/message/(?P<id>\w+)"), _Handler.message),
    (re.compile(r"/api/v1/message/(?P<id>\w+)/raw"), _Handler.raw),
    (re.compile(r"/view/(?P<id>\w+)\.eml"), _Handler.raw),
]
DELETE_ROUTES: list[tuple[re.Pattern[str], Route]] = [
    (re.compile(r"/api/v1/messages"), _Handler.delete_messages),
]


class MailroomHTTPServer(ThreadingHTTPServer):
    """The HTTP port, run in a background thread by `start()`."""

    daemon_threads = True

    def __init__(self, engine: Engine, store: MessageStore, host: str, port: int) -> None:
        self.engine = engine
        self.store = store
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="mailroom-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=5)
