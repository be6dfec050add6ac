"""Images in chat messages, for a model that sees (a catalog entry with ``vision = true``): every ``image_url``
part made a ``data:`` URL the engine can pass on, so the engine's server never fetches an address a caller chose.

    data:image/...;base64,...   checked (an image type, decodable, within MAX_IMAGE_BYTES)
    raw base64                  (Zhipu's SDK strips the data: prefix) — its type read from its first bytes
    http(s) URL                 fetched through the SSRF-safe fetcher of user-supplied addresses (public addresses,
                                or OPENGLM_HTTP_TOOLS_ALLOW), at most MAX_IMAGE_BYTES, an image type required

Every image's width and height are read from its header and bounded (``pixels.py``: a small file can claim more
pixels than a decoder can allocate). Anything else is a 400 naming the part. Images to a model that cannot see
are refused where messages are read (``serving/messages.py``: 1210), never dropped."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ...errors import InvalidFieldError
from ...protocol.chat import ChatCompletionRequest, ContentPart
from .fetch import FetchError, SafeFetcher
from .pixels import MAX_PIXELS, dimensions

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGES = 16
# First bytes → media type, for base64 sent without its data: prefix.
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
    (b"BM", "image/bmp"),
)


class ImageInputs:
    def __init__(self, fetcher: SafeFetcher | None):
        self.fetcher = fetcher

    async def resolved(self, body: ChatCompletionRequest) -> ChatCompletionRequest:
        """``body`` with every image part as a checked ``data:`` URL (the request unchanged when it has none)."""
        count = 0
        messages = []
        changed = False
        for i, message in enumerate(body.messages):
            if not isinstance(message.content, list):
                messages.append(message)
                continue
            parts: list[ContentPart] = []
            for j, part in enumerate(message.content):
                if part.type != "image_url":
                    parts.append(part)
                    continue
                count += 1
                if count > MAX_IMAGES:
                    raise InvalidFieldError(f"messages: at most {MAX_IMAGES} images a request")
                url = await self._data_url(_url_of(part.image_url), f"messages[{i}].content[{j}].image_url")
                parts.append(ContentPart(type="image_url", image_url={"url": url}))
                changed = True
            messages.append(message.model_copy(update={"content": parts}))
        return body.model_copy(update={"messages": messages}) if changed else body

    async def _data_url(self, url: str, where: str) -> str:
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            media_type = header[5:].split(";")[0].strip().lower()
            if not media_type.startswith("image/") or ";base64" not in header:
                raise InvalidFieldError(f"{where}: a data URL of a base64 image (data:image/...;base64,...)")
            _bounded(_decoded(payload, where), where)
            return url
        if url.startswith(("http://", "https://")):
            return await self._fetched(url, where)
        data = _bounded(_decoded(url, where), where)  # Zhipu's SDK sends the base64 alone
        return f"data:{_sniffed(data, where)};base64,{base64.b64encode(data).decode()}"

    async def _fetched(self, url: str, where: str) -> str:
        if self.fetcher is None:
            raise InvalidFieldError(f"{where}: images by URL cannot be fetched here; send the image as base64")
        try:
            reply = await self.fetcher.request("GET", url, limit=MAX_IMAGE_BYTES + 1)
        except FetchError as exc:
            raise InvalidFieldError(f"{where}: the image could not be fetched: {exc.message}") from None
        if reply.status_code != 200:
            raise InvalidFieldError(f"{where}: the image URL answered {reply.status_code}")
        if len(reply.body) > MAX_IMAGE_BYTES:
            raise InvalidFieldError(f"{where}: the image is larger than {MAX_IMAGE_BYTES} bytes")
        _bounded(reply.body, where)
        media_type = reply.headers.get("content-type", "").split(";")[0].strip().lower()
        if not media_type.startswith("image/"):
            media_type = _sniffed(reply.body, where)
        return f"data:{media_type};base64,{base64.b64encode(reply.body).decode()}"


def _url_of(image_url: dict[str, Any] | str | None) -> str:
    if isinstance(image_url, dict):
        image_url = image_url.get("url")
    if not isinstance(image_url, str) or not image_url:
        raise InvalidFieldError("image_url: a URL, a data URL or base64 image data")
    return image_url.strip()


def _decoded(payload: str, where: str) -> bytes:
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise InvalidFieldError(f"{where}: the image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidFieldError(f"{where}: not a URL, a data URL or base64 image data") from None


def _bounded(data: bytes, where: str) -> bytes:
    size = dimensions(data)
    if size is None:
        raise InvalidFieldError(f"{where}: not an image whose size can be read (PNG, JPEG, GIF, WebP, BMP)")
    width, height = size
    if width * height > MAX_PIXELS or not width or not height:
        raise InvalidFieldError(
            f"{where}: the image is {width}×{height} pixels; at most {MAX_PIXELS:,} pixels, neither side 0"
        )
    return data


def _sniffed(data: bytes, where: str) -> str:
    for signature, media_type in SIGNATURES:
        if data.startswith(signature):
            return media_type
    raise InvalidFieldError(f"{where}: not an image this server recognizes (PNG, JPEG, GIF, WebP, BMP)")
