"""The local HTTP port: activation links, and an API over the mail store shaped like Mailpit's.

One small threaded server from the standard library: it answers a browser clicking an
activation link and end-to-end test helpers written for Mailpit's `/api/v1`
(list, search with Mailpit's syntax, message, headers, raw, mark read, delete, info).
Nothing here needs more than that, so no web framework is pulled in; the handler only
routes and formats, the work is done by core.Engine and mailcatcher.MessageStore.

HEAD never changes state: link scanners send HEAD to activation links, and a HEAD
of a message does not mark it read.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from datetime import datetime
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from core.engine import Engine
from mailcatcher.parsing import Attachment, ParsedMessage, parse_message
from mailcatcher.search import SearchQuery, parse_search
from mailcatcher.store import MessageStore, MessageSummary, split_address

Route = Callable[["_Handler", re.Match[str]], None]

# The API's request bodies are small JSON documents (ids, a read flag).
MAX_BODY_BYTES = 1024 * 1024
# The most messages one list or search answer holds (a client asking for more pages on).
MAX_PAGE = 1000

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
    """ "Name <addr>" (as the store keeps addresses) as Mailpit's {Name, Address}."""
    name, address = split_address(text)
    return {"Name": name, "Address": address}


def _addresses(entries: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    return [_address(e) for e in entries if e.strip()]


def _to_entries(msg: MessageSummary) -> list[str]:
    """The To header's addresses (rows stored before the list was kept: the joined text)."""
    if msg.to_addresses:
        return list(msg.to_addresses)
    return [f"{n} <{a}>" if n else a for n, a in getaddresses([msg.to]) if a or n]


def message_summary_json(msg: MessageSummary) -> dict[str, Any]:
    """One message in the shape of Mailpit's MessageSummary (plus Mailroom's own fields).

    To and Cc come from the headers; Bcc is the envelope recipients named in neither
    (as Mailpit shows it); Envelope and DuplicateOf are Mailroom's.
    """
    return {
        "ID": str(msg.id),
        "MessageID": (msg.message_id or "").strip().strip("<>"),
        "Read": msg.read,
        "From": _address(msg.from_ or msg.mail_from),
        "To": _addresses(_to_entries(msg)),
        "Cc": _addresses(msg.cc),
        "Bcc": _addresses(msg.bcc),
        "ReplyTo": _addresses(msg.reply_to),
        "Subject": msg.subject,
        "Created": _iso(msg.received_at),
        "Username": "",
        "Tags": [],
        "Size": msg.size,
        "Attachments": msg.attachment_count,
        "Snippet": msg.snippet,
        "Envelope": {"From": msg.mail_from, "To": list(msg.rcpt_to), "Peer": msg.peer},
        "DuplicateOf": msg.duplicate_of,
    }


def _header_values(parsed: ParsedMessage, name: str) -> list[str]:
    return [h.value for h in parsed.headers if h.name.lower() == name]


def message_json(msg: MessageSummary, parsed: ParsedMessage) -> dict[str, Any]:
    """One message in the shape of Mailpit's Message (plus Mailroom's own fields)."""
    data = message_summary_json(msg)
    for key in ("Read", "Created", "Snippet"):
        del data[key]
    return_path = _header_values(parsed, "return-path")
    unsubscribe = _header_values(parsed, "list-unsubscribe")
    unsubscribe_post = _header_values(parsed, "list-unsubscribe-post")
    inline = [a for a in parsed.attachments if a.disposition != "attachment"]
    files = [a for a in parsed.attachments if a.disposition == "attachment"]
    data.update(
        {
            "ReturnPath": (return_path[0].strip().strip("<>") if return_path else msg.mail_from),
            "ListUnsubscribe": {
                "Header": unsubscribe[0] if unsubscribe else "",
                "Links": re.findall(r"<([^>]*)>", unsubscribe[0]) if unsubscribe else [],
                "Errors": "",
                "HeaderPost": unsubscribe_post[0] if unsubscribe_post else "",
            },
            "Date": _iso(parsed.date or msg.received_at),
            "Text": parsed.text or "",
            "HTML": parsed.html or "",
            "Inline": [_attachment_json(a) for a in inline],
            "Attachments": [_attachment_json(a) for a in files],
            "Notes": list(parsed.notes),
        }
    )
    return data


def _attachment_json(attachment: Attachment) -> dict[str, Any]:
    return {
        "PartID": str(attachment.index),
        "FileName": attachment.filename or "",
        "ContentType": attachment.content_type,
        "ContentID": (attachment.content_id or "").strip("<>"),
        "Size": attachment.size,
    }


def _ids(payload: Any) -> list[int]:
    """The "IDs" of a request body: a list of message ids (numbers or digit strings)."""
    if not isinstance(payload, dict):
        raise _BadRequest('the body must be a JSON object like {"IDs": ["1", "2"]}')
    ids = payload.get("IDs", [])
    if ids is None:
        return []
    if not isinstance(ids, list):
        raise _BadRequest(f'"IDs" must be a list of message ids, not {type(ids).__name__}')
    result = []
    for item in ids:
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            result.append(item)
        elif isinstance(item, str) and item.strip().isdigit() and int(item) > 0:
            result.append(int(item))
        else:
            raise _BadRequest(f'"IDs" must hold message ids (like "12" or 12), not {item!r}')
    return result


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
                except _BadRequest as exc:
                    self.send_error_json(exc.status, str(exc))
                except Exception as exc:  # noqa: BLE001 - a bad request must not kill the server
                    self.send_error_json(500, f"{type(exc).__name__}: {exc}")
                return
        self._skip_body()
        self.send_error_json(404, f"no such path: {path}")

    def _body_length(self) -> int:
        """The declared body length; _BadRequest (400, or 413 over MAX_BODY_BYTES) if unusable.

        A body that is refused is not read: the connection is closed after the answer.
        """
        raw = self.headers.get("Content-Length") or "0"
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise _BadRequest(f"Content-Length {raw[:40]!r} is not a length")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise _BadRequest(f"the body is {length} bytes; at most {MAX_BODY_BYTES} are "
                              "accepted", status=413)
        return length

    def _skip_body(self) -> None:
        """Read and drop a body no route wants (else it is taken for the next request)."""
        try:
            length = self._body_length()
        except _BadRequest:
            return  # the connection closes after the answer
        if length:
            self.rfile.read(length)

    def _not_allowed(self) -> None:
        self._skip_body()
        self.send_json({"error": f"{self.command} is not supported here; the API answers "
                                 "GET, HEAD, PUT and DELETE"}, 405)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._dispatch(GET_ROUTES)

    def do_HEAD(self) -> None:  # noqa: N802
        # The GET routes, answered without a body; none of them changes state on HEAD.
        self._dispatch(GET_ROUTES)

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch(PUT_ROUTES)

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch(DELETE_ROUTES)

    def do_POST(self) -> None:  # noqa: N802
        self._not_allowed()

    def do_PATCH(self) -> None:  # noqa: N802
        self._not_allowed()

    def _json_body(self) -> Any:
        """The request's JSON body (None when there is none); _BadRequest if unreadable."""
        length = self._body_length()
        body = self.rfile.read(length) if length else b""
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise _BadRequest("the body is not valid JSON") from None

    # -- activation ---------------------------------------------------------------------
    def activate(self, match: re.Match[str]) -> None:
        if self.command == "HEAD":
            # Link scanners and mail clients' previews send HEAD: they must not activate.
            self.send_page(200, "Activate your account", "Open this link to activate.", True)
            return
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
        if start < 0:
            raise _BadRequest("start must be >= 0")
        # As Mailpit: no limit (or 0) is the default page; a larger one gets what fits.
        return start, min(limit, MAX_PAGE) if limit > 0 else 50

    def list_messages(self, match: re.Match[str], query: SearchQuery | None = None) -> None:
        start, limit = self._paging()
        store = self._store()
        messages = store.list_messages(limit=limit, offset=start, query=query)
        total, unread = store.count_messages_unread()
        found, found_unread = store.count_messages_unread(query=query) if query else (
            total, unread
        )
        self.send_json(
            {
                "total": total,
                "unread": unread,
                "count": len(messages),
                "messages_count": found,
                "messages_unread": found_unread,
                "start": start,
                "tags": [],
                "messages": [message_summary_json(m) for m in messages],
            }
        )

    def search(self, match: re.Match[str]) -> None:
        text = self.query.get("query", [""])[0].strip()
        if not text:
            raise _BadRequest("missing query parameter: query")
        self.list_messages(match, query=parse_search(text))

    def _message_id(self, match: re.Match[str]) -> int | None:
        raw_id = match["id"]
        store = self._store()
        if raw_id == "latest":
            latest = store.list_messages(limit=1)
            return latest[0].id if latest else None
        return int(raw_id) if raw_id.isdigit() else None

    def _parsed(self, match: re.Match[str]) -> tuple[MessageSummary, ParsedMessage] | None:
        message_id = self._message_id(match)
        summary = self._store().get_message(message_id) if message_id else None
        raw = self._store().get_raw(message_id) if message_id else None
        if summary is None or raw is None:
            self.send_error_json(404, f"no message {match['id']}")
            return None
        return summary, parse_message(raw)

    def message(self, match: re.Match[str]) -> None:
        found = self._parsed(match)
        if found is None:
            return
        summary, parsed = found
        if self.command == "GET" and not summary.read:
            self._store().mark_read([summary.id])  # as Mailpit: opening a message reads it
        self.send_json(message_json(summary, parsed))

    def headers_of(self, match: re.Match[str]) -> None:
        found = self._parsed(match)
        if found is None:
            return
        headers: dict[str, list[str]] = {}
        for header in found[1].headers:
            headers.setdefault(header.name, []).append(header.value)
        self.send_json(headers)

    def raw(self, match: re.Match[str]) -> None:
        message_id = self._message_id(match)
        raw = self._store().get_raw(message_id) if message_id else None
        if raw is None:
            self.send_error_json(404, f"no message {match['id']}")
            return
        # Always the stored bytes, as an opaque download: never rendered by a browser.
        self._send(200, raw, "text/plain; charset=utf-8")

    def info(self, match: re.Match[str]) -> None:
        store = self._store()
        path = getattr(store, "path", None)
        size = path.stat().st_size if path is not None and path.exists() else 0
        counts = store.count_messages_unread()
        self.send_json(
            {
                "Version": _version(),
                "LatestVersion": "",
                "Database": str(path) if path is not None else "",
                "DatabaseSize": size,
                "Messages": counts[0],
                "Unread": counts[1],
                "Tags": {},
            }
        )

    def set_read(self, match: re.Match[str]) -> None:
        payload = self._json_body()
        ids = _ids(payload if payload is not None else {})
        read = True
        if isinstance(payload, dict) and "Read" in payload:
            if not isinstance(payload["Read"], bool):
                raise _BadRequest('"Read" must be true or false')
            read = payload["Read"]
        store = self._store()
        if not ids:  # as Mailpit: no IDs means every message
            ids = [m.id for m in store.list_messages(limit=store.count_messages())]
        store.mark_read(ids, read)
        self._send(200, b"ok", "text/plain; charset=utf-8")

    def delete_messages(self, match: re.Match[str]) -> None:
        payload = self._json_body()
        ids = _ids(payload) if payload is not None else []
        store = self._store()
        # As Mailpit: no IDs (no body, or an empty list) deletes every message.
        deleted = store.delete_messages(ids) if ids else store.clear_messages()
        self.send_json({"deleted": deleted})

    def delete_search(self, match: re.Match[str]) -> None:
        text = self.query.get("query", [""])[0].strip()
        if not text:
            raise _BadRequest("missing query parameter: query")
        store = self._store()
        query = parse_search(text)
        ids = [m.id for m in store.list_messages(limit=store.count_messages(), query=query)]
        self.send_json({"deleted": store.delete_messages(ids)})


class _BadRequest(Exception):
    """A request the API refuses with this message (400 unless status says otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailroom")
    except PackageNotFoundError:
        return "unknown"


GET_ROUTES: list[tuple[re.Pattern[str], Route]] = [
    (re.compile(r"/"), _Handler.index),
    (re.compile(r"/activate/(?P<token>[^/]+)"), _Handler.activate),
    (re.compile(r"/api/v1/messages"), _Handler.list_messages),
    (re.compile(r"/api/v1/search"), _Handler.search),
    (re.compile(r"/api/v1/message/(?P<id>\w+)"), _Handler.message),
    (re.compile(r"/api/v1/message/(?P<id>\w+)/raw"), _Handler.raw),
    (re.compile(r"/api/v1/message/(?P<id>\w+)/headers"), _Handler.headers_of),
    (re.compile(r"/api/v1/info"), _Handler.info),
    (re.compile(r"/view/(?P<id>\w+)\.eml"), _Handler.raw),
]
PUT_ROUTES: list[tuple[re.Pattern[str], Route]] = [
    (re.compile(r"/api/v1/messages"), _Handler.set_read),
]
DELETE_ROUTES: list[tuple[re.Pattern[str], Route]] = [
    (re.compile(r"/api/v1/messages"), _Handler.delete_messages),
    (re.compile(r"/api/v1/search"), _Handler.delete_search),
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
