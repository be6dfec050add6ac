from __future__ import annotations

import subprocess
import sys
import types

import openglm.knowledge


def test_every_public_name_is_exported() -> None:  # their order is ruff's (RUF022)
    public = {
        name
        for name, value in vars(openglm.knowledge).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)  # its submodules, once imported
    }
    assert set(openglm.knowledge.__all__) == public


def test_importing_the_package_loads_no_format_library() -> None:
    heavy = ["pypdf", "docx", "openpyxl", "trafilatura", "lxml", "charset_normalizer"]
    code = f"import sys, openglm.knowledge; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
