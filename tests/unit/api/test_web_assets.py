"""The web app's files as the server holds them: a version over their contents, types, the shell's references."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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


def test_urls_from_the_server_go_through_safe_url_before_an_href_or_a_src() -> None:
    """chat/render.js and chat/text.js put tool and model URLs in href/src only through url.js's safeUrl."""
    assets = WebAssets.load()
    for path in ("chat/render.js", "chat/text.js"):
        body = assets.files[path].body.decode()
        assert "import { safeUrl } from '../url.js'" in body, path
        for unchecked in ("href: item.", "src: item.", "href: match["):
            assert unchecked not in body, f"{path}: {unchecked}"
    render = assets.files["chat/render.js"].body.decode()
    assert render.count("= safeUrl(raw") == 2  # picture() and download(): the raw URL is checked first


SAFE_URL_CASES = {
    "https://example.org/a?b=c": "https://example.org/a?b=c",
    "http://example.org/": "http://example.org/",
    "/v1/files/file_1/content": "https://openglm.test/v1/files/file_1/content",
    "  https://example.org/x  ": "https://example.org/x",
    "blob:https://openglm.test/1234": "blob:https://openglm.test/1234",
    "javascript:alert(1)": None,
    " JavaScript:alert(1)": None,
    "vbscript:msgbox(1)": None,
    "data:text/html,<script>alert(1)</script>": None,
    "data:image/png;base64,iVBORw0KGgo=": None,  # not as a link; only as a picture, below
    "": None,
    "http://[::1": None,  # not a URL
}


def test_safe_url_lets_through_http_blob_and_this_origins_paths_only(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node to run the module with")
    module = tmp_path / "url.mjs"
    module.write_bytes(WebAssets.load().files["url.js"].body)
    script = tmp_path / "check.mjs"
    script.write_text(
        "globalThis.location = { href: 'https://openglm.test/#/chat' };\n"
        f"const {{ safeUrl }} = await import({json.dumps(module.as_uri())});\n"
        f"const cases = {json.dumps(list(SAFE_URL_CASES))};\n"
        "console.log(JSON.stringify({\n"
        "  links: cases.map((c) => safeUrl(c)),\n"
        "  pictures: ['data:image/png;base64,iVBORw0KGgo=', 'data:image/svg+xml,<svg/>', 'javascript:1']"
        ".map((c) => safeUrl(c, { image: true })),\n"
        "  odd: [null, undefined, 42, {}].map((c) => safeUrl(c)),\n"
        "}));\n"
    )
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(done.stdout)
    assert dict(zip(SAFE_URL_CASES, result["links"], strict=True)) == SAFE_URL_CASES
    assert result["pictures"] == ["data:image/png;base64,iVBORw0KGgo=", None, None]
    assert result["odd"] == [None, None, None, None]
