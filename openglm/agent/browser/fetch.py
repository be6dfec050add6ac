"""Reaching URLs for the model without becoming a proxy into the server's own network (SSRF).

Every URL's host is resolved and every address it resolves to must be public: loopback, private, link-local,
CGNAT, multicast, reserved and unspecified ranges are refused unless allow-listed (a CIDR, or a host or
host:port). The connection then goes to the address that was checked, not to a second resolution of the name
(``Destination``: the URL carries the address, ``Host`` and the TLS server name carry the name, and the
certificate is verified against the name), so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot move the request into the private network. Redirects are followed by hand, each hop
checked the same way. Bodies stop at ``max_bytes`` and requests at ``timeout``.

One fetcher is one policy: the browser's allows ``OPENGLM_BROWSER_ALLOW``; user-defined HTTP tools get their own
(``OPENGLM_HTTP_TOOLS_ALLOW``, see ``agent/service.py``), so what the operator opens to the browser is not opened
to every user's GLM.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from ...errors import InvalidFieldError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
TEXT_TYPES = ("text/html", "text/plain", "application/xhtml+xml", "application/xml", "text/xml", "application/json")
MAX_REDIRECTS = 5


class FetchError(InvalidFieldError):
    """The page cannot be fetched: refused by policy, unreachable, too big, or not text."""


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Destination:
    """Where a checked URL's request goes: ``url`` with the checked address in place of a host name, and the
    ``Host`` header and TLS server name that keep the name for the server and for certificate verification."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


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
    def __init__(
        self,
        *,
        allow: list[str] | None = None,
        allow_setting: str = "OPENGLM_BROWSER_ALLOW",
        timeout: float = 10.0,
        max_bytes: int = 2_000_000,
        resolver: Resolver | None = None,
    ):
        self.allowed_networks = []
        self.allowed_hosts = set()
        for entry in allow or []:
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allowed_hosts.add(entry.lower())
        self.allow_setting = allow_setting  # named in refusals: where the operator would allow an address
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._resolve = resolver or _resolve
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "OpenGLM-browser/0.1"}
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def check(self, url: str) -> Destination:
        """Refused unless every address of the URL's host is public or allow-listed; where to connect."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"only http(s) URLs can be opened, not {url!r}")
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts:
            return Destination(url)  # the operator named this host: its own resolution is trusted
        addresses = await self._resolve(host, port)
        if not addresses:
            raise FetchError(f"{host} cannot be resolved")
        for address in addresses:
            if any(address in network for network in self.allowed_networks):
                continue
            if _blocked(address):
                raise FetchError(
                    f"{url} resolves to {address}, a private or local address; refused (only public addresses "
                    f"can be reached; the operator can allow this one with {self.allow_setting})"
                )
        return _pinned(url, parts.scheme, host, addresses[0])

    @asynccontextmanager
    async def stream(self, method: str, url: str, **options: Any) -> AsyncIterator[httpx.Response]:
        """One request (no redirects followed) to the checked address of ``url``; the response unread."""
        destination = await self.check(url)
        headers = {**(options.pop("headers", None) or {}), **destination.headers}
        async with self._client.stream(
            method, destination.url, headers=headers, extensions=destination.extensions, **options
        ) as response:
            yield response

    async def fetch(self, url: str) -> Page:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise FetchError(f"{url} answered HTTP {response.status_code}")
                    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if content_type and content_type not in TEXT_TYPES:
                        raise FetchError(f"{url} is {content_type}, not a text page")
                    return Page(url, content_type or "text/html", await self._read(response, url))
            except httpx.HTTPError as exc:
                raise FetchError(f"{url} could not be fetched: {exc}") from None
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        body = await read_prefix(response, self.max_bytes + 1)
        if len(body) > self.max_bytes:
            raise FetchError(f"{url} is larger than {self.max_bytes} bytes")
        return body


async def read_prefix(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streamed body; the rest is never read."""
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)


def _pinned(url: str, scheme: str, host: str, address: IPAddress) -> Destination:
    """``url`` sent to ``address``: unchanged when the host is the address itself."""
    try:
        if ipaddress.ip_address(host) == address:
            return Destination(url)
    except ValueError:
        pass
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    userinfo = parts.netloc.rpartition("@")[0]
    target = urlunsplit((scheme, f"{userinfo}@{netloc}" if userinfo else netloc, parts.path, parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2]
    extensions: dict[str, Any] = {"sni_hostname": host} if scheme == "https" else {}
    return Destination(target, {"Host": host_header}, extensions)


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
