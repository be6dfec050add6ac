"""The one way the browser and HTTP tools reach the network (``SafeFetcher.request``/``fetch``) against a service
that misbehaves on purpose: bodies are inflated only as far as they are read, a request ends at its deadline
however slowly bytes arrive, and ``Host`` always names the checked URL whatever headers a tool supplied."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest

from openglm.agent.browser.fetch import FetchError, FetchRefused, IPAddress, SafeFetcher, _Decoder, settable_header

from ...fixtures.hostile_http import HostileHttp


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileHttp]:
    service = HostileHttp(bomb_mib=256)
    yield service
    service.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    allowed = SafeFetcher(allow=["127.0.0.1"], timeout=5, deadline=1.5, max_bytes=1_000_000)
    yield allowed
    await allowed.close()


async def test_a_gzip_bomb_is_inflated_only_as_far_as_it_is_read(hostile: HostileHttp, fetcher: SafeFetcher) -> None:
    tracemalloc.start()
    try:
        reply = await fetcher.request("GET", f"{hostile.url}/bomb", limit=16_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status_code == 200 and reply.body == bytes(16_000)
    assert peak < 4 * 1024 * 1024, f"{peak / 2**20:.0f} MiB held for 16 KB of a {len(hostile.bomb)} byte body"
    with pytest.raises(FetchError, match="larger than 1000000 bytes"):
        await fetcher.fetch(f"{hostile.url}/bomb")
    assert "accept-encoding: identity" in hostile.heads[-1].lower()


def test_encodings_are_undone_with_a_bound() -> None:
    text = b"hello world " * 1000
    members = gzip.compress(text[:6000]) + gzip.compress(text[6000:])  # two gzip members, as some servers send
    assert _Decoder("gzip", "u").decode(members, 1 << 20) == text
    assert _Decoder("deflate", "u").decode(zlib.compress(text), 1 << 20) == text  # zlib-wrapped
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    assert _Decoder("deflate", "u").decode(raw.compress(text) + raw.flush(), 1 << 20) == text  # raw deflate
    decoder = _Decoder("gzip", "u")
    chunks = [decoder.decode(piece, 100) for piece in (members[:50], members[50:])]
    assert b"".join(chunks) == text[:200]  # each call returns at most its room
    with pytest.raises(FetchError, match="damaged gzip body"):
        _Decoder("gzip", "u").decode(b"\x1f\x8b not gzip at all", 100)
    with pytest.raises(FetchError, match="'br' encoding, which was not asked for"):
        _Decoder("br", "u")


async def test_a_trickling_server_is_cut_at_the_deadline(hostile: HostileHttp, fetcher: SafeFetcher) -> None:
    for attempt in (
        fetcher.request("GET", f"{hostile.url}/trickle", limit=16_000),
        fetcher.fetch(f"{hostile.url}/trickle"),
    ):
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"did not answer in full within 1.5 s"):
            await asyncio.wait_for(attempt, 30)
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("supplied", ["Host", "host", "HOST"])
async def test_host_always_names_the_checked_url(hostile: HostileHttp, supplied: str) -> None:
    """For an IP-literal URL, a host allowed by name and a name pinned to its checked address alike."""

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    by_address = SafeFetcher(allow=["127.0.0.1"])
    by_name = SafeFetcher(allow=[f"localhost:{hostile.port}"])
    pinned = SafeFetcher(allow=["127.0.0.0/8"], resolver=resolver)
    tool_headers = {supplied: "admin.internal", "Transfer-Encoding": "chunked", "Proxy-Authorization": "x", "X-Ok": "1"}
    try:
        for fetcher, host in (
            (by_address, f"127.0.0.1:{hostile.port}"),
            (by_name, f"localhost:{hostile.port}"),
            (pinned, f"svc.internal.test:{hostile.port}"),
        ):
            reply = await fetcher.request("GET", f"http://{host}/vhost", limit=1000, headers=tool_headers)
            assert reply.body.decode() == f"vhost [{host!r}]"
            head = hostile.heads[-1].lower()
            assert "admin.internal" not in head and "transfer-encoding" not in head and "proxy-" not in head
            assert "x-ok: 1" in head
    finally:
        for fetcher in (by_address, by_name, pinned):
            await fetcher.close()


def test_headers_a_tool_may_not_set() -> None:
    for name in ("Host", " host", "Connection", "Keep-Alive", "Content-Length", "TE", "Upgrade", "Proxy-Connection"):
        assert not settable_header(name)
    for name in ("Authorization", "X-Api-Key", "Accept", "Content-Type"):
        assert settable_header(name)


async def test_a_refusal_by_policy_is_told_apart() -> None:
    strict = SafeFetcher()
    try:
        with pytest.raises(FetchRefused):
            await strict.request("GET", "http://127.0.0.1:9/", limit=10)
    finally:
        await strict.close()
