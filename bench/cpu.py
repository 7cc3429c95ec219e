"""Where the CPU went during a phase: per process tree, and the rest of the machine.

On two cores every process competes with every other, so a figure is only
readable beside who spent the CPU: the database, the functions, the gateway,
the load generator, and everything else (other engineers' tests, the kernel's
network processing). A tree's time includes children that exited during the
phase (their time is added to the parent's children counters when reaped).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil


def _tree_seconds(root: int) -> float:
    try:
        parent = psutil.Process(root)
        times = parent.cpu_times()
        total: float = times.user + times.system + times.children_user + times.children_system
        for child in parent.children(recursive=True):
            try:
                own = child.cpu_times()
                total += own.user + own.system
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        return 0.0


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


@dataclass
class CpuMeter:
    """Register process trees by name, then `start()` and `stop()` around a phase."""

    roots: dict[str, int] = field(default_factory=dict)
    _begin: dict[str, float] = field(default_factory=dict)
    _machine_begin: tuple[float, float] = (0.0, 0.0)
    _wall: float = 0.0

    def start(self) -> None:
        self._begin = {name: _tree_seconds(pid) for name, pid in self.roots.items()}
        self._machine_begin = _machine()
        self._wall = time.monotonic()

    def stop(self, extra: dict[str, float] | None = None, settle: float = 0.5) -> dict[str, float]:
        """Seconds of CPU per tree, `extra` (e.g. measured children), `other`, and `wall`.

        `settle` waits for exited children to be reaped (PostgreSQL backends of
        finished clients): only then is their time in the parent's counters.
        """
        wall = time.monotonic() - self._wall
        busy_end, _ = _machine()
        time.sleep(settle)
        spent = {name: _tree_seconds(pid) - self._begin.get(name, 0.0) for name, pid in self.roots.items()}
        spent.update(extra or {})
        busy = busy_end - self._machine_begin[0]
        spent["other"] = max(0.0, busy - sum(spent.values()))
        spent["wall"] = wall
        return spent


def describe(spent: dict[str, float], operations: int = 0) -> str:
    """`postgres 1.20 cores, book 0.50, ...`: average cores used by each during the phase,
    and with `operations` (all of the phase's, warm-up included) the CPU each cost one."""
    wall = spent.get("wall", 0.0) or 1.0
    parts = [f"{name} {seconds / wall:.2f}" for name, seconds in spent.items() if name != "wall"]
    busy = sum(v for k, v in spent.items() if k != "wall") / wall
    text = f"cores used: {', '.join(parts)} (of {os.cpu_count()}; busy {busy:.2f})"
    if operations:
        each = [f"{name} {1000 * seconds / operations:.3f}" for name, seconds in spent.items() if name != "wall"]
        text += f"\n{'':<36}CPU ms per operation: {', '.join(each)}"
    return text


def postmaster_pid(data_dir: str) -> int | None:
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as pid_file:
            return int(pid_file.readline().strip())
    except (OSError, ValueError):
        return None
