"""Reaching URLs for the model without becoming a proxy into the server's own network (SSRF), and without
letting the far end spend the server's memory or time.

Every URL's host is resolved and every address it resolves to must be public: loopback, private, link-local,
CGNAT, multicast, reserved and unspecified ranges are refused unless allow-listed (a CIDR, or a host or
host:port). The connection then goes to the address that was checked, not to a second resolution of the name
(``Destination``: the URL carries the address, ``Host`` and the TLS server name carry the name, and the
certificate is verified against the name), so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot move the request into the private network. ``Host`` always comes from the checked URL:
headers a tool supplies cannot name another virtual host behind an allowed address, nor set the connection's
framing (``settable_header``). Redirects are followed by hand, each hop checked the same way.

``request`` is the one way out, for the browser (``fetch``) and HTTP tools alike: it asks for an unencoded body
(``Accept-Encoding: identity``), reads the raw bytes and inflates a gzip or deflate body that comes anyway
through a bounded decompressor, so the server never holds more than the caller's limit of a body however well it
compresses (a 1 MB gzip of zeros is a GiB); every other encoding is refused. A request — connection, redirects
and reading included — ends at ``deadline`` seconds, since ``timeout`` bounds each network wait only and a server
trickling a byte at a time would otherwise hold the caller for hours.

One fetcher is one policy: the browser's allows ``OPENGLM_BROWSER_ALLOW``; user-defined HTTP tools get their own
(``OPENGLM_HTTP_TOOLS_ALLOW``, see ``agent/service.py``), so what the operator opens to the browser is not opened
to every user's GLM.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from ...errors import InvalidFieldError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
Inspect = Callable[[httpx.Response, str], bool]  # sees the status and headers (and the URL); False: body not wanted
TEXT_TYPES = ("text/html", "text/plain", "application/xhtml+xml", "application/xml", "text/xml", "application/json")
MAX_REDIRECTS = 5
# Headers only the fetcher sets: the virtual host (from the checked URL), the message's framing and encodings,
# and hop-by-hop headers meant for a proxy or this connection.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "upgrade",
        "te",
        "trailer",
        "expect",
    }
)


class FetchError(InvalidFieldError):
    """The page cannot be fetched: refused by policy, unreachable, too slow, too big, or not text."""


class FetchRefused(FetchError):
    """Refused by the address policy before anything was sent."""


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Reply:
    """A response: status, headers and at most the asked-for number of bytes of its (decoded) body."""

    url: str
    status_code: int
    headers: httpx.Headers
    body: bytes


@dataclass(frozen=True)
class Destination:
    """Where a checked URL's request goes: ``url`` with the checked address in place of a host name, and the
    ``Host`` header and TLS server name that keep the name for the server and for certificate verification."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def settable_header(name: str) -> bool:
    """Whether a tool (a GLM's document or auth, the model's arguments) may set a request header of this name."""
    lowered = name.strip().lower()
    return lowered not in RESERVED_HEADERS and not lowered.startswith("proxy-")


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
        deadline: float = 30.0,
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
        self.timeout = timeout  # each network wait (connect, each read)
        self.deadline = deadline  # the whole request, redirects and reading included
        self.max_bytes = max_bytes
        self._resolve = resolver or _resolve
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": "OpenGLM-browser/0.1", "Accept-Encoding": "identity"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def check(self, url: str) -> Destination:
        """Refused unless every address of the URL's host is public or allow-listed; where to connect."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"only http(s) URLs can be opened, not {url!r}")
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts:
            return Destination(url, {"Host": _host_header(url)})  # the operator named this host: its resolution
        addresses = await self._resolve(host, port)
        if not addresses:
            raise FetchRefused(f"{host} cannot be resolved")
        for address in addresses:
            if any(address in network for network in self.allowed_networks):
                continue
            if _blocked(address):
                raise FetchRefused(
                    f"{url} resolves to {address}, a private or local address; refused (only public addresses "
                    f"can be reached; the operator can allow this one with {self.allow_setting})"
                )
        return _pinned(url, parts.scheme, host, addresses[0])

    async def request(
        self,
        method: str,
        url: str,
        *,
        limit: int,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Reply:
        """One request (no redirect followed) to the checked address of ``url``, within the deadline, with at most
        ``limit`` bytes of its body read. ``headers`` a tool supplied lose those only the fetcher sets. FetchRefused
        when the policy refuses it (nothing was sent), FetchError when it fails."""
        async with self._deadline(url):
            return await self._exchange(method, url, limit, headers=headers, params=params, json=json)

    async def fetch(self, url: str) -> Page:
        """A text page for the browser, redirects followed (each hop checked), all within the deadline."""
        async with self._deadline(url):
            for _ in range(MAX_REDIRECTS + 1):
                reply = await self._exchange("GET", url, self.max_bytes + 1, inspect=_wanted_page)
                if reply.status_code in REDIRECTS and "location" in reply.headers:
                    url = urljoin(url, reply.headers["location"])
                    continue
                if len(reply.body) > self.max_bytes:
                    raise FetchError(f"{url} is larger than {self.max_bytes} bytes")
                return Page(url, _content_type(reply.headers) or "text/html", reply.body)
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    async def _exchange(
        self, method: str, url: str, limit: int, *, inspect: Inspect | None = None, **options: Any
    ) -> Reply:
        destination = await self.check(url)
        supplied = options.pop("headers", None) or {}
        headers = {**{k: v for k, v in supplied.items() if settable_header(k)}, **destination.headers}
        try:
            async with self._client.stream(
                method, destination.url, headers=headers, extensions=destination.extensions, **options
            ) as response:
                wanted = inspect is None or inspect(response, url)
                body = await _read_body(response, limit, url) if wanted else b""
                return Reply(url, response.status_code, response.headers, body)
        except httpx.HTTPError as exc:
            raise FetchError(f"{url} could not be fetched: {exc}") from None

    @asynccontextmanager
    async def _deadline(self, url: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.deadline):
                yield
        except TimeoutError:
            raise FetchError(f"{url} did not answer in full within {self.deadline:g} s") from None


REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Encodings a server may send although the fetcher asked for none (zlib window bits: gzip, or zlib-wrapped deflate
# as the standard says; raw deflate is tried when that fails).
INFLATE_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _wanted_page(response: httpx.Response, url: str) -> bool:
    """The browser reads a body only when it is a text page; a redirect's body is not read."""
    if response.status_code in REDIRECTS and "location" in response.headers:
        return False
    if response.status_code >= 400:
        raise FetchError(f"{url} answered HTTP {response.status_code}")
    content_type = _content_type(response.headers)
    if content_type and content_type not in TEXT_TYPES:
        raise FetchError(f"{url} is {content_type}, not a text page")
    return True


def _content_type(headers: httpx.Headers) -> str:
    return str(headers.get("content-type", "")).split(";")[0].strip().lower()


async def _read_body(response: httpx.Response, limit: int, url: str) -> bytes:
    """At most ``limit`` bytes of the body, decoded; the rest is never read nor inflated."""
    decoder = _Decoder(response.headers.get("content-encoding", ""), url)
    body = bytearray()
    async for raw in response.aiter_raw():
        body += decoder.decode(raw, limit - len(body))
        if len(body) >= limit:
            break
    return bytes(body)


class _Decoder:
    """A body's Content-Encoding undone with a bound: ``decode`` never returns (nor holds) more than ``room``
    bytes, whatever one compressed chunk would inflate to."""

    def __init__(self, encoding: str, url: str):
        self.encoding, self.url = encoding.strip().lower(), url
        self._identity = self.encoding in ("", "identity")
        if not self._identity and self.encoding not in INFLATE_WBITS:
            raise FetchError(f"{url} sent a body in {encoding!r} encoding, which was not asked for")
        self._wbits = INFLATE_WBITS.get(self.encoding, zlib.MAX_WBITS)
        self._inflater = zlib.decompressobj(self._wbits)
        self._sniff = self.encoding == "deflate"  # which deflate it is shows at the first bytes

    def decode(self, data: bytes, room: int) -> bytes:
        if self._identity:
            return data[:room]
        out = bytearray()
        try:
            while data and len(out) < room:
                out += self._inflate(data, room - len(out))
                if self._inflater.eof:  # a gzip body may hold several members
                    data = self._inflater.unused_data
                    if data:
                        self._inflater = zlib.decompressobj(self._wbits)
                else:
                    data = self._inflater.unconsumed_tail  # non-empty only when room ran out
        except zlib.error as exc:
            raise FetchError(f"{self.url} sent a damaged {self.encoding} body: {exc}") from None
        return bytes(out)

    def _inflate(self, data: bytes, room: int) -> bytes:
        if self._sniff:
            self._sniff = False
            try:
                return self._inflater.decompress(data, room)
            except zlib.error:  # raw deflate without the zlib wrapper, as some servers send it
                self._wbits = -zlib.MAX_WBITS
                self._inflater = zlib.decompressobj(self._wbits)
        return self._inflater.decompress(data, room)


def _host_header(url: str) -> str:
    """The ``Host`` a request for ``url`` carries: its host and port as written, without user information."""
    return urlsplit(url).netloc.rpartition("@")[2]


def _pinned(url: str, scheme: str, host: str, address: IPAddress) -> Destination:
    """``url`` sent to ``address`` (unchanged when the host is the address itself), with its own ``Host``."""
    try:
        if ipaddress.ip_address(host) == address:
            return Destination(url, {"Host": _host_header(url)})
    except ValueError:
        pass
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    userinfo = parts.netloc.rpartition("@")[0]
    target = urlunsplit((scheme, f"{userinfo}@{netloc}" if userinfo else netloc, parts.path, parts.query, ""))
    extensions: dict[str, Any] = {"sni_hostname": host} if scheme == "https" else {}
    return Destination(target, {"Host": _host_header(url)}, extensions)


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
