"""How heavy and how fast the web app's pages are, in Debian's headless Chromium.

Starts the real server (authentication off, default catalog) on a free loopback port and opens each page of the
app in a fresh browser context (cold: nothing cached) and again in the same context (warm: the versioned assets
come from the cache). For each page: bytes transferred (navigation + resources, from the browser's Resource
Timing), requests made, and the time from navigation start until the page's heading is on screen. Medians of
``--repeats`` runs.

    .venv/bin/python benchmarks/bench_web.py --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.server import RunningServer

PAGES = {  # route → the heading that says the page has rendered
    "chat": ("#/chat", "Chat"),
    "agents": ("#/agents", "Agents"),
    "knowledge": ("#/knowledge", "Knowledge bases"),
    "console": ("#/console", "Console"),
    "playground": ("#/playground", "Playground"),
}
TRANSFERRED = """() => {
  const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  return {bytes: entries.reduce((n, e) => n + (e.transferSize || 0), 0), requests: entries.length};
}"""


def load(context: BrowserContext, url: str, heading: str) -> dict[str, float]:
    page = context.new_page()
    try:
        started = time.perf_counter()
        page.goto(url)
        page.get_by_role("heading", name=heading, exact=True).wait_for(state="attached")
        elapsed = (time.perf_counter() - started) * 1000
        page.wait_for_load_state("networkidle")
        sizes: dict[str, Any] = page.evaluate(TRANSFERRED)
        return {"ms": elapsed, "kb": sizes["bytes"] / 1024, "requests": float(sizes["requests"])}
    finally:
        page.close()


def measure(browser: Browser, base: str, route: str, heading: str) -> dict[str, dict[str, float]]:
    context = browser.new_context(base_url=base)
    try:
        cold = load(context, route, heading)
        warm = load(context, route, heading)
        return {"cold": cold, "warm": warm}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RunningServer(log=Path(tmp) / "server.log", env={"OPENGLM_AUTH": "off"})
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                runs = {
                    name: [measure(browser, server.url, route, heading) for _ in range(args.repeats)]
                    for name, (route, heading) in PAGES.items()
                }
                version = browser.version
                browser.close()
        finally:
            server.stop()
    print(f"{dt.date.today()} · {platform.machine()} · Chromium {version} · {args.repeats} repeats, medians\n")
    print("| page | cold: KiB transferred | cold: requests | cold: ms to heading | warm: KiB | warm: ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, samples in runs.items():

        def med(kind: str, key: str, rows: list[dict[str, dict[str, float]]] = samples) -> float:
            return statistics.median(r[kind][key] for r in rows)

        print(
            f"| {name} | {med('cold', 'kb'):.1f} | {med('cold', 'requests'):.0f} | {med('cold', 'ms'):.0f} "
            f"| {med('warm', 'kb'):.1f} | {med('warm', 'ms'):.0f} |"
        )


if __name__ == "__main__":
    main()
