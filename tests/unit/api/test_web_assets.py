"""The web app's files as the server holds them: a version over their contents, types, the shell's references."""

from __future__ import annotations

import re

from openglm.web.assets import CONTENT_TYPES, WebAssets


def test_every_asset_the_shell_and_modules_name_exists_under_the_version() -> None:
    assets = WebAssets.load()
    shell = assets.shell.decode()
    assert "{{version}}" not in shell
    named = re.findall(rf"/app/{assets.version}/([\w./-]+)", shell)
    assert {"main.js", "app.css", "icon.svg"} <= set(named)
    for path in named:
        assert assets.get(assets.version, path) is not None, path
    for path, asset in assets.files.items():
        if not path.endswith(".js"):
            continue
        folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        for target in re.findall(r"""(?:from|import\()\s*['"](\.{1,2}/[^'"]+)['"]""", asset.body.decode()):
            resolved = _resolve(folder, target)
            assert resolved in assets.files, f"{path} imports {target}"


def _resolve(folder: str, target: str) -> str:
    parts = [p for p in folder.split("/") if p]
    for piece in target.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


def test_version_is_stable_and_types_are_right() -> None:
    first, second = WebAssets.load(), WebAssets.load()
    assert first.version == second.version and re.fullmatch(r"[0-9a-f]{12}", first.version)
    assert first.get("0" * 12, "main.js") is None  # another version is not served
    assert first.get(first.version, "../assets.py") is None  # only the packaged static files
    for path, asset in first.files.items():
        assert asset.content_type == CONTENT_TYPES["." + path.rsplit(".", 1)[1]]


def test_no_script_builds_markup_from_strings() -> None:
    """Model text must never become HTML: no innerHTML, outerHTML, insertAdjacentHTML or document.write."""
    assets = WebAssets.load()
    for path, asset in assets.files.items():
        if path.endswith(".js"):
            body = asset.body.decode()
            for sink in ("innerHTML =", "outerHTML =", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in body, f"{path} uses {sink}"
