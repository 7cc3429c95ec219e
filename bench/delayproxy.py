"""A local-only TCP delay line for bench/dispatch: slows every call to an emulator.

`python -m bench.delayproxy --listen P --upstream host:port --delay-file F` forwards
connections to the emulator; each chunk the client sends is passed on DELAY after it
arrived (the answers are not held), so a gRPC call costs DELAY more, and concurrent
calls on one HTTP/2 connection are each delayed, not queued behind one another. The
delay (ms) is read from F, re-read every 0.2 s, so one stack measures with and without.
Only benchmarks start it; nothing in the functions knows about it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

_delay_s = 0.0


async def _watch(path: Path) -> None:
    global _delay_s
    while True:
        try:
            _delay_s = max(0.0, float(path.read_text().strip() or "0") / 1000)
        except (OSError, ValueError):
            _delay_s = 0.0
        await asyncio.sleep(0.2)


async def _delayed(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def send() -> None:
        while (item := await line.get()) is not None:
            at, data = item
            if (wait := at - loop.time()) > 0:
                await asyncio.sleep(wait)
            sink.write(data)
            await sink.drain()

    sender = asyncio.create_task(send())
    try:
        while data := await source.read(65536):
            line.put_nowait((loop.time() + _delay_s, data))
    finally:
        line.put_nowait(None)
        with contextlib.suppress(Exception):
            await sender
        sink.close()


async def _plain(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        sink.close()


async def _serve(listen: int, host: str, port: int, delay_file: Path) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        with contextlib.suppress(Exception):
            await asyncio.gather(_delayed(reader, up_writer), _plain(up_reader, writer))

    watcher = asyncio.create_task(_watch(delay_file))
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()
    watcher.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port")
    parser.add_argument("--delay-file", type=Path, required=True)
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    asyncio.run(_serve(args.listen, host, int(port), args.delay_file))


if __name__ == "__main__":
    main()
