"""`python -m bench` runs every benchmark; `python -m bench booking slots` runs those.

The notify and coldstart benchmarks belong to other work; they run when their
modules exist. Extra arguments after `--` go to a single named benchmark.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

ORDER = ("booking", "slots", "notify", "coldstart", "web", "waitlist", "dispatch")


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


@contextmanager
def _isolated() -> Iterator[None]:
    """Each benchmark starts from the environment `python -m bench` was given: one that
    runs a local stack in-process points DATABASE_URL at its own server (and stops it),
    which the next one would otherwise take for a server it was told to use."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if "shared.settings" in sys.modules:
            sys.modules["shared.settings"].get_settings.cache_clear()
        if "shared.db.connection" in sys.modules:
            sys.modules["shared.db.connection"].reset_pool()


def run(names: list[str], extra: list[str]) -> int:
    failed = []
    for name in names:
        if not _available(name):
            print(f"== bench {name}: not present, skipped", flush=True)
            continue
        print(f"\n== bench {name}", flush=True)
        started = time.monotonic()
        try:
            with _isolated():
                result = _run_one(name, extra)
        except KeyboardInterrupt:
            raise
        except SystemExit as exited:  # argparse's --help, or a usage error (already printed)
            if exited.code not in (0, None):
                failed.append(name)
            continue
        except BaseException:  # one failing benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            continue
        if isinstance(result, int) and result != 0:
            failed.append(name)
        print(f"== bench {name}: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


def _run_one(name: str, extra: list[str]) -> object:
    module = importlib.import_module(f"bench.{name}")
    # Only a single named benchmark gets the extra arguments; the others get an
    # empty list, so none of them parses `python -m bench`'s own sys.argv.
    takes_args = bool(inspect.signature(module.main).parameters)
    return module.main(extra) if takes_args else module.main()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1 :]
    names = args or [n for n in ORDER if _available(n)]
    unknown = [n for n in names if n not in ORDER and not _available(n)]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ORDER)}", file=sys.stderr)
        return 2
    if extra and len(names) != 1:
        print("arguments after `--` need exactly one benchmark name", file=sys.stderr)
        return 2
    return run(names, extra)


if __name__ == "__main__":
    sys.exit(main())
