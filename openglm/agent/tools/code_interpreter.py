"""``code_interpreter``: Python in the conversation's sandboxed kernel (``agent/sandbox``)."""

from __future__ import annotations

import base64
import mimetypes
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import StorageQuotaError
from ...files.store import FileStore
from ..sandbox.kernel import Execution
from ..sandbox.policy import MiB, SandboxPolicy
from ..sandbox.pool import KernelPool
from .base import AgentTool, ToolContext, ToolResources, ToolResult, ToolUnavailable, agent_tools

# What the model reads back is cut to this; the client still gets every line in its logs output.
OBSERVATION_CHARS = 4000
# Files the code writes are returned up to this size each.
ATTACH_BYTES = 5 * 1024 * 1024
PURPOSE = "code-interpreter"
MAX_FILES = 20  # files returned from one run


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
        async with self.pool.session(context.conversation) as kernel:
            await self._attach(context, kernel.workspace, kernel.uid)
            before = _regular_files(kernel.workspace)
            execution = await kernel.execute(code)
            written = _written_since(kernel.workspace, before)
        links, unpublished = await self._publish(context, execution, written)
        return _result(execution, written, links, unpublished)

    async def _attach(self, context: ToolContext, workspace: Path, uid: int) -> None:
        """The request's ``file_ids`` appear in the workspace under their names (once per conversation)."""
        if self.files is None:
            return
        for file_id in context.options.get("file_ids") or []:
            record, data = await self.files.content(context.account_id, str(file_id))
            _create_in(workspace, record.filename, data, uid)

    async def _publish(
        self, context: ToolContext, execution: Execution, written: list[Path]
    ) -> tuple[list[str] | None, list[str]]:
        """Images and written files as files of the account, linked through the files API (None: no store), and
        the names of those the account's storage quota had no room for (the run itself still succeeds)."""
        files = self.files
        if files is None:
            return None, []
        links: list[str] = []
        unpublished: list[str] = []

        async def publish(name: str, data: bytes, media_type: str) -> None:
            try:
                record = await files.create(context.account_id, PURPOSE, name, data, media_type)
            except StorageQuotaError:
                unpublished.append(name)
                return
            links.append(f"{context.base_url}v1/files/{record.id}/content")

        for n, image in enumerate(execution.images):
            await publish(f"image-{n}.png", image, "image/png")
        for path in written[:MAX_FILES]:
            data = _read_regular(path)
            if data is not None:
                await publish(path.name, data, mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        return links, unpublished


def _regular_files(workspace: Path) -> dict[Path, float]:
    """Regular files in the workspace (by lstat: the kernel's symlinks and hard links to anything else are not
    followed, or the server, reading as root, would hand out host files)."""
    found = {}
    for directory, _dirs, names in os.walk(workspace, followlinks=False):
        for name in names:
            path = Path(directory) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                found[path] = info.st_mtime
    return found


def _written_since(workspace: Path, before: dict[Path, float]) -> list[Path]:
    return sorted(p for p, mtime in _regular_files(workspace).items() if p not in before or mtime > before[p])


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is still a regular, singly linked file when opened (no symlink race)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size > ATTACH_BYTES:
            return None
        return handle.read(ATTACH_BYTES + 1)[:ATTACH_BYTES]


def _create_in(workspace: Path, filename: str, data: bytes, uid: int) -> None:
    """A new file in the workspace, never through a link the kernel left there, owned by the kernel's uid."""
    name = Path(filename).name
    if name in ("", ".", ".."):
        return
    directory = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory)
    except FileExistsError:
        return  # attached before (or the kernel made something by that name): leave it
    finally:
        os.close(directory)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        os.fchown(handle.fileno(), uid, uid)


def _data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _result(
    execution: Execution, written: list[Path], links: list[str] | None = None, unpublished: list[str] | None = None
) -> ToolResult:
    """Outputs for the client and an observation for the model. ``links``: the images and files (those within
    the size limit) already published through the files API; None: return them inline as data: URLs.
    ``unpublished``: names the storage quota had no room for."""
    outputs: list[dict[str, Any]] = [{"type": "logs", "logs": execution.logs}] if execution.logs else []
    notes: list[str] = []
    refused = set(unpublished or [])
    small = [p for p in written if p.stat().st_size <= ATTACH_BYTES]
    for path in written:
        if path.name in refused:
            notes.append(f"[file {path.name} written but not published: the account's storage quota is full]")
        elif path in small:
            notes.append(f"[file {path.name} written and given to the user]")
        else:
            notes.append(f"[file {path.name} written, {path.stat().st_size} bytes: too large to return]")
    if links is not None:
        outputs.extend({"type": "file", "file": link} for link in links)
    else:
        outputs.extend({"type": "file", "file": _data_url(image, "image/png")} for image in execution.images)
        for path in small[:MAX_FILES]:
            data = _read_regular(path)
            if data is not None:
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                outputs.append({"type": "file", "file": _data_url(data, media_type), "name": path.name})
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


def sandbox_unavailable() -> str | None:
    """Why sandboxed kernels cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "the server is not running as root (needed for namespaces and per-kernel uids)"
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    return None
