"""What a suite's tasks need besides the server: a local website for the browser, a stand-in image model for
the drawing tool, scratch space. Both services are real HTTP on 127.0.0.1; a server started by the eval is
pointed at them (``server_env``, ``catalog_additions``)."""

from __future__ import annotations

import base64
import json
import struct
import tempfile
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STAND_IN_IMAGE_MODEL = "eval-cogview"


def solid_png(rgb: tuple[int, int, int], size: int = 16) -> bytes:
    """A real PNG of one colour (the stand-in image model's picture)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class _Service:
    """A threaded HTTP server on a free loopback port."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0):
        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as exc:
            raise RuntimeError(f"cannot serve on 127.0.0.1:{port}: {exc}") from exc
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _reply(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class Website(_Service):
    """Serves ``pages`` (path → HTML) as a website; ``port`` 0: any free one."""

    def __init__(self, pages: dict[str, str], port: int = 0):
        self.pages = pages
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = site.pages.get(self.path.split("?", 1)[0])
                if page is None:
                    _reply(self, 404, "text/plain", b"not found")
                else:
                    _reply(self, 200, "text/html; charset=utf-8", page.encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler, port)


class ImageStandIn(_Service):
    """An OpenAI-compatible ``/v1/images/generations`` that returns a real PNG for any prompt: the drawing tool's
    provider in evals and data generation, where what matters is the prompt the model wrote, not the picture."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                prompt = str(body.get("prompt", ""))
                shade = zlib.crc32(prompt.encode()) & 0xFFFFFF
                picture = solid_png((shade >> 16, (shade >> 8) & 0xFF, shade & 0xFF))
                data = [{"b64_json": base64.b64encode(picture).decode(), "revised_prompt": prompt}]
                _reply(self, 200, "application/json", json.dumps({"created": 0, "data": data}).encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)
        self.url = f"{self.url}/v1"


@dataclass
class EvalEnvironment:
    """Started once per eval run, shared by every suite and model."""

    website: Website | None = None
    images: ImageStandIn | None = None
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="openglm-eval-")))
    extras: dict[str, Any] = field(default_factory=dict)  # per-suite state (a suite's knowledge base id, …)

    @classmethod
    def start(cls, pages: dict[str, str] | None = None, site_port: int = 0) -> EvalEnvironment:
        return cls(website=Website(pages, site_port) if pages else None, images=ImageStandIn())

    def server_env(self) -> dict[str, str]:
        """Settings for a server the eval starts: the browser searches and may fetch the local website."""
        if self.website is None:
            return {}
        return {
            "OPENGLM_BROWSER_SEARCH": "local",
            "OPENGLM_BROWSER_SITES": f"{self.website.url}/index.html",
            "OPENGLM_BROWSER_ALLOW": f"127.0.0.1:{self.website.port}",
        }

    def catalog_additions(self) -> str:
        """Catalog TOML for the stand-in image model (appended to the served catalog)."""
        if self.images is None:
            return ""
        return f'\n[[images]]\nid = "{STAND_IN_IMAGE_MODEL}"\nengine = "openai"\nsource = "{self.images.url}"\n'

    def stop(self) -> None:
        for service in (self.website, self.images):
            if service is not None:
                service.stop()


# A server started for an eval always offers the browser: an agent asked a plain question (``EvalClient.reply``)
# is offered every built-in, and a suite without a website of its own still needs one to browse.
PLACEHOLDER_SITE = {"/index.html": "<html><head><title>Index</title></head><body><p>No pages.</p></body></html>"}


def website_pages(suites: Sequence[Any], seed: int) -> dict[str, str]:
    """The local website the suites browse (from the first suite that has one; a one-page site otherwise)."""
    for suite in suites:
        site = getattr(suite, "website", None)
        if site is not None:
            return dict(site(seed))
    return dict(PLACEHOLDER_SITE)
