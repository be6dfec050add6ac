"""The layering of docs/architecture.md, checked on the imports: ``protocol/`` is the bottom layer (it imports
nothing of OpenGLM's outside itself), and nothing below the HTTP package imports it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "openglm"


def _imports(path: Path) -> list[str]:
    """The absolute module names ``path`` imports (relative imports resolved against its package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_protocol_imports_nothing_of_openglm_outside_itself() -> None:
    for path in (PACKAGE / "protocol").rglob("*.py"):
        outside = [n for n in _imports(path) if n.startswith("openglm.") and not n.startswith("openglm.protocol")]
        assert not outside, f"{path.name} imports {outside}"


def test_no_module_below_the_http_package_imports_it() -> None:
    above = {PACKAGE / "api", PACKAGE / "cli.py", PACKAGE / "__main__.py"}
    for path in PACKAGE.rglob("*.py"):
        if any(path == top or top in path.parents for top in above):
            continue
        upward = [n for n in _imports(path) if n == "openglm.api" or n.startswith("openglm.api.")]
        assert not upward, f"{path.relative_to(PACKAGE)} imports {upward}"


def test_no_route_imports_another_route() -> None:
    routes = PACKAGE / "api" / "routes"
    for path in routes.glob("*.py"):
        others = [
            n
            for n in _imports(path)
            if n.startswith("openglm.api.routes.") and not n.startswith(("openglm.api.routes._common",))
        ]
        assert not others, f"{path.name} imports {others}"


def test_routes_leave_metering_to_the_run_service() -> None:
    """Admission, binding and settlement of model calls happen in ``runs/metered.py``, not in a route."""
    for path in (PACKAGE / "api" / "routes").glob("*.py"):
        metering = [n for n in _imports(path) if n.startswith(("openglm.accounts.metering", "openglm.serving.usage"))]
        assert not metering, f"{path.name} imports {metering}"
