"""The `mailroom` command as a user runs it: real processes, real ports, real data folders."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.desktop.cli_helpers import MailroomProcess, port_open, run_cli, run_json, wait_for


@pytest.fixture
def ports(free_port: Callable[[], int]) -> tuple[int, int]:
    return free_port(), free_port()


@pytest.fixture
def serve(data_dir: Path, ports: tuple[int, int]) -> Iterator[MailroomProcess]:
    smtp, http = ports
    proc = MailroomProcess(["serve", "--data-dir", str(data_dir), "--smtp-port", str(smtp),
                            "--http-port", str(http)])
    proc.wait_for_line("Ctrl-C stops.")
    yield proc
    assert proc.terminate() == 0, proc.output


def _base(data_dir: Path, ports: tuple[int, int]) -> list[str]:
    return ["--data-dir", str(data_dir), "--smtp-port", str(ports[0])]


def _activation_link(text: str) -> str:
    import re

    match = re.search(r"http://[^\s\"<>]+/activate/[A-Za-z0-9_\-.~%]+", text)
    assert match, f"no activation link in:\n{text}"
    return match.group(0)


@pytest.mark.slow
def test_fifty_signups_are_answered_at_once_then_delivered_and_a_link_activates(
    serve: MailroomProcess, data_dir: Path, ports: tuple[int, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """50 sign-ups through the CLI are answered with their timings; all 50 emails are caught and
    `sent`, the serve log shows them, and one link opened over HTTP activates its user."""
    addresses = [f"user{i}@example.com" for i in range(50)]
    results = run_json(capsys, "register", *addresses, "--data-dir", str(data_dir))
    assert [r["email"] for r in results] == addresses
    assert all(r["status"] == "pending" for r in results)
    # Each answer says how long the engine took and how much of it was password hashing
    # (bench/ measures those times; the suite only checks they are reported).
    assert all(0 < r["hash_ms"] <= r["elapsed_ms"] for r in results)

    def all_caught() -> list[dict[str, object]] | None:
        msgs = run_json(capsys, "messages", "--limit", "100", "--data-dir", str(data_dir))
        return msgs if len(msgs) == 50 else None

    messages = wait_for(all_caught, timeout=30, what="50 captured messages")
    assert sorted(m["rcpt_to"][0] for m in messages) == sorted(addresses)
    outbox = run_json(capsys, "outbox", "--data-dir", str(data_dir))
    assert [o["status"] for o in outbox] == ["sent"] * 50

    code, text, _ = run_cli(capsys, "show", str(messages[0]["id"]), "--text",
                            "--data-dir", str(data_dir))
    assert code == 0
    link = _activation_link(text)
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.status == 200
        assert "activated" in response.read().decode().lower()
    users = run_json(capsys, "users", "--data-dir", str(data_dir))
    active = [u["email"] for u in users if u["status"] == "active"]
    assert active == [messages[0]["rcpt_to"][0]]
    serve.wait_for_line("captured message")
    serve.wait_for_line("-> sent")


@pytest.mark.slow
def test_serve_without_worker_plus_a_separate_worker_process_delivers(
    data_dir: Path, ports: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve --no-worker` queues but sends nothing; a separate `mailroom worker` delivers."""
    smtp, http = ports
    serve = MailroomProcess(["serve", "--no-worker", "--data-dir", str(data_dir),
                             "--smtp-port", str(smtp), "--http-port", str(http)])
    worker: MailroomProcess | None = None
    try:
        serve.wait_for_line("Ctrl-C stops.")
        run_json(capsys, "register", "a@example.com", "b@example.com",
                 "--data-dir", str(data_dir))
        outbox = run_json(capsys, "outbox", "--data-dir", str(data_dir))
        assert {o["status"] for o in outbox} == {"queued"}
        # No --smtp-port: the worker finds the catcher this data folder's serve runs.
        worker = MailroomProcess(["worker", "--data-dir", str(data_dir)])
        wait_for(lambda: {o["status"] for o in run_json(
            capsys, "outbox", "--data-dir", str(data_dir))} == {"sent"},
            what="both emails sent by the separate worker")
        messages = run_json(capsys, "messages", "--data-dir", str(data_dir))
        assert len(messages) == 2
        # The separate worker's links point at this serve's HTTP port, not the default.
        _, text, _ = run_cli(capsys, "show", str(messages[0]["id"]), "--text",
                             "--data-dir", str(data_dir))
        assert _activation_link(text).startswith(f"http://127.0.0.1:{http}/activate/")
    finally:
        if worker:
            assert worker.terminate() == 0, worker.output
        assert serve.terminate() == 0, serve.output
    # Once serve has stopped, nothing points other commands at its ports any more.
    assert not (data_dir / "smtp.address").exists() and not (data_dir / "http.url").exists()


_WORKER_PID = re.compile(r"in process (\d+)$|worker process (\d+) started")


def _worker_pid(serve: MailroomProcess, after: int = 0) -> int:
    """The pid of serve's worker process, from the newest line after `after` naming one."""
    def newest() -> int | None:
        found = [m.group(1) or m.group(2) for line in serve.lines[after:]
                 if (m := _WORKER_PID.search(line))]
        return int(found[-1]) if found else None

    return int(wait_for(newest, what="a worker process pid in serve's output"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_serve_stops_cleanly_on_sigterm_and_frees_its_ports(
    data_dir: Path, ports: tuple[int, int]
) -> None:
    """SIGTERM makes `serve` stop its parts (its worker process too), say so, exit 0 and
    release both ports."""
    smtp, http = ports
    proc = MailroomProcess(["serve", "--data-dir", str(data_dir), "--smtp-port", str(smtp),
                            "--http-port", str(http)])
    proc.wait_for_line("Ctrl-C stops.")
    worker = _worker_pid(proc)
    assert port_open("127.0.0.1", smtp) and port_open("127.0.0.1", http)
    assert proc.terminate() == 0
    assert "stopped." in proc.output
    assert not port_open("127.0.0.1", smtp) and not port_open("127.0.0.1", http)
    assert not _alive(worker)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_the_worker_process_ends_when_serve_is_killed(
    data_dir: Path, ports: tuple[int, int]
) -> None:
    """A `serve` killed outright leaves no worker process behind."""
    smtp, http = ports
    proc = MailroomProcess(["serve", "--data-dir", str(data_dir), "--smtp-port", str(smtp),
                            "--http-port", str(http)])
    proc.wait_for_line("Ctrl-C stops.")
    worker = _worker_pid(proc)
    proc.kill()
    wait_for(lambda: not _alive(worker), timeout=20, what="the orphaned worker to stop")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_worker_process_is_replaced_and_delivery_goes_on(
    serve: MailroomProcess, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When serve's worker process dies, serve says so, starts another, and mail flows."""
    first = _worker_pid(serve)
    os.kill(first, signal.SIGKILL)
    serve.wait_for_line(f"worker process {first} exited with code -9")
    second = _worker_pid(serve, after=next(
        i for i, line in enumerate(serve.lines) if f"process {first} exited" in line))
    assert second != first and _alive(second)
    run_json(capsys, "register", "after@example.com", "--data-dir", str(data_dir))
    wait_for(lambda: [o["status"] for o in run_json(
        capsys, "outbox", "--data-dir", str(data_dir))] == ["sent"],
        what="the email sent by the new worker process")


def test_serve_on_a_busy_port_says_so_in_one_line(
    serve: MailroomProcess, data_dir: Path, ports: tuple[int, int], tmp_path: Path
) -> None:
    """A second `serve` on the same SMTP port exits 2 with one line naming the port."""
    other = MailroomProcess(["serve", "--data-dir", str(tmp_path / "other"),
                             "--smtp-port", str(ports[0]), "--http-port", str(ports[1])])
    code = other.proc.wait(30)
    other.terminate()
    assert code == 2
    lines = [line for line in other.lines if line.strip()]
    assert len(lines) == 1 and f"{ports[0]}" in lines[0] and "in use" in lines[0]


def test_serve_with_one_port_for_smtp_and_http_says_they_must_differ(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """`--smtp-port P --http-port P` is refused as such, not blamed on another server."""
    port = free_port()
    other = MailroomProcess(["serve", "--data-dir", str(tmp_path / "d"),
                             "--smtp-port", str(port), "--http-port", str(port)])
    code = other.proc.wait(30)
    other.terminate()
    assert code == 2
    lines = [line for line in other.lines if line.strip()]
    assert len(lines) == 1 and "must differ" in lines[0] and "in use" not in lines[0]


def test_a_second_serve_on_the_same_data_folder_names_the_first(
    serve: MailroomProcess, data_dir: Path, ports: tuple[int, int],
    free_port: Callable[[], int],
) -> None:
    """Two catchers and workers on one folder would confuse every other command: the second
    `serve` exits 2, naming the folder and where the first one listens."""
    other = MailroomProcess(["serve", "--data-dir", str(data_dir), "--smtp-port",
                             str(free_port()), "--http-port", str(free_port())])
    code = other.proc.wait(30)
    other.terminate()
    assert code == 2
    lines = [line for line in other.lines if line.strip()]
    assert len(lines) == 1 and str(data_dir) in lines[0] and f":{ports[0]}" in lines[0]
    assert (data_dir / "smtp.address").read_text().strip() == f"127.0.0.1:{ports[0]}"


def test_register_rejects_a_bad_address_naming_the_field_and_writes_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid address gets a one-line error naming `email`, a non-zero exit, no user."""
    code, out, err = run_cli(capsys, "register", "not-an-address", "--data-dir", str(data_dir))
    assert code != 0
    assert "email" in err and len(err.strip().splitlines()) == 1
    assert run_json(capsys, "users", "--data-dir", str(data_dir)) == []


def test_register_json_has_the_documented_fields(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`register --json` gives user_id, email, status, outbox_id, elapsed_ms per address."""
    rows = run_json(capsys, "register", "x@example.com", "--data-dir", str(data_dir))
    assert set(rows[0]) >= {"user_id", "email", "status", "outbox_id", "elapsed_ms"}
    users = run_json(capsys, "users", "--data-dir", str(data_dir))
    assert set(users[0]) >= {"id", "email", "status", "created_at", "activated_at"}
    outbox = run_json(capsys, "outbox", "--data-dir", str(data_dir))
    assert set(outbox[0]) >= {"id", "user_id", "kind", "to", "status", "attempts",
                              "last_error", "message_id", "created_at", "sent_at"}


def test_password_stdin_is_used_and_not_printed(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --password-stdin the password comes from standard input and is never echoed."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    code, out, err = run_cli(capsys, "register", "p@example.com", "--password-stdin",
                             "--data-dir", str(data_dir))
    assert code == 0, err
    assert "s3cret-password" not in out + err
    assert "  password " not in out  # no generated password either
    import sqlite3

    from argon2 import PasswordHasher

    with sqlite3.connect(data_dir / "mailroom.db") as db:
        (stored,) = db.execute("SELECT password_hash FROM users").fetchone()
    db.close()
    assert PasswordHasher().verify(stored, "s3cret-password")


def test_unknown_ids_exit_1_with_one_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking for a message or chaos rule that does not exist: status 1 and one line."""
    for argv in (["show", "999", "--data-dir", str(data_dir)],
                 ["chaos", "remove", "777", "--data-dir", str(data_dir)]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 1, argv
        assert len(err.strip().splitlines()) == 1
        assert argv[-3] in err


def test_bad_flags_exit_2_with_one_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad input anywhere ends with status 2 and a single line on stderr."""
    for argv in (["outbox", "--status", "lost", "--data-dir", str(data_dir)],
                 ["chaos", "add", "--stage", "rcpt", "--code", "250",
                  "--data-dir", str(data_dir)],
                 ["retry", "--data-dir", str(data_dir)]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1, (argv, err)


def test_a_shortened_option_is_refused_not_guessed(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--delay 3` is an error naming the option, not a silent `--delay-ms 3`."""
    code, _, err = run_cli(capsys, "chaos", "add", "--stage", "data", "--delay", "3",
                           "--data-dir", str(data_dir))
    assert code == 2 and "--delay" in err
    code, out, _ = run_cli(capsys, "chaos", "list", "--data-dir", str(data_dir))
    assert "wait" not in out  # no rule was added


def test_a_password_option_is_refused_and_never_echoed(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`register --password X` says how to give a password instead, signs nobody up, and
    does not print X; an unknown option is named without its value."""
    code, out, err = run_cli(capsys, "register", "pw@example.com", "--password",
                             "hunter2 secret", "--data-dir", str(data_dir))
    assert code == 2 and "--password-stdin" in err
    assert "hunter2" not in out + err
    code, _, err = run_cli(capsys, "register", "pw@example.com", "--passwd=hunter2",
                           "--data-dir", str(data_dir))
    assert code == 2 and "--passwd" in err and "hunter2" not in err
    assert "`mailroom register --help`" in err  # the command's own help
    assert run_json(capsys, "users", "--data-dir", str(data_dir), "--json") == []


def test_messages_search_names_the_parts_it_ignored(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`messages --search 'after:notadate'` says on stderr that it ignored that part."""
    run_json(capsys, "register", "s@example.com", "--data-dir", str(data_dir), "--json")
    code, _, err = run_cli(capsys, "messages", "--search", "after:notadate",
                           "--data-dir", str(data_dir))
    assert code == 0 and "ignored after:notadate (not a date" in err


def test_messages_page_on_with_start_and_say_when_there_are_none(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`messages --limit 2 --start 2` gives the 3rd and 4th newest and names the next
    page; an empty list says so instead of printing a bare header."""
    from mailcatcher.store import MessageStore, prepare_message

    run_json(capsys, "users", "--data-dir", str(data_dir), "--json")  # creates the folder
    code, out, _ = run_cli(capsys, "messages", "--data-dir", str(data_dir))
    assert code == 0 and out.strip() == "no captured messages"
    store = MessageStore(data_dir / "mail.db")
    try:
        store.add_prepared([prepare_message(f"Subject: m{i}\r\n\r\nx\r\n".encode(),
                                            mail_from="a@x.test", rcpt_tos=["b@y.test"],
                                            peer="p") for i in range(5)])
    finally:
        store.close()
    rows = run_json(capsys, "messages", "--limit", "2", "--start", "2", "--json",
                    "--data-dir", str(data_dir))
    assert [r["subject"] for r in rows] == ["m2", "m1"]
    code, _, err = run_cli(capsys, "messages", "--limit", "2", "--data-dir", str(data_dir))
    assert "--start 2 for the next page" in err
    code, out, _ = run_cli(capsys, "outbox", "--status", "failed", "--data-dir", str(data_dir))
    assert out.strip() == "no failed emails"


def test_an_address_file_saved_with_a_byte_order_mark_is_read(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A UTF-8 file that starts with a BOM (as Notepad saves it) signs its first line up."""
    listing = tmp_path / "users.txt"
    listing.write_bytes("\ufeffbom1@example.com\r\nbom2@example.com\r\n".encode())
    results = run_json(capsys, "register", "--from-file", str(listing),
                       "--data-dir", str(data_dir))
    assert [r["email"] for r in results] == ["bom1@example.com", "bom2@example.com"]


def test_chaos_rules_added_listed_and_removed_from_the_command_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chaos add` stores a rule in the data folder, `list` shows it, `remove` deletes it."""
    rule = run_json(capsys, "chaos", "add", "--stage", "rcpt", "--code", "451",
                    "--match", "*@flaky.test", "--data-dir", str(data_dir))
    listed = run_json(capsys, "chaos", "list", "--data-dir", str(data_dir))
    assert [r["id"] for r in listed["rules"]] == [rule["id"]]
    assert listed["rules"][0]["code"] == 451
    code, _, _ = run_cli(capsys, "chaos", "remove", str(rule["id"]), "--data-dir", str(data_dir))
    assert code == 0
    assert run_json(capsys, "chaos", "list", "--data-dir", str(data_dir))["rules"] == []


def test_options_before_the_command_mean_the_same_as_after(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mailroom --data-dir D users` reads D, exactly like `mailroom users --data-dir D`."""
    run_json(capsys, "register", "early@example.com", "--data-dir", str(data_dir))
    before = run_json(capsys, "--data-dir", str(data_dir), "users")
    after = run_json(capsys, "users", "--data-dir", str(data_dir))
    assert [u["email"] for u in before] == [u["email"] for u in after] == ["early@example.com"]


def test_reading_a_data_folder_that_does_not_exist_is_an_error_not_a_new_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --data-dir for a listing fails with one line and creates nothing."""
    missing = tmp_path / "typo"
    for argv in (["users"], ["messages"], ["outbox"], ["chaos", "list"]):
        code, _, err = run_cli(capsys, *argv, "--data-dir", str(missing))
        assert code == 2 and "no Mailroom data" in err, argv
    assert not missing.exists()


def test_sync_registration_reports_the_delivery_outcome(
    data_dir: Path, free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """`register --delivery sync` says how the inline delivery went: here, nobody listens."""
    rows = run_json(capsys, "register", "inline@example.com", "--delivery", "sync",
                    "--smtp-port", str(free_port()), "--data-dir", str(data_dir))
    assert rows[0]["delivery"] == "sync"
    assert rows[0]["delivery_status"] == "retrying"


@pytest.mark.slow
def test_path_shows_the_whole_sign_up_in_the_terminal(
    serve: MailroomProcess, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mailroom path EMAIL` lists the sign-up, the email, its attempt, the captured
    message and, after the link is opened, the activation."""
    run_json(capsys, "register", "pathfinder@example.com", "--data-dir", str(data_dir))

    def caught() -> list[dict[str, object]] | None:
        return run_json(capsys, "messages", "--data-dir", str(data_dir)) or None

    message = wait_for(caught, what="the activation email")[0]
    code, text, _ = run_cli(capsys, "show", str(message["id"]), "--text",
                            "--data-dir", str(data_dir))
    urllib.request.urlopen(_activation_link(text), timeout=10).close()
    data = run_json(capsys, "path", "pathfinder@example.com", "--data-dir", str(data_dir))
    (email,) = data["outbox"]
    assert email["status"] == "sent" and email["attempts"][0]["code"] == 250
    assert [m["id"] for m in email["captured"]] == [message["id"]]
    assert data["activated_via_outbox_id"] == email["id"]
    code, out, _ = run_cli(capsys, "path", "pathfinder@example.com", "--data-dir", str(data_dir))
    assert code == 0
    assert f"captured as message #{message['id']}" in out and "activated" in out
    stamps = [line.split("  ")[0] for line in out.splitlines() if line[:1].isdigit()]
    assert len(stamps) >= 5 and stamps == sorted(stamps)  # in the order things happened
