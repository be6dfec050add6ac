"""``code_interpreter``: Python in the conversation's sandboxed kernel (``agent/sandbox``)."""

from __future__ import annotations

import base64
import mimetypes
import time
from pathlib import Path
from typing import Any

from ..sandbox.kernel import Execution
from ..sandbox.pool import KernelPool
from .base import AgentTool, ToolContext, ToolResult, agent_tools

# What the model reads back is cut to this; the client still gets every line in its logs output.
OBSERVATION_CHARS = 4000
# Files the code writes come back inline (data: URLs) up to this size in all.
ATTACH_BYTES = 5 * 1024 * 1024


@agent_tools.register("code_interpreter")
class CodeInterpreter(AgentTool):
    type = "code_interpreter"
    function_name = "python"
    input_argument = "code"

    def __init__(self, pool: KernelPool):
        self.pool = pool

    def definition(self, context: ToolContext) -> dict[str, Any]:
        return {
            "name": self.function_name,
            "description": (
                "Run Python in a stateful Jupyter kernel (variables persist between calls). The working "
                "directory holds the user's files; files you write there are returned to the user. "
                "matplotlib figures are shown automatically. There is no internet access."
            ),
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "Python code to run"}},
                "required": ["code"],
            },
        }

    def runs_here(self, context: ToolContext) -> bool:
        return bool(context.options.get("sandbox", "auto") != "none")

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        code = str(arguments.get("code", ""))
        async with self.pool.session(context.conversation) as kernel:
            before = _snapshot(kernel.workspace)
            started = time.time()
            execution = await kernel.execute(code)
            written = _written_since(kernel.workspace, before, started)
        return _result(execution, written)


def _snapshot(workspace: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in workspace.rglob("*") if p.is_file()}


def _written_since(workspace: Path, before: dict[Path, float], started: float) -> list[Path]:
    return sorted(p for p in workspace.rglob("*") if p.is_file() and (p not in before or p.stat().st_mtime > before[p]))


def _data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _result(execution: Execution, written: list[Path]) -> ToolResult:
    outputs: list[dict[str, Any]] = []
    notes: list[str] = []
    if execution.logs:
        outputs.append({"type": "logs", "logs": execution.logs})
    for image in execution.images:
        outputs.append({"type": "file", "file": _data_url(image, "image/png")})
    budget = ATTACH_BYTES
    for path in written:
        size = path.stat().st_size
        if size > budget:
            notes.append(f"[file {path.name} written, {size} bytes: too large to attach]")
            continue
        budget -= size
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        outputs.append({"type": "file", "file": _data_url(path.read_bytes(), media_type), "name": path.name})
        notes.append(f"[file {path.name} written and given to the user]")
    if execution.timed_out:
        notes.append("[the code ran past the time limit and was interrupted]")
    if execution.restarted:
        notes.append("[the kernel died (a resource limit or a kill) and was restarted; variables are gone]")
    if execution.images:
        notes.append(f"[{len(execution.images)} image(s) shown to the user]")
    observation = execution.logs[-OBSERVATION_CHARS:] + "".join(f"\n{n}" for n in notes)
    if not observation.strip():
        observation = "[no output]"
    return ToolResult(outputs=outputs or [{"type": "logs", "logs": ""}], observation=observation.strip())
