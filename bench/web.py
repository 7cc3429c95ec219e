"""The web app: its compressed size, and the time from navigation to free slots visible.

Size: every file of web/dist/assets (the whole app), gzip -9, against the issue's 150 KB
budget for JavaScript and CSS. Load: a local stack of its own (Ports.offset(5500), its own
embedded PostgreSQL, the demo data, the auth emulator), Debian's chromium via Playwright, a
patient already signed in (the session in localStorage, as after sign-in), navigating to a
demo doctor's week of slots: the browser's own clock from the start of navigation to the
first slot button on screen. Cold = a new browser context each time (empty cache: the
HTML, the assets, /config.json and the API); warm = a reload in the same context (the
hashed assets from cache). `make web` must have built web/dist.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

from bench.common import Timer, bench_dir, load_average, percentile, server
from local import auth_emulator
from local.paths import ROOT
from local.stack import Ports, Stack

PORTS = Ports.offset(5500)
DIST = ROOT / "web" / "dist"
BUDGET_KB = 150
DOCTOR = "10000000-0000-4000-8000-000000000002"  # the demo dermatologist, Europe/Berlin
PATIENT = "patient1@example.com"


def sizes() -> tuple[int, int]:
    """(raw, gzip -9) bytes of the app's JavaScript and CSS."""
    raw = compressed = 0
    for path in sorted((DIST / "assets").iterdir()):
        if path.suffix not in (".js", ".css"):
            continue
        data = path.read_bytes()
        packed = len(gzip.compress(data, 9))
        raw += len(data)
        compressed += packed
        print(f"  {path.relative_to(ROOT)}: {len(data) / 1024:.1f} KB, gzip {packed / 1024:.1f} KB")
    html = (DIST / "index.html").read_bytes()
    print(f"  web/dist/index.html: {len(html)} bytes, gzip {len(gzip.compress(html, 9))} bytes")
    return raw, compressed


def load_times(stack: Stack, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    session = auth_emulator.sign_in(stack.ports.auth, PATIENT)
    stored = json.dumps(
        {"idToken": session["idToken"], "refreshToken": session["refreshToken"], "expiresAt": 4_102_444_800_000}
    )
    week = (date.today() + timedelta(days=1)).isoformat()
    url = f"{stack.url('gateway')}/#/book?doctor={DOCTOR}&week={week}"
    script = f"localStorage.setItem('clinic.session', {json.dumps(stored)})"
    # Milliseconds from the start of navigation (the page's time origin) to the first slot.
    visible = "performance.now()"
    cold: list[float] = []
    warm: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
        for _ in range(runs):
            context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB")
            context.add_init_script(script)
            page = context.new_page()
            page.goto(url)
            page.locator("button.slot").first.wait_for()
            cold.append(page.evaluate(visible))
            for _ in range(2):
                page.reload()
                page.locator("button.slot").first.wait_for()
                warm.append(page.evaluate(visible))
            context.close()
        browser.close()
    return {"cold": sorted(cold), "warm": sorted(warm)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench web")
    parser.add_argument("--runs", type=int, default=20, help="cold loads (each followed by two warm ones)")
    args = parser.parse_args([] if argv is None else argv)
    if not (DIST / "index.html").exists():
        print("web/dist is missing: run `make web` first")
        return 1
    raw, compressed = sizes()
    print(f"app JavaScript + CSS: {raw / 1024:.1f} KB, gzip -9 {compressed / 1024:.1f} KB (budget {BUDGET_KB} KB)")
    timer = Timer()
    with server("bench-web", PORTS.postgres) as pg:
        url = pg.recreate("bench_web")
        state: Path = bench_dir("bench-web")
        shutil.rmtree(state / "mail", ignore_errors=True)
        stack = Stack(state=state, ports=PORTS, database_url=url, workers=1, threads=8)
        stack.start()
        try:
            auth_emulator.wait_for_users(stack.ports.auth)
            print(f"stack up in {timer}; {load_average()}", flush=True)
            results = load_times(stack, args.runs)
        finally:
            stack.stop()
    print(f"\n{args.runs} cold loads, {2 * args.runs} warm; {load_average()}")
    for name, values in results.items():
        print(
            f"navigation -> slots visible, {name}: p50 {percentile(values, 0.5):.0f} ms, "
            f"p95 {percentile(values, 0.95):.0f} ms, max {values[-1]:.0f} ms (n={len(values)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
