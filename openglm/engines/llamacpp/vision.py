"""Images for a llamacpp model that sees: its projector (the catalog's ``mmproj``, a GGUF for llama.cpp's
multimodal library, libmtmd) turns each image into embeddings, which the scheduler decodes into the sequence's KV
cells where the image stands in the prompt.

An image becomes a ``Picture``: the text tokens the model's format puts around an image (begin/end markers, if
any), and the image chunk with its embeddings, computed when the request is submitted — in a worker thread, one
image at a time (the projector's output buffer is shared), never on the decode thread, so encoding a large image
does not stall the sequences being generated. The prompt's text is tokenized by the engine as always; only the
image itself goes through libmtmd, which is given nothing but its own marker and the image, so no text a user wrote
can ever be read as an image.

In ``Sequence.tokens`` an image's positions hold placeholder ids: negative (never a vocabulary token, never fed
to llama_decode), 31 bits of a hash of the image's bytes at each position (SHAKE-256, a different part at each),
so a prefix that contains an image is reused only by a prompt with that very image (a conversation that goes on
about a picture reads it once) — 124 bits at least must agree, and a match never ends inside an image.

Models whose image positions are not one per embedding (M-RoPE: the Qwen2-VL family) are not served by this
engine; a remote engine (vLLM, SGLang) serves them.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from dataclasses import dataclass, field

import llama_cpp as lc
import llama_cpp.mtmd_cpp as mtmd

from ...errors import EngineError, InvalidFieldError
from .model import LlamaModel, forward_log

MAX_IMAGE_TOKENS = 8192  # one image's embeddings, past any real projector's (a guard against a crafted mmproj)


@dataclass
class Picture:
    """One image of a prompt: ``before``/``after`` text tokens the model's format wraps it in, and the image
    chunk with its embeddings (``n_tokens`` × the text model's width), owned until ``close``."""

    before: list[int]
    after: list[int]
    chunk: ctypes.c_void_p
    embeddings: ctypes.Array[ctypes.c_float]
    n_tokens: int
    placeholders: list[int]
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            mtmd.mtmd_input_chunk_free(self.chunk)


@dataclass(frozen=True)
class Placed:
    """A picture at its place in a sequence: its embeddings go to positions ``start`` … ``start + n_tokens``."""

    start: int
    picture: Picture

    @property
    def end(self) -> int:
        return self.start + self.picture.n_tokens


class Projector:
    """A loaded mmproj for one text model."""

    def __init__(self, path: str, model: LlamaModel, threads: int):
        # libmtmd narrates each image it reads; only its warnings and errors reach the log, as llama.cpp's.
        mtmd.mtmd_log_set(forward_log, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(forward_log, ctypes.c_void_p(0))
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = threads
        params.warmup = False
        self.ctx = mtmd.mtmd_init_from_file(path.encode(), model.ptr, params)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not load the projector {path} for this model (see the log)")
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise EngineError(f"{path} is not an image projector")
        if mtmd.mtmd_decode_use_mrope(self.ctx):
            self.close()
            raise EngineError(
                f"{path}: this model places images with M-RoPE (Qwen2-VL family), which the llamacpp engine does "
                "not serve; serve it with a remote engine"
            )
        self.model = model
        self.width = lc.llama_model_n_embd_inp(model.ptr)
        self.marker = mtmd.mtmd_default_marker()
        self._lock = threading.Lock()  # one encode at a time: the projector's output buffer is shared

    def close(self) -> None:
        if self.ctx:
            mtmd.mtmd_free(self.ctx)
            self.ctx = None

    def picture(self, image: bytes, number: int) -> Picture:
        """``image`` (PNG, JPEG, GIF, BMP… bytes) as a picture; blocking: call it in a worker thread."""
        buffer = (ctypes.c_uint8 * len(image)).from_buffer_copy(image)
        with self._lock:
            bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self.ctx, buffer, len(image), False)
            if not bitmap:
                raise InvalidFieldError(f"image {number}: its bytes are not an image this model can read")
            chunks = mtmd.mtmd_input_chunks_init()
            try:
                text = mtmd.mtmd_input_text(
                    text=self.marker, text_len=len(self.marker), add_special=False, parse_special=True
                )
                bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
                if mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), bitmaps, 1) != 0:
                    raise InvalidFieldError(f"image {number}: the model's projector could not read it")
                return self._encode(chunks, image, number)
            finally:
                mtmd.mtmd_input_chunks_free(chunks)
                mtmd.mtmd_bitmap_free(bitmap)

    def _encode(self, chunks: ctypes.c_void_p, image: bytes, number: int) -> Picture:
        before: list[int] = []
        after: list[int] = []
        found: tuple[ctypes.c_void_p, int] | None = None
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                (after if found else before).extend(tokens[j] for j in range(n.value))
            elif found is None:
                found = (chunk, mtmd.mtmd_input_chunk_get_n_tokens(chunk))
        if found is None:
            raise InvalidFieldError(f"image {number}: the model's projector made nothing of it")
        chunk, n_tokens = found
        if not 0 < n_tokens <= MAX_IMAGE_TOKENS or mtmd.mtmd_input_chunk_get_n_pos(chunk) != n_tokens:
            raise EngineError(f"image {number}: the projector gave {n_tokens} embeddings, which cannot be placed")
        if mtmd.mtmd_encode_chunk(self.ctx, chunk) != 0:
            raise EngineError(f"image {number}: the projector failed to encode it")
        output = mtmd.mtmd_get_output_embd(self.ctx)
        embeddings = (ctypes.c_float * (n_tokens * self.width))()
        ctypes.memmove(embeddings, output, ctypes.sizeof(embeddings))
        owned = mtmd.mtmd_input_chunk_copy(chunk)
        if not owned:
            raise EngineError(f"image {number}: out of memory")
        return Picture(before, after, owned, embeddings, n_tokens, placeholder_ids(image, n_tokens))

    def decode(self, lctx: ctypes.c_void_p, placed: Placed, slot: int, batch_size: int) -> int:
        """Decode a picture's embeddings into ``slot``'s cells at its positions (decode thread only); llama.cpp's
        return code (1: no room in the KV cache)."""
        new_n_past = lc.llama_pos(0)
        return int(
            mtmd.mtmd_helper_decode_image_chunk(
                self.ctx,
                lctx,
                placed.picture.chunk,
                placed.picture.embeddings,
                placed.start,
                slot,
                batch_size,
                ctypes.byref(new_n_past),
                mtmd.mtmd_helper_post_decode_callback(),
                None,
            )
        )


def placeholder_ids(image: bytes, n_tokens: int) -> list[int]:
    """Negative ids standing for ``image`` at its ``n_tokens`` positions: equal for equal bytes only."""
    digest = hashlib.shake_256(image).digest(4 * n_tokens)
    return [-1 - (int.from_bytes(digest[4 * i : 4 * i + 4], "big") & 0x7FFFFFFF) for i in range(n_tokens)]
