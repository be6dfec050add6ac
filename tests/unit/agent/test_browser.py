"""The browser's parts against a real website on 127.0.0.1: SSRF rules, limits, extraction, the local index,
commands and citations."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator

import pytest

from openglm.agent.browser.fetch import FetchError, SafeFetcher, _blocked
from openglm.agent.browser.search import LocalIndexProvider, search_providers
from openglm.agent.browser.session import BrowserSession, CitationLinker, Source, parse_command
from openglm.errors import InvalidFieldError

from ...fixtures.website import Website


@pytest.fixture(scope="module")
def site() -> Iterator[Website]:
    website = Website()
    yield website
    website.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    allowed = SafeFetcher(allow=["127.0.0.1"], max_bytes=1_000_000, timeout=5)
    yield allowed
    await allowed.close()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_local_and_private_addresses_are_blocked(address: str) -> None:
    assert _blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_not(address: str) -> None:
    assert not _blocked(ipaddress.ip_address(address))


async def test_loopback_is_refused_unless_allow_listed(site: Website, fetcher: SafeFetcher) -> None:
    strict = SafeFetcher()
    try:
        with pytest.raises(FetchError, match="private or local"):
            await strict.fetch(f"{site.url}/index.html")
        with pytest.raises(FetchError, match="private or local"):
            await strict.fetch(f"http://localhost:{site.port}/index.html")  # a name resolving to loopback
    finally:
        await strict.close()
    page = await fetcher.fetch(f"{site.url}/index.html")
    assert b"World data" in page.body


async def test_a_redirect_into_the_private_network_is_refused(site: Website, fetcher: SafeFetcher) -> None:
    with pytest.raises(FetchError, match=r"169\.254\.169\.254"):
        await fetcher.fetch(f"{site.url}/redirect?to=http://169.254.169.254/latest/meta-data/")
    followed = await fetcher.fetch(f"{site.url}/redirect?to=/growth.html")
    assert followed.url.endswith("/growth.html")


async def test_limits_and_kinds(site: Website, fetcher: SafeFetcher) -> None:
    with pytest.raises(FetchError, match="larger than"):
        await fetcher.fetch(f"{site.url}/big")
    with pytest.raises(FetchError, match="not a text page"):
        await fetcher.fetch(f"{site.url}/image.png")
    with pytest.raises(FetchError, match="404"):
        await fetcher.fetch(f"{site.url}/missing")
    with pytest.raises(FetchError, match="only http"):
        await fetcher.fetch("file:///etc/passwd")


async def test_local_index_finds_the_right_page(site: Website, fetcher: SafeFetcher) -> None:
    index = LocalIndexProvider([f"{site.url}/index.html"], fetcher)
    results = await index.search("population growth 2000")
    assert results[0].title in ("World population 2000-2023", "Population growth")
    assert {r.url for r in results} >= {f"{site.url}/population.html", f"{site.url}/growth.html"}  # crawled 2 hops
    assert await index.search("volcano") == []
    await index.close()


async def test_session_two_hops_with_numbered_sources(site: Website, fetcher: SafeFetcher) -> None:
    session = BrowserSession(LocalIndexProvider([f"{site.url}/index.html"], fetcher), fetcher)
    found = await session.run('search("world population")')
    assert found.observation.startswith("【0†") and found.outputs[0]["link"].startswith(site.url)
    population = next(i for i, o in enumerate(found.outputs) if o["link"].endswith("/population.html"))
    opened = await session.run(f"mclick([{population}])")
    assert "Links:" in opened.observation and "/growth.html" in opened.observation
    growth = await session.run(f"open_url({site.url + '/growth.html'!r})")
    assert "1.2 percent" in growth.observation and growth.outputs[0]["title"] == "Population growth"
    refused = await session.run('open_url("http://10.0.0.1/")')
    assert refused.outputs == [] and "private or local" in refused.observation


@pytest.mark.parametrize(
    ("command", "parsed"),
    [
        ('search("a b")', ("search", ["a b"], {})),
        ("search('x', recency_days=7)", ("search", ["x"], {"recency_days": 7})),
        ("mclick([0, 2])", ("mclick", [[0, 2]], {})),
        (' open_url("https://example.com") ', ("open_url", ["https://example.com"], {})),
    ],
)
def test_commands_parse(command: str, parsed: tuple[object, ...]) -> None:
    assert parse_command(command) == parsed


@pytest.mark.parametrize("command", ["__import__('os').system('id')", "search(x)", "delete()", "search(", ""])
def test_anything_else_is_refused_without_running(command: str) -> None:
    with pytest.raises(InvalidFieldError):
        parse_command(command)


def test_citations_become_links_even_when_streamed_one_character_at_a_time() -> None:
    sources = {0: Source(0, "World population", "http://x/pop"), 1: Source(1, "Growth", "http://x/growth")}
    answer = "It grew 1.2% a year 【1†Growth】, from 6.1 billion 【0†World population†http://x/pop】. Unknown 【7†Z】."
    linker = CitationLinker(sources)
    streamed = "".join(linker.feed(ch) for ch in answer) + linker.flush()
    assert streamed == (
        "It grew 1.2% a year [Growth](http://x/growth), from 6.1 billion [World population](http://x/pop). "
        "Unknown 【7†Z】."
    )


def test_search_provider_registry_names_its_entries() -> None:
    with pytest.raises(KeyError, match="local, searxng"):
        search_providers.get("bing")


def test_extraction_reads_title_and_links_from_the_parse_tree() -> None:
    from openglm.agent.browser.extract import extract
    from openglm.agent.browser.fetch import Page

    html = (
        "<html><head><title> A  page </title></head><body><p>Text.</p>"
        "<a href='/one#part'>First <b>link</b></a><a href='mailto:x@y'>mail</a><a href='#top'>top</a>"
        "<a href='https://example.com/two'>Second</a><a>no href</a></body></html>"
    )
    document = extract(Page("http://site.test/dir/page.html", "text/html", html.encode()))
    assert document.title == "A page"
    assert document.links == [("http://site.test/one", "First link"), ("https://example.com/two", "Second")]
    hostile = extract(Page("http://site.test/", "text/html", b"<html>" + b"<a <title>" * 5000 + b"</html>"))
    assert hostile.url == "http://site.test/"
