"""A load generator cheap enough not to be the bottleneck on a 2-core machine.

Keep-alive HTTP/1.1 over raw asyncio streams: the requests are prepared bytes and
a response is parsed only as far as status line and Content-Length. That costs a
few tens of microseconds of CPU per request, against about a millisecond for a
requests.Session, so the figures measure the server and not the client. The
connections can be spread over several processes (`procs`) when one process'
event loop is the limit; each child reports its own CPU time so the printout
shows what the client itself cost.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Builds the bytes of request number i from the item at i (a slot id and an identity).
RequestMaker = Callable[[object], bytes]


@dataclass
class LoadResult:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    sent: int = 0
    first_error: str = ""


class _Closed(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head:
        raise _Closed()
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = -1
    chunked = False
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif lowered == b"connection" and b"close" in value.lower():
            keep = False
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif length >= 0:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        keep = False
    return status, body, keep


async def _connection(
    host: str,
    port: int,
    items: Sequence[object],
    cursor: list[int],
    make: RequestMaker,
    start_at: float,
    measure_from: float,
    stop_at: float,
    expect: int,
    result: LoadResult,
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while True:
        now = time.monotonic()
        if now >= stop_at or cursor[0] >= len(items):
            break
        index = cursor[0]
        cursor[0] += 1
        request = make(items[index])
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            began = time.monotonic()
            writer.write(request)
            status, body, keep = await _read_response(reader)
            ended = time.monotonic()
        except (OSError, asyncio.IncompleteReadError, _Closed, ValueError, IndexError) as error:
            result.errors += 1
            result.first_error = result.first_error or f"{type(error).__name__}: {error}"
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        result.sent += 1
        if began >= measure_from and ended <= stop_at:
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == expect:
                result.ok += 1
                result.latencies_ms.append((ended - began) * 1000)
            else:
                result.errors += 1
                if not result.first_error:
                    result.first_error = f"HTTP {status}: {body[:300]!r}"
        if not keep:
            assert writer is not None
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _run(
    host: str,
    port: int,
    items: Sequence[object],
    make: RequestMaker,
    connections: int,
    start_at: float,
    warmup: float,
    duration: float,
    expect: int,
) -> LoadResult:
    result = LoadResult()
    cursor = [0]
    delay = start_at - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    measure_from = start_at + warmup
    stop_at = measure_from + duration
    await asyncio.gather(
        *(
            _connection(host, port, items, cursor, make, start_at, measure_from, stop_at, expect, result)
            for _ in range(connections)
        )
    )
    return result


def _child(
    host: str,
    port: int,
    items: Sequence[object],
    make: RequestMaker,
    connections: int,
    start_at: float,
    warmup: float,
    duration: float,
    expect: int,
    out: multiprocessing.connection.Connection,
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(_run(host, port, items, make, connections, start_at, warmup, duration, expect))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out.send(result)
    out.close()


def run_load(
    host: str,
    port: int,
    items: Sequence[object],
    make: RequestMaker,
    *,
    connections: int,
    procs: int,
    warmup: float,
    duration: float,
    expect: int = 200,
) -> LoadResult:
    """`connections` keep-alive connections over `procs` processes, for warmup + duration seconds.

    Items are split between processes in contiguous runs; each item is used once
    (a booking benchmark gives every request its own slot). Only requests that
    start after the warm-up and end before the stop count.
    """
    context = multiprocessing.get_context("fork")
    per_proc = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    share = len(items) // procs
    start_at = time.monotonic() + 0.5  # lets every child be ready before the clock starts
    children = []
    for i in range(procs):
        receive, send = context.Pipe(duplex=False)
        chunk = items[i * share : (i + 1) * share]
        process = context.Process(
            target=_child,
            args=(host, port, chunk, make, per_proc[i], start_at, warmup, duration, expect, send),
            daemon=True,
        )
        process.start()
        send.close()
        children.append((process, receive))
    total = LoadResult()
    for process, receive in children:
        part: LoadResult = receive.recv()
        process.join()
        total.ok += part.ok
        total.errors += part.errors
        total.sent += part.sent
        total.cpu_seconds += part.cpu_seconds
        total.latencies_ms.extend(part.latencies_ms)
        for status, count in part.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + count
        total.first_error = total.first_error or part.first_error
    total.latencies_ms.sort()
    return total
