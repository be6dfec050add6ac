"""A labelled retrieval set generated from the Python standard library's own documentation.

Each document is one function's or class's docstring *without its summary line*, titled with its qualified name;
each question is that summary line ("Return a list of the words in the string..."), whose gold answer is the
document it was cut from. The summary never appears in its document, so a question is answered by what the
document says, in other words than the question's: neither exact-term search nor embeddings get it for free.
Real English prose, no download, the same set for a given Python version (its version is recorded).

Used by ``benchmarks/bench_retrieval_quality.py`` (retrieval alone, in process) and the ``retrieval`` eval suite
(through a server's API, with grounded answers); each question carries its module's topic, the suite's family.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
import sys
import warnings
from dataclasses import dataclass

MODULES = [
    "abc",
    "argparse",
    "array",
    "ast",
    "base64",
    "binascii",
    "bisect",
    "bz2",
    "calendar",
    "cmath",
    "codecs",
    "collections",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "dis",
    "email.utils",
    "enum",
    "errno",
    "filecmp",
    "fnmatch",
    "fractions",
    "functools",
    "gc",
    "getpass",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "inspect",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "math",
    "mimetypes",
    "numbers",
    "operator",
    "os",
    "os.path",
    "pathlib",
    "pickle",
    "pkgutil",
    "platform",
    "pprint",
    "queue",
    "random",
    "re",
    "reprlib",
    "sched",
    "secrets",
    "select",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "socket",
    "sqlite3",
    "ssl",
    "stat",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "sysconfig",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "timeit",
    "tokenize",
    "traceback",
    "types",
    "typing",
    "unicodedata",
    "urllib.parse",
    "uuid",
    "warnings",
    "weakref",
    "zipfile",
    "zlib",
]
# Each module's topic: what a question is about, so results can be read per area of the library.
TOPICS = {
    "text": "string textwrap re difflib unicodedata html keyword tokenize reprlib pprint locale gettext codecs shlex "
    "fnmatch",
    "data-formats": "json csv configparser base64 binascii struct pickle shelve email.utils mimetypes urllib.parse "
    "uuid array sqlite3",
    "compression": "bz2 gzip lzma zlib tarfile zipfile",
    "files-os": "os os.path pathlib shutil glob filecmp tempfile stat linecache getpass platform sysconfig errno",
    "numbers": "math cmath decimal fractions numbers random statistics secrets hashlib hmac",
    "time": "datetime time calendar sched timeit",
    "processes-network": "threading queue subprocess signal select socket ssl ipaddress",
    "language": "abc ast dis inspect types typing dataclasses enum functools itertools operator collections "
    "contextlib copy weakref gc warnings traceback pkgutil heapq bisect logging argparse",
}
TOPIC_OF = {module: topic for topic, modules in TOPICS.items() for module in modules.split()}
MIN_BODY_CHARS = 160
MAX_BODY_CHARS = 1200


@dataclass(frozen=True)
class Document:
    name: str  # the qualified name: also the file name
    text: str


@dataclass(frozen=True)
class Question:
    text: str
    gold: str  # the document's name
    topic: str = ""  # the gold's module's topic (TOPICS)


def _split(doc: str) -> tuple[str, str] | None:
    doc = inspect.cleandoc(doc)
    summary, _, body = doc.partition("\n\n")
    summary = " ".join(summary.split())
    body = body.strip()
    if len(summary.split()) < 5 or len(body) < MIN_BODY_CHARS:
        return None
    if summary.rstrip(".").lower() in body.lower():
        return None
    return summary, body[:MAX_BODY_CHARS]


def _members(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    found: list[tuple[str, object]] = []
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or not (
            inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value)
        ):
            continue
        found.append((f"{module_name}.{name}", value))
        if inspect.isclass(value):
            for method_name, method in sorted(vars(value).items()):
                # Methods another package patched in (transformers adds Logger.info_once when imported) would make
                # the corpus depend on what the process imported before.
                patched = getattr(method, "__module__", None) not in (None, value.__module__)
                if not method_name.startswith("_") and callable(method) and not patched:
                    found.append((f"{module_name}.{name}.{method_name}", method))
    return found


def corpus(questions: int = 400, seed: int = 7) -> tuple[list[Document], list[Question]]:
    documents: dict[str, Document] = {}
    candidates: list[Question] = []
    seen_summaries: set[str] = set()
    seen_bodies: set[str] = set()
    for module_name in MODULES:
        try:
            members = _members(module_name)
        except ImportError:
            continue
        for qualified, value in members:
            with warnings.catch_warnings():  # reading a deprecated alias' docstring (typing.io…) is not using it
                warnings.simplefilter("ignore", DeprecationWarning)
                doc = getattr(value, "__doc__", None)
            if not isinstance(doc, str):
                continue
            split = _split(doc)
            if split is None:
                continue
            summary, body = split
            key = re.sub(r"\W+", " ", body.lower())
            if key in seen_bodies or summary in seen_summaries:  # aliases and inherited docstrings: ambiguous gold
                continue
            seen_bodies.add(key)
            seen_summaries.add(summary)
            documents[qualified] = Document(qualified, f"# {qualified}\n\n{body}\n")
            candidates.append(Question(summary, qualified, TOPIC_OF[module_name]))
    picked = random.Random(seed).sample(candidates, min(questions, len(candidates)))
    return list(documents.values()), picked


def python_version() -> str:
    return sys.version.split()[0]
