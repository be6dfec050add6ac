"""Functions the pool tests run in worker processes (a worker imports them by name)."""

from __future__ import annotations

import ctypes
import os
import time

from openglm.errors import DocumentError, InvalidFieldError


def double(value: int) -> int:
    return value * 2


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def allocate(mib: int) -> int:
    block = bytearray(mib * 1024 * 1024)
    return len(block)


def segfault() -> None:
    ctypes.string_at(0)


def refuse_document() -> None:
    raise DocumentError("corrupt", "the file is damaged")


def refuse_field() -> None:
    raise InvalidFieldError("that field is wrong")


def pid() -> int:
    return os.getpid()


def unsendable() -> object:
    return os.system  # a reply naming a function: a worker may not send it


def broken() -> None:
    raise ValueError("a bug")
