#!/usr/bin/env python
"""Browser tool: time to fetch and extract one page, OpenGLM's safe fetcher + trafilatura, against a plain
``httpx.get`` + trafilatura (no SSRF checks, no size cap) on the same pages, in one run.

Pages come from the test fixture website on 127.0.0.1 (allow-listed) plus a generated ~120 KB article page,
so nothing leaves the machine.

    .venv/bin/python benchmarks/bench_browser.py --rounds 50
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openglm.agent.browser.extract import extract  # noqa: E402
from openglm.agent.browser.fetch import Page, SafeFetcher  # noqa: E402
from tests.fixtures import website  # noqa: E402

ARTICLE = (
    "<article><h1>Long read</h1>"
    + "".join(
        f"<h2>Section {i}</h2><p>{'Population statistics and their growth over the decades. ' * 20}</p>"
        for i in range(100)
    )
    + "</article>"
)


async def openglm_pages(urls: list[str], rounds: int) -> list[float]:
    fetcher = SafeFetcher(allow=["127.0.0.1"])
    times = []
    try:
        for _ in range(rounds):
            for url in urls:
                started = time.perf_counter()
                extract(await fetcher.fetch(url))
                times.append(time.perf_counter() - started)
    finally:
        await fetcher.close()
    return times


async def plain_pages(urls: list[str], rounds: int) -> list[float]:
    times = []
    async with httpx.AsyncClient() as client:
        for _ in range(rounds):
            for url in urls:
                started = time.perf_counter()
                response = await client.get(url)
                page = Page(url, "text/html", response.content)
                extract(page)
                times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    website.PAGES["/article.html"] = ("Long read", ARTICLE)
    site = website.Website()
    try:
        urls = [f"{site.url}{path}" for path in website.PAGES]
        ours = asyncio.run(openglm_pages(urls, args.rounds))
        plain = asyncio.run(plain_pages(urls, args.rounds))
        article = f"{site.url}/article.html"
        ours_article = asyncio.run(openglm_pages([article], args.rounds))
        plain_article = asyncio.run(plain_pages([article], args.rounds))
    finally:
        site.stop()
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, Python {platform.python_version()}",
        "command": " ".join(sys.argv),
        "all pages p50 ms": {"openglm": statistics.median(ours) * 1000, "plain": statistics.median(plain) * 1000},
        "120 KB article p50 ms": {
            "openglm": statistics.median(ours_article) * 1000,
            "plain": statistics.median(plain_article) * 1000,
        },
    }
    for name, value in results.items():
        print(f"{name}: {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    (args.out / f"browser-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
