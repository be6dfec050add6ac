"""``code_interpreter``: Python in the conversation's sandboxed kernel (``agent/sandbox``)."""

from __future__ import annotations

import base64
import mimetypes
import os
import shutil
from dataclasses import replace
from typing import Any

from ...errors import StorageQuotaError
from ...files.store import FileStore
from ..sandbox.cgroups import Limits
from ..sandbox.kernel import Execution, SandboxedKernel
from ..sandbox.policy import MiB, SandboxPolicy
from ..sandbox.pool import KernelPool
from ..sandbox.workspace import FileOut
from .base import AgentTool, ToolContext, ToolResources, ToolResult, ToolUnavailable, agent_tools

# What the model reads back is cut to this; the client still gets every line in its logs output.
OBSERVATION_CHARS = 4000
# Files the code writes are returned up to this size each.
ATTACH_BYTES = 5 * 1024 * 1024
PURPOSE = "code-interpreter"
MAX_FILES = 20  # files returned from one run
STATE_LOST = (
    "[this conversation's kernel had been idle and was given to another conversation (the sandbox is full): "
    "this ran in a new kernel; earlier variables and files are gone]"
)


@agent_tools.register("code_interpreter")
class CodeInterpreter(AgentTool):
    type = "code_interpreter"
    function_name = "python"
    input_argument = "code"

    def __init__(self, pool: KernelPool, files: FileStore | None = None):
        self.pool = pool
        self.files = files

    @classmethod
    async def open(cls, resources: ToolResources) -> CodeInterpreter:
        reason = sandbox_unavailable()
        if reason is not None:
            raise ToolUnavailable(reason)
        settings = resources.settings
        policy = replace(
            SandboxPolicy(),
            timeout=settings.sandbox_timeout,
            memory_bytes=settings.sandbox_memory_mb * MiB,
            cpus=settings.sandbox_cpus,
            workspace_bytes=settings.sandbox_workspace_mb * MiB,
            workspace_files=settings.sandbox_workspace_files,
        )
        # The catalog holds API keys; the master key file opens every sealed key secret.
        hidden = [str(settings.data_dir), str(settings.models_file.resolve()), str(settings.secret_key_file.resolve())]
        pool = KernelPool(
            policy,
            settings.data_dir / "sandboxes",
            warm=min(settings.sandbox_warm, settings.sandbox_max_kernels),
            max_kernels=settings.sandbox_max_kernels,
            idle_seconds=settings.sandbox_idle_minutes * 60,
            hidden=hidden,
            kernels_per_account=settings.sandbox_kernels_per_account,
            queue_seconds=settings.sandbox_queue_seconds,
            total=_total_limits(settings.sandbox_total_cpus, settings.sandbox_total_memory_mb),
        )
        await pool.start()
        return cls(pool, resources.files)

    async def close(self) -> None:
        await self.pool.close()

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
        async with self.pool.session(context.conversation, context.account_id) as kernel:
            lost = self.pool.state_lost(context.conversation)
            await self._attach(context, kernel)
            before = await kernel.workspace_listing()
            execution = await kernel.execute(code)
            written, more = await kernel.written_since(before, limit=ATTACH_BYTES, max_files=MAX_FILES)
        links, unpublished = await self._publish(context, execution, written)
        result = _result(execution, written, more, links, unpublished)
        if lost:
            result.observation = f"{STATE_LOST}\n{result.observation}"
        return result

    async def _attach(self, context: ToolContext, kernel: SandboxedKernel) -> None:
        """The request's ``file_ids`` appear in the workspace under their names (once per conversation)."""
        if self.files is None:
            return
        for file_id in context.options.get("file_ids") or []:
            record, data = await self.files.content(context.account_id, str(file_id))
            await kernel.attach(record.filename, data)

    async def _publish(
        self, context: ToolContext, execution: Execution, written: list[FileOut]
    ) -> tuple[list[tuple[str, str]] | None, list[str]]:
        """Images and written files as files of the account, as (name, link through the files API) (None: no
        store), and the names of those the account's storage quota had no room for (the run itself still
        succeeds)."""
        files = self.files
        if files is None:
            return None, []
        links: list[tuple[str, str]] = []
        unpublished: list[str] = []

        async def publish(name: str, data: bytes, media_type: str) -> None:
            try:
                record = await files.create(context.account_id, PURPOSE, name, data, media_type)
            except StorageQuotaError:
                unpublished.append(name)
                return
            links.append((name, f"{context.base_url}v1/files/{record.id}/content"))

        for n, image in enumerate(execution.images):
            await publish(f"image-{n}.png", image, "image/png")
        for output in written:
            if output.data is not None:
                media_type = mimetypes.guess_type(output.name)[0] or "application/octet-stream"
                await publish(output.name, output.data, media_type)
        return links, unpublished


def _data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _note(output: FileOut, refused: set[str]) -> str:
    if output.data is not None and output.name in refused:
        return f"[file {output.name} written but not published: the account's storage quota is full]"
    if output.data is not None:
        return f"[file {output.name} written and given to the user]"
    if output.size > ATTACH_BYTES:
        return f"[file {output.name} written, {output.size} bytes: too large to return]"
    return f"[file {output.name} written, but it changed while it was being read: not returned]"


def _result(
    execution: Execution,
    written: list[FileOut],
    more: int = 0,
    links: list[tuple[str, str]] | None = None,
    unpublished: list[str] | None = None,
) -> ToolResult:
    """Outputs for the client and an observation for the model. ``written``: the files the run wrote, read
    already (by the kernel's descriptor discipline; nothing here touches the workspace); ``more``: how many
    others it wrote beyond those. ``links``: the images and files already published through the files API, with
    their names (which say an image from another file); None: return them inline as data: URLs.
    ``unpublished``: names the storage quota had no room for."""
    outputs: list[dict[str, Any]] = [{"type": "logs", "logs": execution.logs}] if execution.logs else []
    refused = set(unpublished or [])
    notes = [_note(output, refused) for output in written]
    if more:
        notes.append(f"[{more} more files written: only the first {MAX_FILES} are returned]")
    if links is not None:
        outputs.extend({"type": "file", "file": link, "name": name} for name, link in links)
    else:
        outputs.extend({"type": "file", "file": _data_url(image, "image/png")} for image in execution.images)
        for output in written:
            if output.data is not None:
                media_type = mimetypes.guess_type(output.name)[0] or "application/octet-stream"
                outputs.append({"type": "file", "file": _data_url(output.data, media_type), "name": output.name})
    images_refused = sum(1 for n in range(len(execution.images)) if f"image-{n}.png" in refused)
    if len(execution.images) > images_refused:
        notes.append(f"[{len(execution.images) - images_refused} image(s) shown to the user]")
    if images_refused:
        notes.append(f"[{images_refused} image(s) not published: the account's storage quota is full]")
    if execution.timed_out:
        notes.append("[the code ran past the time limit and was interrupted]")
    if execution.restarted:
        notes.append("[the kernel died (a resource limit or a kill) and was restarted; variables are gone]")
    observation = (execution.logs[-OBSERVATION_CHARS:] + "".join(f"\n{n}" for n in notes)).strip()
    return ToolResult(outputs=outputs or [{"type": "logs", "logs": ""}], observation=observation or "[no output]")


def _total_limits(cpus: float, memory_mb: int) -> Limits | None:
    """The pool's overall limits from the settings (0: none)."""
    if not cpus and not memory_mb:
        return None
    return Limits(memory_bytes=memory_mb * MiB or None, cpus=cpus or None, processes=None)


def sandbox_unavailable() -> str | None:
    """Why sandboxed kernels cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "the server is not running as root (needed for namespaces and per-kernel uids)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    if shutil.which("setpriv") is None:
        return "util-linux's setpriv is not installed"
    return None
