"""Image providers: ``openai`` (any OpenAI-compatible ``/images/generations``, Zhipu's cogview-3 included) and
``diffusers`` (a local pipeline from a model path, torch on the CPU or a GPU)."""

from __future__ import annotations

import abc
import asyncio
import base64
import io
from dataclasses import dataclass
from typing import Any

import httpx

from ..catalog import ModelSpec
from ..errors import EngineError, InvalidFieldError
from ..registry import Registry

MAX_SIDE = 2048


@dataclass(frozen=True)
class GeneratedImage:
    png: bytes
    revised_prompt: str | None = None


class ImageProvider(abc.ABC):
    def __init__(self, spec: ModelSpec):
        self.spec = spec

    @abc.abstractmethod
    async def generate(self, prompt: str, n: int, size: str | None) -> list[GeneratedImage]: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass


image_providers: Registry[type[ImageProvider]] = Registry("image provider")


def create_provider(spec: ModelSpec) -> ImageProvider:
    return image_providers.get(spec.engine)(spec)


@image_providers.register("openai")
class OpenAICompatibleImages(ImageProvider):
    """``source`` is the API base (``https://open.bigmodel.cn/api/paas/v4``); options: api_key, remote_model."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        headers = {"Authorization": f"Bearer {spec.options['api_key']}"} if spec.options.get("api_key") else {}
        self._client = httpx.AsyncClient(base_url=spec.source.rstrip("/"), headers=headers, timeout=120)

    async def generate(self, prompt: str, n: int, size: str | None) -> list[GeneratedImage]:
        body: dict[str, Any] = {"model": self.spec.options.get("remote_model", self.spec.id), "prompt": prompt, "n": n}
        if size:
            body["size"] = size
        body["response_format"] = "b64_json"
        try:
            response = await self._client.post("/images/generations", json=body)
        except httpx.HTTPError as exc:
            raise EngineError(f"image provider {self.spec.source} is unreachable: {exc}") from None
        if response.status_code >= 400:
            raise EngineError(f"image provider answered {response.status_code}: {response.text[:300]}")
        return [await self._image(item) for item in response.json().get("data", [])]

    async def _image(self, item: dict[str, Any]) -> GeneratedImage:
        if item.get("b64_json"):
            png = base64.b64decode(item["b64_json"])
        else:  # providers that only give URLs (Zhipu's): fetch the picture
            png = (await self._client.get(item["url"])).content
        return GeneratedImage(png, item.get("revised_prompt"))

    async def close(self) -> None:
        await self._client.aclose()


@image_providers.register("diffusers")
class DiffusersImages(ImageProvider):
    """``source`` is a diffusers model directory. Needs ``torch==2.13.0`` and ``diffusers`` installed; loaded on
    first use and run in a worker thread, one request at a time. Options: ``steps`` (denoising steps, 25),
    ``device`` (``cpu`` by default, ``cuda`` for a GPU)."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._pipeline: Any = None
        self._lock = asyncio.Lock()

    def _load(self) -> Any:
        try:
            from diffusers import AutoPipelineForText2Image
        except ImportError:
            raise EngineError("the diffusers provider needs `pip install torch==2.13.0 diffusers`") from None
        try:
            pipeline = AutoPipelineForText2Image.from_pretrained(self.spec.source)
        except (OSError, ValueError) as exc:  # not a diffusers directory, or not a text-to-image one
            raise EngineError(f"image model {self.spec.id}: cannot load {self.spec.source}: {exc}") from None
        pipeline.set_progress_bar_config(disable=True)  # it would write a bar per request to the server's stderr
        return pipeline.to(str(self.spec.options.get("device", "cpu")))

    async def generate(self, prompt: str, n: int, size: str | None) -> list[GeneratedImage]:
        width, height = _size(size)
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self._pipeline is None:
                self._pipeline = await loop.run_in_executor(None, self._load)
            steps = int(self.spec.options.get("steps", 25))
            result = await loop.run_in_executor(
                None,
                lambda: self._pipeline(
                    prompt, num_images_per_prompt=n, width=width, height=height, num_inference_steps=steps
                ),
            )
        images = []
        for picture in result.images:
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            images.append(GeneratedImage(buffer.getvalue()))
        return images


def _size(size: str | None) -> tuple[int | None, int | None]:
    if not size:
        return None, None
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise InvalidFieldError(f"size must look like 1024x1024, not {size!r}") from None
    if not (64 <= width <= MAX_SIDE and 64 <= height <= MAX_SIDE and width % 8 == 0 and height % 8 == 0):
        raise InvalidFieldError(f"size: sides from 64 to {MAX_SIDE} pixels, multiples of 8; not {size!r}")
    return width, height
