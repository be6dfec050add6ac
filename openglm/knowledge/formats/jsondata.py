"""JSON: readable lines, ``key.path: value``; an array of flat objects (records) becomes a table.

Each element of an array of objects is a block of its own, so a chunk boundary never falls inside a record that
fits in a chunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...errors import DocumentError, InvalidFieldError
from ...untrusted.loaders import load_json
from ..document import DocumentBuilder, ParsedDocument
from .base import decode_text, document_format


@document_format("json", suffixes=(".json",), media_types=("application/json",))
def parse_json(data: bytes, max_chars: int) -> ParsedDocument:
    text = decode_text(data)
    try:
        value = load_json(text, what="the JSON document")
    except json.JSONDecodeError as exc:
        raise DocumentError("corrupt", f"the file could not be read as JSON ({type(exc).__name__})") from exc
    except InvalidFieldError as exc:  # nested too deeply to walk
        raise DocumentError("too_complex", exc.message) from None
    writer = _JsonWriter(DocumentBuilder(max_chars))
    writer.write(value, "")
    writer.flush()
    return writer.builder.build("json", data)


@dataclass
class _JsonWriter:
    builder: DocumentBuilder
    lines: list[str] = field(default_factory=list)  # the block being gathered

    def write(self, value: Any, path: str) -> None:
        if is_record_list(value):
            self.flush()
            if path:
                self.builder.heading(path, 1)
            header = list(dict.fromkeys(key for record in value for key in record))
            self.builder.table(
                header, [[scalar_text(record[key]) if key in record else "" for key in header] for record in value]
            )
        elif isinstance(value, dict):
            for key, item in value.items():
                self.write(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.write(item, f"{path}[{index}]")
                if isinstance(item, dict | list):
                    self.flush()
        else:
            self.lines.append(f"{path}: {scalar_text(value)}" if path else scalar_text(value))

    def flush(self) -> None:
        self.builder.text("\n".join(self.lines))
        self.lines = []


def is_record_list(value: Any) -> bool:
    """A non-empty array of objects whose values are all scalars: a table in all but name."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and item for item in value)
        and all(not isinstance(v, dict | list) for item in value for v in item.values())
    )


def scalar_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
