"""`clinic`: the developer's command line for the local stack (and `migrate` for production)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from shared.enums import ROLES

if TYPE_CHECKING:
    from local.stack import Ports

warnings.filterwarnings("ignore", module="platformdirs")


@contextmanager
def _with_database() -> Iterator[None]:
    """Points DATABASE_URL at this checkout's database when nothing else is configured: its
    running stack's (local/running.py), else its embedded server, which this command starts
    if it must and stops again when it is done. Refused where the server it would reach is
    another checkout's."""
    if os.environ.get("DATABASE_URL") or os.environ.get("INSTANCE_CONNECTION_NAME"):
        yield
        return
    from local import running
    from local.paths import STATE
    from local.postgres import EmbeddedPostgres
    from local.stack import Stack

    pgdata = STATE / "pgdata"
    stack = running.this_checkouts()
    if stack is not None:
        if stack.embedded_postgres:
            running.check_database_is_ours(stack.database_url, pgdata)
        os.environ["DATABASE_URL"] = stack.database_url
        yield
        return
    ports = _ports()
    postgres = EmbeddedPostgres(pgdata, ports.postgres)
    already = postgres.postmaster()
    if already is not None:
        postgres.port = already[1]  # left running on its own port (a stack that was killed)
    else:
        try:
            postgres.start()
        except RuntimeError as error:
            raise running.Refused(
                f"this checkout's local stack is not running, and {error}. Start it with `make run`"
            ) from None
    try:
        Stack(ports=ports, postgres=postgres)._ensure_database("clinic")
        url = postgres.url_for("clinic")
        running.check_database_is_ours(url, pgdata)
        os.environ["DATABASE_URL"] = url
        yield
    finally:
        if already is None:
            postgres.stop()


def _ports() -> Ports:
    """The local stack's ports; CLINIC_PORT_OFFSET moves every one, for a second stack
    beside the first (a running stack's own are read from its .local/stack.json)."""
    from local.stack import Ports

    return Ports.offset(int(os.environ.get("CLINIC_PORT_OFFSET") or "0"))


def cmd_migrate(_: argparse.Namespace) -> None:
    from local.migrate import migrate

    with _with_database():
        applied = migrate()
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")


def cmd_seed(_: argparse.Namespace) -> None:
    from local.seed import seed

    with _with_database():
        print(seed())


def cmd_token(args: argparse.Namespace) -> None:
    from local.keys import make_token

    print(make_token(args.role, args.sub, args.email, args.name, ttl=args.ttl))


def cmd_run(_: argparse.Namespace) -> None:
    from local.stack import AlreadyRunning, Stack

    stack = Stack(ports=_ports())
    try:
        stack.start()
    except AlreadyRunning as error:
        print(f"clinic run: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    # SIGINT too: a shell that starts `make run` (or the tests) in the background hands it
    # down ignored, and Python then never raises KeyboardInterrupt for Ctrl-C.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(_banner(stack), flush=True)
    try:
        while True:
            for line in stack.heal():
                print(line, flush=True)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the local stack...", flush=True)
    finally:
        stack.stop()
        print("stopped.", flush=True)


def _banner(stack: object) -> str:
    from local.auth_emulator import DEMO_PASSWORD
    from local.keys import make_token
    from local.seed import ADMIN, PATIENTS_SEED
    from local.stack import Stack

    assert isinstance(stack, Stack)
    patient_id, email, name = PATIENTS_SEED[0]
    token = make_token("patient", patient_id, email, name, ttl=24 * 3600, state=stack.state)
    lines = [
        "",
        f"Open the app: {stack.url('gateway')}/   (sign in as {email}, {ADMIN[1]} or a doctor; "
        f"password {DEMO_PASSWORD})",
        "",
        "The clinic's local stack is running:",
    ]
    lines.append(
        f"  gateway      {stack.url('gateway')}   (the web app and the API: README.md, infra/terraform/openapi.yaml)"
    )
    # The services that do not speak HTTP, and what each is.
    described = {
        "tasks": "127.0.0.1:{port}   (Cloud Tasks emulator, gRPC; queue notify)",
        "pubsub": "127.0.0.1:{port}   (Pub/Sub emulator, gRPC; topic appointment-events)",
        "smtp": "127.0.0.1:{port}    (SMTP sink)",
        "sweeper": "(outbox sweep every {interval} s)",
        "auth": "http://127.0.0.1:{port}   (Firebase Auth emulator: every demo user, custom claim role)",
    }
    interval = stack.extra_env.get("SWEEP_INTERVAL") or os.environ.get("SWEEP_INTERVAL") or "5"
    for service in stack.services:
        if service.name in described:
            lines.append(
                f"  {service.name:<12} " + described[service.name].format(port=service.port, interval=interval)
            )
        elif service.name != "gateway":
            where = f"http://127.0.0.1:{service.port}" if service.port else "(no port)"
            lines.append(f"  {service.name:<12} {where}")
    lines.append(f"  postgres     {stack.database_url}")
    if any(s.name == "smtp" for s in stack.services):
        lines.append(f"  mail         {stack.state / 'mail'}/   (every email as an .eml file)")
    if any(s.name == "pubsub" for s in stack.services):
        lines.append("  events       .venv/bin/clinic events   (tails the Pub/Sub emulator)")
    lines.append(f"  logs         {stack.log_dir}/")
    lines += [
        "",
        "Try it (a token for the demo patient, valid 24h):",
        f"  curl -s {stack.url('gateway')}/doctors",
        f"  curl -s -H 'Authorization: Bearer {token}' {stack.url('gateway')}/appointments",
        "",
        "More tokens: .venv/bin/clinic token --role admin --sub 00000000-0000-4000-8000-000000000001 "
        "--email admin@clinic.example",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def cmd_resend_failed(args: argparse.Namespace) -> None:
    from shared import outbox
    from shared.unit_of_work import UnitOfWork

    with _with_database(), UnitOfWork() as uow:
        failed = outbox.failed_messages(uow.tx, args.since)
        for message in failed:
            failed_at, error = f"{message['failed_at']:%Y-%m-%d %H:%M}", message["error"] or ""
            print(f"{failed_at}  {message['kind']:<12} {message['message_key']}  {error}")
        if args.dry_run or not failed:
            print(f"{len(failed)} failed message(s)" + (" (dry run: nothing queued)" if failed else ""))
            return
        queued = outbox.requeue(uow.tx, failed)
        uow.commit()
    print(f"{len(queued)} message(s) queued again; the outbox sweep sends them within a minute")


def cmd_resend(args: argparse.Namespace) -> None:
    from shared import outbox
    from shared.unit_of_work import UnitOfWork

    missing = 0
    with _with_database(), UnitOfWork() as uow:
        tx = uow.tx
        for key in args.message_keys:
            message = outbox.kept_message(tx, key)
            if message is None:
                missing += 1
                print(f"{key}  not in the outbox: a typo, or pruned (kept 30 days once due)")
            elif message["sent"]:
                print(f"{key}  already sent: nothing to do")
            elif not message["dispatched"]:
                print(f"{key}  not handed to Cloud Tasks yet: the outbox sweep sends it when it is due")
            elif args.dry_run:
                print(f"{key}  {message['kind']}: would be queued again")
            elif outbox.resend(tx, key, datetime.now(UTC)) is None:
                print(f"{key}  already queued again just now")
            else:
                print(f"{key}  {message['kind']}: queued again; the outbox sweep sends it within a minute")
        uow.commit()
    if missing:
        raise SystemExit(1)


def _since(text: str) -> datetime:
    """YYYY-MM-DD (midnight UTC) or an ISO 8601 time with its offset, in years a clinic uses."""
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        else:
            value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or not 1900 <= value.year <= 2200:
        raise argparse.ArgumentTypeError(
            "give a date (YYYY-MM-DD, read in UTC) or a time with its offset (2026-11-24T08:00+01:00), after 1900"
        )
    return value


def cmd_events(args: argparse.Namespace) -> None:
    from local import events, running

    host = args.host or os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        stack = running.this_checkouts()
        if stack is None:
            raise running.Refused(
                "this checkout's local stack is not running (a stack on the default ports would be another "
                "checkout's): start it with `make run`, or give --host"
            )
        if "pubsub" not in stack.services:
            raise running.Refused("this checkout's stack runs without the Pub/Sub emulator (gcloud is not installed)")
        host = f"127.0.0.1:{stack.ports['pubsub']}"
    events.main(host, args.subscription, args.wait)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="clinic", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole local stack").set_defaults(func=cmd_run)
    commands.add_parser("migrate", help="apply pending migrations (DATABASE_URL or Cloud SQL)").set_defaults(
        func=cmd_migrate
    )
    commands.add_parser("seed", help="add the demo doctors and patients").set_defaults(func=cmd_seed)
    token = commands.add_parser("token", help="print a token the local gateway accepts")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--sub", required=True, type=UUID)
    token.add_argument("--email", required=True)
    token.add_argument("--name")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    token.set_defaults(func=cmd_token)
    resend = commands.add_parser(
        "resend-failed", help="queue again the notifications that FAILED for good since a time (after a mail outage)"
    )
    resend.add_argument("--since", required=True, type=_since, help="YYYY-MM-DD (UTC) or an ISO 8601 time")
    resend.add_argument("--dry-run", action="store_true", help="list them, queue nothing")
    resend.set_defaults(func=cmd_resend_failed)
    again = commands.add_parser(
        "resend", help="queue again messages by their key (those logged 'message LOST', which no FAILED row records)"
    )
    again.add_argument("message_keys", nargs="+", metavar="MESSAGE_KEY", help="the message_key of the logged payload")
    again.add_argument("--dry-run", action="store_true", help="say what would be queued, queue nothing")
    again.set_defaults(func=cmd_resend)
    tail = commands.add_parser("events", help="print the domain events arriving on the local Pub/Sub emulator")
    tail.add_argument("--host", help="the emulator (default PUBSUB_EMULATOR_HOST, or this checkout's stack's)")
    tail.add_argument("--subscription", help="full subscription path (default the stack's)")
    tail.add_argument("--wait", type=float, help="stop after this many seconds without an event")
    tail.set_defaults(func=cmd_events)
    args = parser.parse_args(argv)
    from local.running import Refused
    from shared.errors import DatabaseUnavailable

    try:
        args.func(args)
    except DatabaseUnavailable as error:  # a clear line, not a traceback
        parser.exit(1, f"clinic: the database is unavailable: {error}\n")
    except Refused as error:
        parser.exit(1, f"clinic {args.command}: {error}\n")


if __name__ == "__main__":
    main()
