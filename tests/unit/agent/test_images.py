"""Images in chat messages are bounded by their header's size before anything decodes them
(``agent/browser/pixels.py``, ``agent/browser/images.py``)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from openglm.agent.browser.images import ImageInputs
from openglm.agent.browser.pixels import MAX_PIXELS, dimensions
from openglm.errors import InvalidFieldError
from openglm.protocol.chat import ChatCompletionRequest


def encoded(fmt: str, size: tuple[int, int], **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, format=fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("GIF", {}),
        ("BMP", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_the_size_is_read_from_each_format_s_header(fmt: str, options: dict[str, object]) -> None:
    assert dimensions(encoded(fmt, (37, 21), **options)) == (37, 21)


def test_what_is_not_an_image_or_is_cut_short_has_no_size() -> None:
    png = encoded("PNG", (5, 5))
    assert dimensions(b"hello") is None and dimensions(png[:20]) is None and dimensions(b"\xff\xd8\xff\xe0") is None


def bomb(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` × ``height`` pixels, a few bytes of data: what a decoder would allocate for."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def request(url: str) -> ChatCompletionRequest:
    parts = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "?"}]
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": parts}]})


@pytest.mark.parametrize("prefix", ["data:image/png;base64,", ""])  # a data URL, and Zhipu's bare base64
async def test_an_image_claiming_too_many_pixels_is_refused_before_it_is_decoded(prefix: str) -> None:
    inputs = ImageInputs(None)
    big = base64.b64encode(bomb(100_000, 100_000)).decode()
    with pytest.raises(InvalidFieldError, match="100000×100000 pixels"):
        await inputs.resolved(request(prefix + big))
    with pytest.raises(InvalidFieldError, match="size can be read"):
        await inputs.resolved(request(prefix + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).decode()))
    side = int(MAX_PIXELS**0.5)
    fine = base64.b64encode(bomb(side, side)).decode()  # at the limit: passed on (the header is all that is read)
    assert (await inputs.resolved(request(prefix + fine))).messages[0].content[0].image_url is not None  # type: ignore[index,union-attr]
