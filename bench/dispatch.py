"""What dispatching the outbox adds to a booking, and bookings/s through the whole stack.

A stack of its own (Ports.offset(5600), its own embedded PostgreSQL and state folder):
gateway, book and notify, the Cloud Tasks and Pub/Sub emulators, the SMTP sink and the
sweep timer, with bench/booking's data (every booking on a slot of its own, 2 days
ahead, so each one sends a confirmation task, a 24h reminder task and an event).
Between the functions and each emulator sits bench/delayproxy.py, a TCP delay line:

- latency: `--clients` clients book through the gateway for `--duration` s with no
  delay, then with `--delay` ms added to every call to Cloud Tasks and Pub/Sub
  (a booking makes three: two CreateTask, one Publish). Reported: p50/p99 of each and
  the difference. Issue 17 §6: the added p50 should be no more than one call's delay.
- end to end: `--bookings` bookings as fast as `--e2e-clients` clients go, no delay;
  bookings/s from the first request to the last confirmation email written by the
  sink (every one counted), beside the booking phase's own rate.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.booking import (
    BENCH_MAX_CHANGES,
    BENCH_MAX_UPCOMING,
    _patients,
    _request,
    _tokens,
    build,
    settle,
    take,
)
from bench.common import Figures, Timer, bench_dir, connect, load_average, migrate, server
from bench.httpload import run_load
from bench.notify import _sink_times
from local.stack import Ports, Service, Stack

PORTS = Ports.offset(5600)
DATABASE = "clinic_bench_dispatch"
# The delay lines listen beside the emulators they front.
TASKS_PROXY = PORTS.tasks + 5
PUBSUB_PROXY = PORTS.pubsub + 5


def _delay_lines(delay_file: Path) -> Callable[[Stack], None]:
    """A stack extension (after the emulators'): the functions reach both emulators
    through delay lines that read their delay from `delay_file`."""

    def extend(stack: Stack) -> None:
        for name, listen, upstream, variable in (
            ("tasks-delay", TASKS_PROXY, stack.ports.tasks, "TASKS_EMULATOR_HOST"),
            ("pubsub-delay", PUBSUB_PROXY, stack.ports.pubsub, "PUBSUB_EMULATOR_HOST"),
        ):
            argv = [sys.executable, "-m", "bench.delayproxy", "--listen", str(listen)]
            argv += ["--upstream", f"127.0.0.1:{upstream}", "--delay-file", str(delay_file)]
            stack.services.append(Service(name, argv, listen))
            stack.extra_env[variable] = f"127.0.0.1:{listen}"

    return extend


def _set_delay(delay_file: Path, ms: float) -> None:
    delay_file.write_text(f"{ms:g}")
    time.sleep(0.5)  # the delay lines re-read it every 0.2 s


def _latency(name: str, url: str, tokens: dict[str, str], args: argparse.Namespace) -> Figures:
    settle(url)
    slots = take(url, int(400 * (args.warmup + args.duration)))
    items = [(slot_id, tokens[patient_id]) for slot_id, patient_id, _, _ in slots]
    result = run_load(
        "127.0.0.1",
        PORTS.gateway,
        items,
        _request(PORTS.gateway, "Authorization"),
        connections=args.clients,
        procs=1,
        warmup=args.warmup,
        duration=args.duration,
        expect=201,
    )
    note = f"statuses {result.statuses}" + (f"; first error {result.first_error}" if result.first_error else "")
    return Figures(name, result.ok, args.duration, result.latencies_ms, result.errors, note)


def _end_to_end(url: str, tokens: dict[str, str], state: Path, args: argparse.Namespace) -> list[Figures]:
    settle(url)
    slots = take(url, args.bookings)
    items = [(slot_id, tokens[patient_id]) for slot_id, patient_id, _, _ in slots]
    begun = time.time()
    result = run_load(
        "127.0.0.1",
        PORTS.gateway,
        items,
        _request(PORTS.gateway, "Authorization"),
        connections=args.e2e_clients,
        procs=1,
        warmup=0,
        duration=3600,
        expect=201,
    )
    booked_s = time.time() - begun
    conn = connect(url)
    try:
        rows = conn.run("SELECT id FROM appointments WHERE slot_id = ANY(CAST(:s AS uuid[]))", s=[s[0] for s in slots])
    finally:
        conn.close()
    ids = {str(r[0]) for r in rows}
    sent = _sink_times(state / "mail", ids, args.timeout)
    last = max(sent.values()) if sent else begun
    # Commit -> email is bench/notify's figure; here it is the rate the whole stack carries.
    emailed = sorted((t - begun) * 1000 for t in sent.values())
    return [
        Figures(
            f"e2e: book via gateway, {args.e2e_clients} clients",
            result.ok,
            booked_s,
            result.latencies_ms,
            result.errors,
        ),
        Figures(
            "e2e: first request -> each email",
            len(sent),
            last - begun,
            emailed,
            note=f"{len(sent)} of {len(ids)} confirmation emails in the SMTP sink; "
            f"rate = emails / (last email - first request)",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dispatch", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--delay", type=float, default=50.0, help="ms added to every call to an emulator")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4, help="clients of the latency phases")
    parser.add_argument("--bookings", type=int, default=2000, help="bookings of the end-to-end phase")
    parser.add_argument("--e2e-clients", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the emails")
    args = parser.parse_args([] if argv is None else argv)
    from local import mailsink, pubsub_emulator, sweeper, tasks_emulator

    timer = Timer()
    print(f"dispatch benchmark: {load_average()}", flush=True)
    with server("bench-dispatch", PORTS.postgres) as pg:
        url = pg.recreate(DATABASE)
        migrate(url)
        build(url, doctors=40, slots_per_doctor=500, patients_per_doctor=20)
        state = bench_dir("bench-dispatch")
        shutil.rmtree(state / "mail", ignore_errors=True)
        (state / tasks_emulator.STORE).unlink(missing_ok=True)
        delay_file = state / "delay-ms"
        delay_file.write_text("0")
        stack = Stack(
            state=state,
            ports=PORTS,
            database_url=url,
            seed=False,
            functions=("book", "notify"),
            extensions=[
                tasks_emulator.extend,
                pubsub_emulator.extend,
                mailsink.extend,
                sweeper.extend,
                _delay_lines(delay_file),
            ],
            extra_env={
                "MAX_UPCOMING_APPOINTMENTS": str(BENCH_MAX_UPCOMING),
                "MAX_CHANGES_PER_HOUR": str(BENCH_MAX_CHANGES),
                "REMINDER_OFFSETS": "24h",
                "SWEEP_INTERVAL": "1",
            },
        )
        tokens = _tokens(state, _patients(url))
        stack.start()
        results: list[Figures] = []
        try:
            print(f"stack up in {timer}: {', '.join(s.name for s in stack.services)}", flush=True)
            for delay in (0.0, args.delay):
                _set_delay(delay_file, delay)
                figures = _latency(f"book, {delay:g} ms per queue call, {args.clients} clients", url, tokens, args)
                print(figures.line(), flush=True)
                results.append(figures)
            _set_delay(delay_file, 0)
            for figures in _end_to_end(url, tokens, state, args):
                print(figures.line(), flush=True)
                results.append(figures)
        finally:
            stack.stop()
    print(f"\n{load_average()}")
    for figures in results:
        print(figures.line())
    plain, slowed = results[0], results[1]
    added50, added99 = slowed.p(0.5) - plain.p(0.5), slowed.p(0.99) - plain.p(0.99)
    verdict = "within" if added50 <= args.delay else "MORE THAN"
    print(
        f"added by {args.delay:g} ms per call: p50 +{added50:.1f} ms, p99 +{added99:.1f} ms "
        f"({verdict} one call's delay)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
