"""Fetching pages for the model without becoming a proxy into the server's own network (SSRF).

Every URL's host is resolved and every address it resolves to must be public: loopback, private, link-local,
CGNAT, multicast, reserved and unspecified ranges are refused unless allow-listed (a CIDR, or a host or
host:port). Redirects are followed by hand, each hop checked the same way. Bodies stop at ``max_bytes`` and
requests at ``timeout``. Not covered: a DNS answer that changes between the check and the connection (DNS
rebinding) — the window is one resolution long.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from ...errors import InvalidFieldError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
TEXT_TYPES = ("text/html", "text/plain", "application/xhtml+xml", "application/xml", "text/xml", "application/json")
MAX_REDIRECTS = 5


class FetchError(InvalidFieldError):
    """The page cannot be fetched: refused by policy, unreachable, too big, or not text."""


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    content_type: str
    body: bytes


def _blocked(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _blocked(address.ipv4_mapped)
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
    )


class SafeFetcher:
    def __init__(self, *, allow: list[str] | None = None, timeout: float = 10.0, max_bytes: int = 2_000_000):
        self.allowed_networks = []
        self.allowed_hosts = set()
        for entry in allow or []:
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allowed_hosts.add(entry.lower())
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "OpenGLM-browser/0.1"}
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The client behind ``fetch``, for callers that check URLs with ``check`` themselves (HTTP tools)."""
        return self._client

    async def close(self) -> None:
        await self._client.aclose()

    async def check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"only http(s) URLs can be opened, not {url!r}")
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts:
            return
        for address in await _resolve(host, port):
            if any(address in network for network in self.allowed_networks):
                continue
            if _blocked(address):
                raise FetchError(f"{url} resolves to {address}, a private or local address; refused")

    async def fetch(self, url: str) -> Page:
        for _ in range(MAX_REDIRECTS + 1):
            await self.check(url)
            try:
                async with self._client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise FetchError(f"{url} answered HTTP {response.status_code}")
                    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if content_type and content_type not in TEXT_TYPES:
                        raise FetchError(f"{url} is {content_type}, not a text page")
                    return Page(str(response.url), content_type or "text/html", await self._read(response, url))
            except httpx.HTTPError as exc:
                raise FetchError(f"{url} could not be fetched: {exc}") from None
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        body = bytearray()
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > self.max_bytes:
                raise FetchError(f"{url} is larger than {self.max_bytes} bytes")
        return bytes(body)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"{host} cannot be resolved: {exc}") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]
