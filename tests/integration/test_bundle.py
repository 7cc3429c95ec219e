"""A function bundle installs into a clean virtual environment and imports.

This is what Cloud Functions' Python 3.12 build does with a bundle: pip-install
its requirements.txt, then import main.py from the bundle's folder, with
nothing from this repository on the path. Slow (it installs the lock file's
wheels, from uv's cache after the first run) and the only test here that uses
the network.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local import package

UV = Path(sys.executable).parent / "uv"


def _python_for_bundles() -> str:
    """Python 3.12 (the Cloud Functions runtime) if this machine has one, else ours."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
    ]
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return sys.executable


@pytest.mark.slow
def test_bundle_installs_in_a_clean_venv_and_every_main_imports(tmp_path: Path) -> None:
    bundles = {b.name: b for b in package.build_all(out=tmp_path / "functions")}
    requirements = {(b / "requirements.txt").read_text() for b in bundles.values()}
    assert len(requirements) == 1, "the bundles should share one requirements.txt"

    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"  # only interpreters already on this machine
    subprocess.run([str(UV), "venv", "-q", "--python", _python_for_bundles(), str(venv)],
                   check=True, env=env, timeout=120)  # fmt: skip
    python = venv / "bin" / "python"
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(python),
                    "-r", str(bundles["book"] / "requirements.txt")],
                   check=True, env=env, timeout=600)  # fmt: skip

    for name, bundle in bundles.items():
        # -s: no user site-packages; cwd = the bundle, as on Cloud Functions.
        result = subprocess.run(
            [str(python), "-s", "-c", f"import main, shared; assert hasattr(main, {name!r}); print(shared.__file__)"],
            cwd=bundle, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
        assert Path(result.stdout.strip()).is_relative_to(bundle), f"{name}: shared came from outside the bundle"
