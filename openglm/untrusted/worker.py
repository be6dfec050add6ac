"""The worker process of ``pool.UntrustedPool``: ``python -m openglm.untrusted.worker MEMORY_MB [MODULE ...]``.

It limits its own address space and core dumps before it reads anything, dies with the server (PDEATHSIG), imports
the modules it is told to preload, says it is ready, then answers one call at a time: a length-prefixed pickle of
``(module, function name, args)`` in on stdin, a length-prefixed pickle of ``("ok", result)`` or
``("error", details)`` out on the original stdout (fd 1 is pointed at stderr, so a library that prints cannot
corrupt the replies).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import pickle
import resource
import signal
import struct
import sys
import traceback
from typing import Any, BinaryIO

from ..errors import DocumentError, OpenGLMError

HEADER = struct.Struct("<Q")
READY = b"ready"
PR_SET_PDEATHSIG = 1

log = logging.getLogger("openglm.untrusted.worker")


def limit_self(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, AttributeError):  # Linux only; elsewhere the pipe closing still ends us
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    return body if len(body) == size else None


def write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def error_details(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, DocumentError):
        return {"kind": "document", "problem": exc.problem, "message": exc.message}
    if isinstance(exc, OpenGLMError):
        return {"kind": "platform", "message": exc.message, "code": exc.code, "status": exc.status}
    if isinstance(exc, MemoryError):
        return {"kind": "memory", "message": "out of memory"}
    if isinstance(exc, RecursionError):
        return {"kind": "depth", "message": "nested too deeply"}
    return {"kind": "internal", "message": "".join(traceback.format_exception(exc))[-4000:]}


def call(request: bytes) -> tuple[str, Any]:
    module, name, args = pickle.loads(request)
    function = getattr(importlib.import_module(module), name)
    try:
        return "ok", function(*args)
    except BaseException as exc:
        return "error", error_details(exc)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    while (request := read_frame(requests)) is not None:
        status, value = call(request)
        try:
            reply = pickle.dumps((status, value), protocol=5)
        except MemoryError:
            reply = pickle.dumps(("error", error_details(MemoryError())), protocol=5)
        except Exception as exc:  # a result that cannot be sent is a bug in the job
            reply = pickle.dumps(("error", error_details(exc)), protocol=5)
        write_frame(replies, reply)
        if status == "error" and value["kind"] == "memory":
            return  # the heap may be in a bad state: the pool starts a fresh worker


def main(argv: list[str]) -> None:
    limit_self(int(argv[0]))
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    for module in argv[1:]:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # an optional library that is not installed: its jobs will say so
            log.debug("preload of %s failed: %s", module, exc)
    write_frame(replies, READY)
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main(sys.argv[1:])
