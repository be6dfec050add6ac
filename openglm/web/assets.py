"""The web app's static files, read once from the package: the shell page and versioned assets.

Every asset is served under ``/app/<version>/``, where the version is a hash of all the files, so browsers may
keep them forever; the shell (``/``) is revalidated on every load and names the current version. Modules import
each other by relative paths, so they stay under the same version without a build step."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
}
VERSION_MARK = "{{version}}"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class WebAssets:
    version: str
    shell: bytes
    files: dict[str, Asset]

    @classmethod
    def load(cls) -> WebAssets:
        root = resources.files(__package__) / "static"
        files = dict(_walk(root, ""))
        digest = hashlib.sha256()
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path].body + b"\0")
        version = digest.hexdigest()[:12]
        shell = files.pop("index.html").body.replace(VERSION_MARK.encode(), version.encode())
        return cls(version=version, shell=shell, files=files)

    def get(self, version: str, path: str) -> Asset | None:
        if version != self.version:
            return None
        return self.files.get(path)


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Asset]]:
    found: list[tuple[str, Asset]] = []
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found += _walk(entry, name + "/")
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if suffix in CONTENT_TYPES:
            found.append((name, Asset(entry.read_bytes(), CONTENT_TYPES[suffix])))
    return found
