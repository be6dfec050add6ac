"""What may come back from a worker process: plain data and the classes registered here, nothing else.

A worker parses hostile bytes with C libraries (libxml2, libyaml, llama.cpp); if one of them were ever subverted,
its reply must not be able to run code in the server. Pickle runs code only through the globals it names, so the
reply is unpickled with ``find_class`` limited to the data classes registered with ``@transferable``.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, TypeVar

T = TypeVar("T", bound=type)

_TRANSFERABLE: dict[tuple[str, str], type] = {}


def transferable(cls: T) -> T:
    """Registers a plain data class (a dataclass without behaviour on construction) as a worker result type."""
    _TRANSFERABLE[(cls.__module__, cls.__qualname__)] = cls
    return cls


class _ResultUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        cls = _TRANSFERABLE.get((module, name))
        if cls is None:
            raise pickle.UnpicklingError(f"a worker may not send {module}.{name}")
        return cls


def load_result(data: bytes) -> Any:
    return _ResultUnpickler(io.BytesIO(data)).load()
