"""Cold start: how long each function bundle takes to `import main`.

On Cloud Functions a new instance pays this before its first request (plus
the interpreter start and the first database connection, which this does not
measure). Each run is a fresh interpreter in the bundle's folder, as in the
runtime, so nothing is warm in sys.modules; the median of N runs is reported.
Target: each function's own import (after functions-framework's) under 300 ms.

The bundle is measured as it is deployed: Cloud Functions' Python buildpack runs
`python3 -m compileall -f -q .` in it, so an instance loads main.py and shared/
as bytecode. So does this, in a compiled copy: compiling them on every run (as
PYTHONDONTWRITEBYTECODE makes Python do) added ~15-35 ms no instance pays, and
build/functions, which Terraform zips, gets no __pycache__. The buildpack compiles
the installed packages too; uv installs them without bytecode, so this compiles the
interpreter's site-packages first (once: compileall skips what is up to date).
Without it each run compiled pydantic, Starlette and the rest from source: ~2/3 of
what the own import measured (2026-12-06: ~280 ms, ~105 ms with bytecode).

    python -m bench coldstart            # builds the bundles first
    python -m bench coldstart -- --runs 9
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from local import package

TARGET_MS = 300.0
_PROBE = "import time; t = time.perf_counter(); import main; print((time.perf_counter() - t) * 1000)"
# The Cloud Functions runtime is functions-framework itself: it is imported
# before it loads main.py, so what main.py adds on top of it is the part of the
# cold start this code owns.
_PROBE_OWN = (
    "import functions_framework, time; t = time.perf_counter(); import main; print((time.perf_counter() - t) * 1000)"
)


@dataclass(frozen=True)
class Result:
    name: str
    runs_ms: tuple[float, ...]
    own_runs_ms: tuple[float, ...]
    heaviest: tuple[tuple[str, float], ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def own_median_ms(self) -> float:
        return statistics.median(self.own_runs_ms)


def import_ms(bundle: Path, python: str = sys.executable, probe: str = _PROBE) -> float:
    """Milliseconds to import the bundle's main.py in a new interpreter."""
    # -s: ignore user site-packages; the bundle's folder is sys.path[0], so its
    # own copy of shared/ is what gets imported, as on Cloud Functions.
    out = subprocess.run([python, "-s", "-c", probe], cwd=bundle, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def heaviest_imports(bundle: Path, python: str = sys.executable, top: int = 5) -> tuple[tuple[str, float], ...]:
    """The top-level packages with the largest cumulative import time (-X importtime)
    within main.py's own import, after functions-framework's."""
    out = subprocess.run([python, "-s", "-X", "importtime", "-c", "import functions_framework; import main"],
                         cwd=bundle, capture_output=True, text=True, check=True)  # fmt: skip
    totals: dict[str, float] = {}
    own = False
    for line in out.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package", each import listed
        # when it ends: the lines after functions_framework's own are main.py's.
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if not own:
            own = name == "functions_framework"
            continue
        # A package's outermost import has the largest cumulative time (it includes
        # its submodules), so the max per top-level name is that package's cost.
        top_level = name.split(".")[0]
        if top_level != "main":
            totals[top_level] = max(totals.get(top_level, 0.0), int(cumulative) / 1000)
    return tuple(sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top])


def compile_packages(python: str = sys.executable) -> None:
    """Bytecode for the interpreter's installed packages, as in the deployed image."""
    where = "import sysconfig; print(sysconfig.get_path('purelib')); print(sysconfig.get_path('platlib'))"
    paths = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.split()
    # Exit status 1: some file would not compile (a template, a Python 2 leftover); the
    # buildpack ignores that too.
    done = subprocess.run([python, "-m", "compileall", "-q", "-j", "0", *dict.fromkeys(paths)], capture_output=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"compileall failed: {done.stderr.decode(errors='replace')}")


def measure(bundle: Path, runs: int, python: str = sys.executable) -> Result:
    with tempfile.TemporaryDirectory() as scratch:
        deployed = Path(scratch) / bundle.name
        shutil.copytree(bundle, deployed)
        subprocess.run([python, "-m", "compileall", "-f", "-q", "."], cwd=deployed, check=True)
        samples = tuple(import_ms(deployed, python) for _ in range(runs))
        own = tuple(import_ms(deployed, python, _PROBE_OWN) for _ in range(runs))
        return Result(bundle.name, samples, own, heaviest_imports(deployed, python))


def render(results: Sequence[Result]) -> str:
    lines = [
        f"{'function':<9} {'own ms':>6} {'min':>5} {'max':>5} {'<300?':>6} {'all ms':>6}"
        "  heaviest of its own imports (cumulative ms)",
    ]
    for r in results:
        verdict = "ok" if r.own_median_ms < TARGET_MS else "OVER"
        heavy = ", ".join(f"{name} {ms:.0f}" for name, ms in r.heaviest)
        lines.append(
            f"{r.name:<9} {r.own_median_ms:>6.0f} {min(r.own_runs_ms):>5.0f} {max(r.own_runs_ms):>5.0f} {verdict:>6}"
            f" {r.median_ms:>6.0f}  {heavy}"
        )
    lines.append("own ms: main.py imported after functions-framework, which the runtime has loaded already (the")
    lines.append("target); all ms: with functions-framework's own import.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench coldstart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per function (median)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with the bundles' requirements")
    # `python -m bench` calls main() with no arguments: that means defaults.
    args = parser.parse_args(list(argv) if argv is not None else [])
    bundles = package.build_all()
    compile_packages(args.python)
    results = [measure(bundle, args.runs, args.python) for bundle in bundles]
    print(f"cold import of main.py, {args.runs} fresh interpreters each ({args.python})")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
