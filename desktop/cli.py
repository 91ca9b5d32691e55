"""The `mailroom` command: the composition root of core, mailcatcher and the desktop window.

`mailroom` alone opens the window; sub-commands run the product headless (`serve`,
`worker`) or act on a data folder from a terminal or a script (`register`, `users`,
`outbox`, `messages`, `show`, `chaos`, ...). Every listing takes `--json`.
Bad input ends the command with exit status 2 and one line naming what is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import string
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from core.errors import DataFolderError
from core.settings import DELIVERY_MODES, Settings
from desktop.models.format import kind_label
from desktop.runtime import DEFAULT_WORKERS, HTTP_URL_FILE, SMTP_ADDRESS_FILE, WINDOW_WORKERS

OUTBOX_STATES = ("queued", "sending", "retrying", "sent", "failed")


class UsageError(Exception):
    """Bad input from the command line; the message is the one line shown (exit 2)."""


class NotFound(Exception):
    """What the command was asked about does not exist (exit 1, one line)."""




# -- output helpers ---------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(data: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(_jsonable(data), out, ensure_ascii=False, indent=2)
    out.write("\n")


def _safe(text: object) -> str:
    """Untrusted text for a terminal: control characters (escape sequences) made visible."""
    from mailcatcher.parsing import make_visible

    return make_visible(str(text))


def _safe_body(text: str) -> str:
    """A body for a terminal: line breaks and tabs kept, other control characters shown."""
    return "\n".join(_safe(line).replace("\\t", "\t") for line in text.splitlines())


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- settings and services ------------------------------------------------------------


def build_settings(
    args: argparse.Namespace, *, create: bool = True, serves_http: bool = False
) -> Settings:
    """Settings from flags and MAILROOM_* variables.

    create=False is for commands that only read or change existing data: a data folder
    that does not exist is then an error (a typo in --data-dir), not a new empty folder.
    serves_http=True is for the processes that answer activation links themselves.
    """
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir).expanduser()
    for name in ("smtp_host", "smtp_port", "http_port", "base_url", "delivery"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data_dir = settings.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir} is a file, not a folder")
    if not create and not data_dir.is_dir():
        raise UsageError(f"no Mailroom data in {data_dir} (check --data-dir or "
                         f"MAILROOM_DATA_DIR; `mailroom serve` or `register` creates it)")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--data-dir {data_dir}: {exc.strerror}") from None
    if settings.base_url is None and getattr(args, "http_port", None) is None and not serves_http:
        # Links point where this data folder's HTTP port last listened (`serve`, the window),
        # so a separate `mailroom worker` or `register --delivery sync` writes working links.
        try:
            remembered = (data_dir / HTTP_URL_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            remembered = ""
        if remembered.startswith(("http://", "https://")):
            settings = settings.with_changes(base_url=remembered)
    smtp_given = any(getattr(args, name, None) is not None for name in ("smtp_host", "smtp_port"))
    smtp_in_env = any(name in os.environ for name in ("MAILROOM_SMTP_HOST", "MAILROOM_SMTP_PORT"))
    if not serves_http and not smtp_given and not smtp_in_env:
        # Mail goes to the catcher this data folder's `serve` or window runs, wherever it
        # listens, so that `mailroom worker` and `register --delivery sync` reach it.
        try:
            host, _, port = (data_dir / SMTP_ADDRESS_FILE).read_text(
                encoding="utf-8").strip().rpartition(":")
            settings = settings.with_changes(smtp_host=host, smtp_port=int(port))
        except (OSError, ValueError):
            pass
    return settings


def open_engine(args: argparse.Namespace, *, create: bool = False) -> Any:
    from core.engine import Engine

    return Engine(build_settings(args, create=create))


def open_store(args: argparse.Namespace, *, create: bool = False) -> Any:
    from mailcatcher.store import MessageStore

    return MessageStore(build_settings(args, create=create).mail_db_path)


# -- commands: running the product ------------------------------------------------------


def _install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if hasattr(signal, "SIGHUP"):  # the terminal closed: stop as cleanly as on Ctrl-C
        signal.signal(signal.SIGHUP, handler)


class EventPrinter:
    """Prints one line per captured message, delivery attempt and injected fault.

    It reads the databases, so it reports what any process did (a separate
    `mailroom worker`, the GUI, another program sending to the catcher). In a burst it
    prints the first `burst` lines of a kind per poll and then one line saying how many
    more there were, so that a flood of mail stays readable and costs little to log.
    """

    def __init__(self, engine: Any, store: Any, out: TextIO | None = None,
                 burst: int = 20) -> None:
        self.engine, self.store, self.out = engine, store, out or sys.stdout
        self.burst = burst
        faults = store.list_faults(limit=1)
        self.last_attempt = engine.attempts_after(0)[1]
        self.last_message = store.messages_after(0)[1]
        self.last_fault = max((f.id for f in faults), default=0)

    def poll(self) -> None:
        attempts = self.engine.list_attempts_since(self.last_attempt, limit=self.burst)
        for a in attempts:
            self.last_attempt = a.id
            code = a.code if a.code is not None else "---"
            to = a.to or "?"
            detail = _safe(a.error or a.reply or "")
            self._line(
                f"attempt  outbox #{a.outbox_id} to {_safe(to)} try {a.number}: {code} "
                f"{detail} -> {a.outcome} ({a.duration_ms:.0f} ms)"
            )
        if len(attempts) == self.burst:
            more, self.last_attempt = self.engine.attempts_after(self.last_attempt)
            if more:
                self._line(f"attempt  ... and {more} more (`mailroom outbox` lists them)")
        messages = self.store.list_messages_since(self.last_message, limit=self.burst)
        for m in messages:
            self.last_message = m.id
            dup = f" [duplicate of #{m.duplicate_of}]" if m.duplicate_of else ""
            self._line(
                f"captured message #{m.id} from {_safe(m.mail_from) or '<>'} to "
                f"{_safe(', '.join(m.rcpt_to))}: {_safe(m.subject)!s} ({m.size} bytes){dup}"
            )
        if len(messages) == self.burst:
            more, self.last_message = self.store.messages_after(self.last_message)
            if more:
                self._line(f"captured ... and {more} more (`mailroom messages` lists them)")
        for f in self.store.list_faults(after_id=self.last_fault):
            self.last_fault = f.id
            self._line(f"fault    {_safe(_describe_fault(f))}")

    def _line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"{stamp} {text}", file=self.out, flush=True)


def _describe_fault(fault: Any) -> str:
    rule = getattr(fault, "rule_id", None)
    origin = f"chaos rule #{rule}" if rule else "rejected"
    stage = getattr(fault, "stage", "?")
    reply = getattr(fault, "reply", "") or getattr(fault, "action", "")
    peer = getattr(fault, "peer", "")
    return f"{origin} at {stage} from {peer}: {reply}"


def cmd_serve(args: argparse.Namespace) -> int:
    from desktop.runtime import Runtime, StartupError

    settings = build_settings(args, serves_http=True)
    runtime = Runtime(
        settings,
        run_catcher=not args.no_catcher,
        run_worker=not args.no_worker,
        workers=args.workers or DEFAULT_WORKERS,
        size_limit=args.max_size * 1024 * 1024,
        worker_process=True,
    )
    stop = threading.Event()
    _install_stop_signals(stop)
    try:
        runtime.start()
    except StartupError as exc:
        runtime.close()
        raise UsageError(str(exc)) from None
    try:
        printer = EventPrinter(runtime.engine, runtime.store)
        host, port = runtime.smtp_address
        http = runtime.http_address
        print(f"Mailroom {'catching' if runtime.catcher_running else 'sending'} SMTP on "
              f"{host}:{port}" + ("" if runtime.catcher_running else " (catcher off)"))
        if http:
            print(f"HTTP (activation links, /api/v1) on http://{http[0]}:{http[1]}")
        child = runtime.worker_process
        workers = (f"{runtime.options.workers} worker thread(s) in process {child.pid}" if child
                   else "no worker")
        print(f"data in {settings.data_dir}; delivery {settings.delivery}; {workers}")
        print("Ctrl-C stops.", flush=True)
        # Twice a second: soon enough to read as live, and a busy poll (up to 20 lines of
        # a kind, then a count) costs about 6 ms that the catcher would otherwise have.
        while not stop.wait(0.5):
            printer.poll()
            news = child.check() if child else None
            if news:
                print(f"{datetime.now():%H:%M:%S} {news}", flush=True)
        printer.poll()
    finally:
        print("stopping...", flush=True)
        runtime.close()
    print("stopped.")
    return 0


def _stop_when_stdin_closes() -> threading.Event:
    """An event set when standard input reaches its end (the parent closed it, or died)."""
    event = threading.Event()

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        event.set()

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()
    return event


def cmd_worker(args: argparse.Namespace) -> int:
    engine = open_engine(args, create=True)
    threads = args.workers or DEFAULT_WORKERS
    try:
        s = engine.settings
        print(f"Mailroom worker: {threads} thread(s), data in {s.data_dir}, sending to "
              f"{s.smtp_host}:{s.smtp_port}, links to {s.activation_base_url}", flush=True)
        stop = _stop_when_stdin_closes() if args.stop_when_stdin_closes else None
        engine.run_worker(threads, stop)
    finally:
        engine.close()
    print("worker stopped.")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from desktop.app import display_available, run_gui
    except ImportError as exc:
        raise UsageError(f"the window needs PySide6 ({exc}); try `mailroom serve`") from None
    if not display_available():
        raise UsageError("no display found (DISPLAY/WAYLAND_DISPLAY unset); "
                         "run `mailroom serve` for the headless product")
    settings = build_settings(args, serves_http=True)
    return int(run_gui(settings, run_catcher=not args.no_catcher,
                       run_worker=not args.no_worker,
                       workers=args.workers or WINDOW_WORKERS))


# -- commands: the engine ---------------------------------------------------------------


def _generate_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


def _read_addresses(args: argparse.Namespace) -> list[str]:
    addresses = list(args.emails)
    if args.from_file:
        try:
            text = Path(args.from_file).read_text(encoding="utf-8-sig") \
                if args.from_file != "-" else sys.stdin.read().removeprefix("\ufeff")
        except OSError as exc:
            raise UsageError(f"--from-file {args.from_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--from-file {args.from_file}: not UTF-8 text") from None
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                addresses.append(line)
    if not addresses:
        raise UsageError("give at least one email address (or --from-file FILE)")
    return addresses


def cmd_register(args: argparse.Namespace) -> int:
    from core.errors import MailroomError

    addresses = _read_addresses(args)
    password: str | None = None
    if args.password_stdin:
        if args.from_file == "-":
            raise UsageError("--password-stdin and --from-file - both want standard input")
        password = sys.stdin.readline().rstrip("\r\n")
    engine = open_engine(args, create=True)
    results: list[dict[str, Any]] = []
    failures = 0
    sync = (args.delivery or engine.settings.delivery) == "sync"
    try:
        for address in addresses:
            pw = password if password is not None else _generate_password()
            try:
                r = engine.register(address, pw, args.name or "", delivery=args.delivery)
            except MailroomError as exc:
                failures += 1
                print(f"mailroom register: {address!r}: {exc}", file=sys.stderr)
                continue
            row = {"user_id": r.user_id, "email": r.email, "status": r.status,
                   "outbox_id": r.outbox_id, "elapsed_ms": round(r.elapsed_ms, 3),
                   "hash_ms": round(r.hash_ms, 3), "delivery": r.delivery}
            if password is None and r.user_id is not None:
                row["password"] = pw
            outbox = engine.get_outbox(r.outbox_id) if sync and r.outbox_id else None
            if outbox is not None:
                row["delivery_status"] = outbox.status
                row["delivery_reply"] = outbox.last_error or outbox.last_code
            results.append(row)
            if not args.json:
                # The operator's view: an existing address is said to be one (the person
                # signing up gets the same answer either way: `status` and `message`).
                extra = f"  password {pw}" if password is None and r.user_id is not None else ""
                if r.user_id is not None:
                    who = f"user {r.user_id}"
                elif r.outbox_id is not None:
                    who = "already registered: its owner was sent a notice"
                else:
                    who = "already registered: its owner was notified recently, no new email"
                print(f"registered {r.email}  {who}  outbox {r.outbox_id or '-'}  "
                      f"{r.elapsed_ms:.1f} ms, {r.elapsed_ms - r.hash_ms:.1f} ms without "
                      f"password hashing ({r.delivery}){extra}")
                if outbox is not None:
                    reply = outbox.last_error or outbox.last_code or ""
                    print(f"  delivered inline: {outbox.status} {_safe(reply)}".rstrip())
        if results and not sync and engine.queue_stats().workers_alive == 0:
            print("mailroom register: note: no queue worker is running for this data folder; "
                  "the emails wait in the queue until `mailroom serve`, `mailroom worker` or "
                  "the window starts", file=sys.stderr)
    finally:
        engine.close()
    if args.json:
        print_json(results)
    return 1 if failures else 0


def cmd_activate(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        result = engine.activate(args.token)
    finally:
        engine.close()
    if args.json:
        print_json(result)
    else:
        print(result.message)
    return 0 if result.outcome in ("activated", "already_active") else 1


def cmd_resend(args: argparse.Namespace) -> int:
    from core.errors import MailroomError

    engine = open_engine(args)
    try:
        result = engine.resend(args.email)
    except MailroomError as exc:
        raise UsageError(str(exc)) from None
    finally:
        engine.close()
    if args.json:
        print_json(result)
    elif result.outbox_id is not None:
        engine = open_engine(args)
        try:
            outbox = engine.get_outbox(result.outbox_id)
        finally:
            engine.close()
        to = outbox.to if outbox else result.email
        print(f"activation email queued again for {_safe(to)} (outbox {result.outbox_id})")
    else:
        # The engine answers alike for unknown and active addresses (no enumeration).
        print(f"{result.message} (nothing queued: no pending user with that address)")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        users = engine.list_users(limit=args.limit)
    finally:
        engine.close()
    if args.json:
        print_json([{"id": u.id, "email": u.email, "display_name": u.display_name,
                     "status": u.status, "created_at": u.created_at,
                     "activated_at": u.activated_at} for u in users])
        return 0
    print_table(("ID", "EMAIL", "NAME", "STATUS", "CREATED", "ACTIVATED"),
                ((u.id, _safe(u.email), _safe(u.display_name), u.status, _when(u.created_at),
                  _when(u.activated_at)) for u in users))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        rows = engine.list_outbox(status=args.status, limit=args.limit)
    finally:
        engine.close()
    if args.json:
        print_json([{"id": o.id, "user_id": o.user_id, "kind": o.kind, "to": o.to,
                     "status": o.status, "attempts": o.attempts, "last_code": o.last_code,
                     "last_error": o.last_error, "message_id": o.message_id,
                     "next_attempt_at": o.next_attempt_at, "created_at": o.created_at,
                     "sent_at": o.sent_at} for o in rows])
        return 0
    if not rows:
        print(f"no {args.status} emails" if args.status else "no outbound emails yet")
        return 0
    print_table(("ID", "USER", "KIND", "TO", "STATUS", "TRIES", "NEXT TRY", "LAST REPLY"),
                ((o.id, o.user_id, kind_label(o.kind), _safe(o.to), o.status, o.attempts,
                  _when(o.next_attempt_at) if o.status == "retrying" else "-",
                  _safe(o.last_error or (o.last_code or ""))[:60]) for o in rows))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if not args.ids and not args.failed:
        raise UsageError("give outbox ids to retry, or --failed for every failed email")
    engine = open_engine(args)
    try:
        retried = engine.retry_failed() if args.failed else engine.retry(args.ids)
    finally:
        engine.close()
    if args.json:
        print_json({"retried": retried})
    else:
        nothing = "nothing (no failed email)" if args.failed else "nothing"
        print(f"queued again: {', '.join(map(str, retried)) or nothing}")
    missing = sorted(set(args.ids) - set(retried))
    if missing:
        engine = open_engine(args)
        try:
            for outbox_id in missing:
                why = engine.explain_not_retried(outbox_id) or "nothing to do"
                print(f"mailroom retry: #{outbox_id} not retried: {why}", file=sys.stderr)
        finally:
            engine.close()
        return 1
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    """The whole path of one sign-up, as the window's Registrations tab shows it."""
    engine = open_engine(args)
    store = open_store(args)
    try:
        key = args.user.strip()
        user = engine.get_user(int(key)) if key.isdigit() else engine.find_user(key)
        if user is None:
            raise NotFound(f"no user {key!r}")
        path = engine.get_signup_path(user.id)
        assert path is not None
        captured = {o.id: store.find_by_message_id(o.message_id) for o in path.outbox}
    finally:
        engine.close()
        store.close()
    if args.json:
        print_json({
            "user": user,
            "outbox": [{**_jsonable(o), "attempts": _jsonable(path.attempts.get(o.id, [])),
                        "captured": [{"id": m.id, "received_at": m.received_at,
                                      "duplicate_of": m.duplicate_of}
                                     for m in captured[o.id]]}
                       for o in path.outbox],
            "activated_at": path.activated_at,
            "activated_via_outbox_id": path.activated_via_outbox_id,
        })
        return 0
    took = f" (answered in {path.signup_ms:.1f} ms)" if path.signup_ms is not None else ""
    print(f"{_when(path.created_at)}  sign-up of {_safe(user.email)}, user {user.id}{took}")
    for o in sorted(path.outbox, key=lambda o: o.created_at):
        print(f"{_when(o.created_at)}  outbox #{o.id} {kind_label(o.kind)} to {_safe(o.to)}: "
              "queued")
        # Attempts and captures in the order they happened (a capture comes before the
        # 250 that ends its attempt's conversation, after the attempt started).
        lines = []
        for a in path.attempts.get(o.id, []):
            code = a.code if a.code is not None else "---"
            lines.append((a.started_at, f"{_when(a.started_at)}    attempt {a.number}: {code} "
                          f"{_safe(a.error or a.reply)} -> {a.outcome} "
                          f"({a.duration_ms:.0f} ms)"))
        for m in captured[o.id]:
            dup = f", duplicate of #{m.duplicate_of}" if m.duplicate_of else ""
            lines.append((m.received_at, f"{_when(m.received_at)}    captured as message "
                          f"#{m.id}{dup} (mailroom show {m.id})"))
        for _, line in sorted(lines, key=lambda item: item[0]):
            print(line)
        if o.status in ("retrying", "queued", "sending"):
            when = f" (next try {_when(o.next_attempt_at)})" if o.next_attempt_at else ""
            print(f"{'':19}    now {o.status}{when}")
        elif o.status == "failed":
            print(f"{'':19}    failed: {_safe(o.last_error or '')}")
    if path.activated_at:
        via = f" via outbox #{path.activated_via_outbox_id}" \
            if path.activated_via_outbox_id else ""
        print(f"{_when(path.activated_at)}  activated{via}")
    else:
        print(f"{'':19}  not activated yet")
    return 0


# -- commands: the mail store -----------------------------------------------------------


def cmd_messages(args: argparse.Namespace) -> int:
    from mailcatcher.search import parse_search

    store = open_store(args)
    try:
        query = parse_search(args.search) if args.search else None  # Mailpit's syntax
        for part in query.ignored if query is not None else ():
            print(f"mailroom: note: ignored {part}", file=sys.stderr)
        rows = store.list_messages(limit=args.limit, offset=args.start, query=query)
        total = store.count_messages(query=query)
    finally:
        store.close()
    if total > args.start + len(rows) and not args.json:
        first, last = args.start + 1, args.start + len(rows)
        print(f"(newest {first}-{last} of {total} shown; --start {last} for the next page)",
              file=sys.stderr)
    if args.json:
        print_json([{"id": m.id, "received_at": m.received_at, "mail_from": m.mail_from,
                     "rcpt_to": list(m.rcpt_to), "subject": m.subject, "size": m.size,
                     "message_id": m.message_id, "attachments": m.attachment_count,
                     "duplicate_of": m.duplicate_of, "notes": list(m.notes)} for m in rows])
        return 0
    if not rows:
        print("no captured messages" + (" match" if args.search else "")
              + (f" from {args.start + 1} on" if args.start else ""))
        return 0
    print_table(("ID", "RECEIVED", "FROM", "TO", "SUBJECT", "SIZE", ""),
                ((m.id, _when(m.received_at), _safe(m.mail_from)[:40],
                  _safe(", ".join(m.rcpt_to))[:40], _safe(m.subject)[:60], m.size,
                  f"duplicate of #{m.duplicate_of}" if m.duplicate_of else "") for m in rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from mailcatcher.parsing import parse_message

    store = open_store(args)
    try:
        raw = store.get_raw(args.id)
        summary = store.get_message(args.id)
    finally:
        store.close()
    if raw is None or summary is None:
        raise NotFound(f"no message with id {args.id}")
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        return 0
    parsed = parse_message(raw)
    if args.json:
        data = parsed.to_json()
        data["id"] = summary.id
        data["envelope"] = {"mail_from": summary.mail_from, "rcpt_to": list(summary.rcpt_to),
                            "peer": summary.peer, "received_at": summary.received_at}
        data["size"] = summary.size
        data["duplicate_of"] = summary.duplicate_of
        print_json(data)
        return 0
    if args.headers:
        for h in parsed.headers:
            print(f"{h.name}: {_safe(h.value)}")
        return 0
    if args.html:
        if parsed.html is None:
            print(f"mailroom show: message {args.id} has no HTML part (try --text)",
                  file=sys.stderr)
            return 1
        print(parsed.html, end="" if parsed.html.endswith("\n") else "\n")
        return 0
    if not args.text:
        for name, value in (("From", parsed.from_), ("To", ", ".join(parsed.to)),
                            ("Subject", parsed.subject), ("Date", parsed.date or "-")):
            print(f"{name}: {_safe(value)}")
        for a in parsed.attachments:
            print(f"Attachment: {_safe(a.filename)} ({a.content_type}, {a.size} bytes)")
        for note in parsed.notes:
            print(f"Note: {_safe(note)}")
        print()
    print(_safe_body(parsed.text or ("(no text part; see --html)" if parsed.html else "")))
    return 0


# -- commands: chaos --------------------------------------------------------------------


def cmd_chaos(args: argparse.Namespace) -> int:
    from mailcatcher.chaos import ChaosRule

    store = open_store(args, create=args.chaos_command in ("add", "on", "off"))
    try:
        if args.chaos_command == "add":
            try:
                rule = ChaosRule(stage=args.stage, code=args.code, message=args.message or "",
                                 delay_ms=args.delay_ms, drop=args.drop,
                                 probability=args.probability, match=args.match, per=args.per)
            except (ValueError, TypeError) as exc:
                raise UsageError(str(exc)) from None
            saved = store.add_chaos_rule(rule)
            if args.json:
                print_json(saved)
            else:
                print(f"added chaos rule #{saved.id}: {saved.describe()}")
        elif args.chaos_command == "list":
            rules = store.list_chaos_rules()
            enabled = store.chaos_enabled()
            if args.json:
                print_json({"enabled": enabled, "rules": rules})
            else:
                print(f"chaos is {'ON' if enabled else 'OFF (rules kept, none applied)'}")
                for r in rules:
                    print(f"#{r.id}: {r.describe()}")
                if not rules:
                    print("no rules")
        elif args.chaos_command == "remove":
            if not store.remove_chaos_rule(args.id):
                raise NotFound(f"no chaos rule with id {args.id}")
            print(f"removed chaos rule #{args.id}")
        elif args.chaos_command == "clear":
            print(f"removed {store.clear_chaos_rules()} chaos rule(s)")
        elif args.chaos_command in ("on", "off"):
            store.set_chaos_enabled(args.chaos_command == "on")
            print(f"chaos {args.chaos_command}")
        elif args.chaos_command == "faults":
            faults = store.list_faults(limit=args.limit)
            if args.json:
                print_json(faults)
            else:
                for f in faults:
                    to = f" to {', '.join(f.rcpt_to)}" if f.rcpt_to else ""
                    print(f"#{f.id} {_when(f.created_at)} {_safe(_describe_fault(f) + to)}")
                if len(faults) == args.limit:
                    print(f"(the latest {args.limit} shown; --limit N for more)", file=sys.stderr)
    finally:
        store.close()
    return 0


# -- the parser -------------------------------------------------------------------------


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100: {text}")
    return value


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `--delay 3` must not quietly mean `--delay-ms 3`.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # one line, exit status 2
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse's, but an unknown option is named without what follows it (it may
        be a password) and the help pointed to is the command's own."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            options = [a.split("=", 1)[0] for a in extras if a.startswith("-")]
            what = (f"unrecognized option(s): {' '.join(options)}" if options
                    else f"unrecognized argument(s): {' '.join(extras)}")
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            raise UsageError(f"{what} (see `{prog} --help`)")
        return parsed


class _RefusePassword(argparse.Action):
    """`--password`: refused, because a password in the command line is not secret."""

    def __call__(self, *_args: Any, **_kwargs: Any) -> None:
        raise UsageError("there is no --password option: a password on the command line "
                         "can be read by every user of this machine (ps, shell history); "
                         "use --password-stdin, or leave it out to have one generated")


def _option_groups(top: bool) -> dict[str, _Parser]:
    """Parent parsers for options that the top level and the sub-commands share.

    The sub-commands' copies default to SUPPRESS, so `mailroom --data-dir D users` and
    `mailroom users --data-dir D` mean the same and one never resets the other.
    """

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    common = _Parser(add_help=False)
    common.add_argument("--data-dir", metavar="DIR", default=default(None),
                        help="data folder (env MAILROOM_DATA_DIR; default: your user data dir)")
    smtp = _Parser(add_help=False)
    smtp.add_argument("--smtp-host", metavar="HOST", default=default(None),
                      help="SMTP host to catch on and send to (env MAILROOM_SMTP_HOST; "
                           "default: where this data folder's catcher runs, else 127.0.0.1)")
    smtp.add_argument("--smtp-port", type=_port, metavar="PORT", default=default(None),
                      help="SMTP port (env MAILROOM_SMTP_PORT; default: where this data "
                           "folder's catcher runs, else 1025)")
    links = _Parser(add_help=False)
    links.add_argument("--http-port", type=_port, metavar="PORT", default=default(None),
                       help="HTTP port for activation links and the API "
                            "(env MAILROOM_HTTP_PORT; default 8025)")
    links.add_argument("--base-url", metavar="URL", default=default(None),
                       help="base of activation links (env MAILROOM_BASE_URL; default: where "
                            "this data folder's `serve` or window listens, else "
                            "http://127.0.0.1:8025)")
    workers = _Parser(add_help=False)
    workers.add_argument("--workers", type=_positive_int, default=default(None),
                         metavar="N", help=f"queue worker threads (default {DEFAULT_WORKERS}; "
                                           f"{WINDOW_WORKERS} in the window's own process)")
    run = _Parser(add_help=False)
    run.add_argument("--no-worker", action="store_true", default=default(False),
                     help="run no queue worker here (run `mailroom worker` beside it)")
    run.add_argument("--no-catcher", action="store_true", default=default(False),
                     help="run no SMTP catcher here (send to another server)")
    run.add_argument("--max-size", type=_positive_int, default=default(50), metavar="MIB",
                     help="largest message the catcher accepts, advertised as SIZE "
                          "(default 50 MiB)")
    delivery = _Parser(add_help=False)
    delivery.add_argument("--delivery", choices=DELIVERY_MODES, default=default(None),
                          help="queue (default) or sync: send inline before answering "
                               "(env MAILROOM_DELIVERY)")
    jsonf = _Parser(add_help=False)
    jsonf.add_argument("--json", action="store_true", help="print JSON for scripts")
    return {"common": common, "smtp": smtp, "links": links, "workers": workers, "run": run,
            "delivery": delivery, "json": jsonf}


def build_parser() -> argparse.ArgumentParser:
    top = _option_groups(top=True)
    g = _option_groups(top=False)
    common, smtp, links, workers, run, delivery, jsonf = (
        g["common"], g["smtp"], g["links"], g["workers"], g["run"], g["delivery"], g["json"])

    parser = _Parser(prog="mailroom",
                     parents=[top["common"], top["smtp"], top["links"], top["workers"],
                              top["run"], top["delivery"]],
                     description="Mailroom: registration engine, email queue and catching "
                                 "SMTP server. Without a command, opens the window.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("serve", parents=[common, smtp, links, workers, run, delivery],
                       help="run catcher + worker + HTTP port headless until Ctrl-C")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("worker", parents=[common, smtp, links, workers],
                       help="run only the queue worker (beside `serve --no-worker` or the window)")
    # `serve` starts its worker this way, so that the worker ends with it.
    p.add_argument("--stop-when-stdin-closes", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("register", parents=[common, smtp, links, delivery, jsonf],
                       help="sign up one or more users")
    p.add_argument("emails", nargs="*", metavar="EMAIL")
    p.add_argument("--name", help="display name for every address")
    p.add_argument("--from-file", metavar="FILE", help="addresses, one per line ('-': stdin)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read one password from standard input (else one is generated "
                        "per user and printed)")
    p.add_argument("--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_register)
    p = sub.add_parser("activate", parents=[common, jsonf], help="activate with a token or link")
    p.add_argument("token", metavar="TOKEN_OR_LINK")
    p.set_defaults(func=cmd_activate)
    p = sub.add_parser("resend", parents=[common, jsonf], help="send the activation email again")
    p.add_argument("email")
    p.set_defaults(func=cmd_resend)
    p = sub.add_parser("users", parents=[common, jsonf], help="list users")
    p.add_argument("--limit", type=_positive_int, default=None)
    p.set_defaults(func=cmd_users)
    p = sub.add_parser("path", parents=[common, jsonf],
                       help="the whole path of one sign-up: request, emails, every SMTP "
                            "attempt, captured messages, activation")
    p.add_argument("user", metavar="EMAIL_OR_USER_ID")
    p.set_defaults(func=cmd_path)
    p = sub.add_parser("outbox", parents=[common, jsonf], help="list outbound emails")
    p.add_argument("--status", choices=OUTBOX_STATES)
    p.add_argument("--limit", type=_positive_int, default=None)
    p.set_defaults(func=cmd_outbox)
    p = sub.add_parser("retry", parents=[common, jsonf],
                       help="send failed (or retrying) emails again now")
    p.add_argument("ids", nargs="*", type=_positive_int, metavar="ID")
    p.add_argument("--failed", action="store_true", help="retry every failed email")
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("messages", parents=[common, jsonf], help="list captured messages")
    p.add_argument("--search", metavar="TEXT", help="full-text search")
    p.add_argument("--limit", type=_positive_int, default=50, help="how many (default 50)")
    p.add_argument("--start", type=_non_negative_int, default=0, metavar="N",
                   help="skip the N newest (to page on; default 0)")
    p.set_defaults(func=cmd_messages)
    p = sub.add_parser("show", parents=[common], help="show one captured message")
    p.add_argument("id", type=_positive_int, metavar="ID")
    view = p.add_mutually_exclusive_group()
    for flag, text in (("--raw", "the stored bytes, exactly"), ("--text", "the text body"),
                       ("--html", "the HTML body (as source)"), ("--headers", "all headers"),
                       ("--json", "the parsed message as JSON")):
        view.add_argument(flag, action="store_true", help=text)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("chaos", parents=[common], help="make the catcher misbehave on purpose")
    chaos = p.add_subparsers(dest="chaos_command", metavar="ACTION", required=True,
                             parser_class=_Parser)
    c = chaos.add_parser("add", parents=[common, jsonf], help="add a fault rule")
    c.add_argument("--stage", required=True, choices=("connect", "mail", "rcpt", "data"))
    c.add_argument("--code", type=int, help="SMTP reply code to answer (400-599)")
    c.add_argument("--message", help="text of the reply")
    c.add_argument("--delay-ms", type=int, default=0, help="wait this long before answering")
    c.add_argument("--drop", action="store_true", help="drop the connection at this stage")
    c.add_argument("--probability", type=_probability, default=100.0, help="0-100 (default 100)")
    c.add_argument("--match", metavar="PATTERN", help="only recipients matching (e.g. *@bad.test)")
    c.add_argument("--per", choices=("message", "connection"), default="message",
                   help="draw the probability per message (default) or per connection")
    c.set_defaults(func=cmd_chaos)
    c = chaos.add_parser("list", parents=[common, jsonf], help="list fault rules")
    c.set_defaults(func=cmd_chaos)
    c = chaos.add_parser("remove", parents=[common], help="remove a fault rule")
    c.add_argument("id", type=_positive_int)
    c.set_defaults(func=cmd_chaos)
    for name, text in (("clear", "remove every rule"), ("on", "apply the rules (master switch)"),
                       ("off", "keep the rules but apply none")):
        c = chaos.add_parser(name, parents=[common], help=text)
        c.set_defaults(func=cmd_chaos)
    c = chaos.add_parser("faults", parents=[common, jsonf],
                         help="list injected faults and rejections (the latest, oldest first)")
    c.add_argument("--limit", type=_positive_int, default=50)
    c.set_defaults(func=cmd_chaos)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] = getattr(args, "func", cmd_gui)
        return func(args)
    except UsageError as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 2
    except (NotFound, DataFolderError) as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error, OperationalError) as exc:
        if isinstance(exc, BrokenPipeError):
            # `mailroom messages | head`: the reader left; say nothing more.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        reason = getattr(exc, "orig", None) or exc
        if not isinstance(exc, OSError) and not any(
            word in str(reason).lower()
            for word in ("readonly", "read-only", "unable to open", "disk", "permission",
                         "locked", "not a database")
        ):
            raise  # a bug, not the data folder: keep the traceback
        where = getattr(args, "data_dir", None) if "args" in locals() else None
        print(f"mailroom: cannot use the data folder{f' {where}' if where else ''}: {reason}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
