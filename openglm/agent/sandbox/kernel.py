"""One sandboxed IPython kernel: started in its namespaces, spoken to over Unix sockets, run with a timeout."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import platform
import queue
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import seccomp
from .cgroups import KernelCgroup
from .enter import (
    MS_NODEV,
    MS_NOSUID,
    SandboxSpec,
    child_setup,
    kernel_environment,
    mount,
    sandbox_command,
    umount,
)
from .policy import SandboxPolicy
from .workspace import FileOut, Stamp, WorkspaceFiles

log = logging.getLogger(__name__)

INSIDE_IPC = "/mnt/ipc"
PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Beyond the data directory: homes, sockets of local services (PostgreSQL's trusts its Unix socket), their data,
# and the cgroup tree (the kernel has joined its own by then; the others' names and pids are not its business).
DEFAULT_HIDDEN = ("/root", "/home", "/run", "/var/run", "/var/lib", "/var/log", "/srv", "/sys/fs/cgroup")
INTERRUPT_GRACE = 5.0
STRAGGLER_SECONDS = 5.0  # how long the end of a run keeps killing what the run left running
MAX_OUTPUT_BYTES = 1024 * 1024
MAX_IMAGES = 20


class KernelStartError(RuntimeError):
    pass


@dataclass
class Execution:
    """What one run of code produced."""

    logs: str = ""
    images: list[bytes] = field(default_factory=list)
    error: str | None = None  # "NameError: name 'x' is not defined"
    timed_out: bool = False
    # The kernel died (memory, CPU limit, killed) or had to be killed; a new one replaced it, state is gone.
    restarted: bool = False
    # CPU time the kernel and everything it started used during the run (None: no cgroup CPU accounting).
    cpu_seconds: float | None = None


@dataclass
class _Collector:
    parts: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    error: str | None = None

    size: int = 0

    def take(self, msg: dict[str, Any]) -> None:
        """Collect, up to a cap: code printing without end must not fill the server's memory."""
        kind, content = msg["msg_type"], msg["content"]
        if self.size > MAX_OUTPUT_BYTES or len(self.images) >= MAX_IMAGES:
            return
        self.size += len(json.dumps(content)) if kind != "stream" else len(content.get("text", ""))
        if self.size > MAX_OUTPUT_BYTES:
            self.parts.append("\n[output truncated: more than 1 MB]\n")
            return
        if kind == "stream":
            self.parts.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            data = content.get("data", {})
            if "image/png" in data:
                self.images.append(base64.b64decode(data["image/png"]))
            elif "text/plain" in data:
                self.parts.append(data["text/plain"] + "\n")
        elif kind == "error":
            self.error = f"{content['ename']}: {content['evalue']}"
            self.parts.append(ANSI.sub("", "\n".join(content.get("traceback", []))) + "\n")


class SandboxedKernel:
    def __init__(
        self,
        policy: SandboxPolicy,
        workspace: Path,
        uid: int,
        hidden: list[str],
        cgroup: KernelCgroup | None = None,
    ):
        self.policy = policy
        self.workspace = workspace
        self.uid = uid
        self.hidden = [*hidden, *DEFAULT_HIDDEN, *policy.hidden_paths]
        # Limits for the kernel and all it starts, its freezer, and the list of its processes (None: no cgroups
        # on this host, rlimits only). The pool made it; the kernel removes it when it shuts down.
        self.cgroup = cgroup
        self.ipc_dir = Path(tempfile.mkdtemp(prefix="ogk-"))  # short: Unix socket paths max out at 108 bytes
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Any = None
        self.started_at = 0.0
        self.files: WorkspaceFiles | None = None  # the workspace, by descriptor, once mounted
        # The namespace's init (bwrap's, reaping) and the IPython process, in the server's view: a kernel's
        # processes other than these and the bwrap that started them are what a run left behind.
        self.init_pid: int | None = None
        self.kernel_pid: int | None = None
        # Between runs the kernel is suspended: its cgroup frozen, nothing of it runs (``suspend``/``resume``).
        self.suspended = False
        self._cpu_at_resume: float | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, timeout: float = 60.0) -> None:
        from jupyter_client.asynchronous.client import AsyncKernelClient

        self._mount_workspace()
        for path in (self.workspace, self.ipc_dir):
            os.chown(path, self.uid, self.uid)
            path.chmod(0o700)
        # Taken before the kernel exists: from here on the server reaches the workspace only through it.
        self.files = WorkspaceFiles(self.workspace)
        key = secrets.token_hex(16)
        self._write_connection_file(key)
        filter_fd = _seccomp_fd()
        # bwrap reads its options from a memfd rather than its command line: the namespace's init is a fork of
        # bwrap, and its /proc/1/cmdline, which the kernel can read, would list the host paths the sandbox hides.
        args_fd, command = _command_by_descriptor(sandbox_command(self._spec(), seccomp_fd=filter_fd))
        passed = (args_fd,) if filter_fd is None else (args_fd, filter_fd)
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=self._child_setup(),  # system calls only: nothing in the child waits on a lock
                pass_fds=passed,
            )
        finally:
            for fd in passed:
                os.close(fd)
        self.client = AsyncKernelClient()
        self.client.load_connection_info(self._connection(key, str(self.ipc_dir)))
        self.client.start_channels()
        try:
            await self._wait_until_ready(timeout)
            # Liveness from here on is the process (``alive``) and each run's deadline. A frozen kernel misses
            # heartbeats, and the heartbeat channel would reconnect every second it is suspended.
            self.client.hb_channel.pause()
            self._find_kernel_pid()
            self._lock_sockets()
        except (RuntimeError, TimeoutError, KernelStartError) as exc:
            detail = self._stderr()
            await self.shutdown()
            raise KernelStartError(f"sandboxed kernel did not start: {exc}; {detail}") from None
        self.started_at = time.monotonic()
        await self.suspend()  # until its first run

    def _find_kernel_pid(self) -> None:
        """The namespace's init (bwrap's reaper, a child of the bwrap we started) and the kernel (its child):
        what the end of a run must not kill. A kernel whose processes cannot be told from those its code starts
        could not have its stragglers stopped, so it is not used."""
        assert self.process is not None
        self.init_pid = _only_child(self.process.pid)
        self.kernel_pid = _only_child(self.init_pid) if self.init_pid is not None else None
        if self.kernel_pid is None:
            log.warning("sandbox uid %d: cannot find the kernel's process below bwrap %d", self.uid, self.process.pid)
            raise KernelStartError("cannot tell the kernel's own processes from those its code would start")

    def _lock_sockets(self) -> None:
        """Once the kernel has bound its sockets (before any code of the user's runs), the socket directory
        becomes root's: the kernel can no longer rename, replace or add an entry there. Otherwise the kernel's
        code could swap a socket for a symlink to a host Unix socket, and the server's libzmq, reconnecting by
        path as root, would connect there (a confused deputy). Each socket is checked to be the kernel's own."""
        for port in PORTS.values():
            path = self.ipc_dir / f"k-{port}"
            try:
                info = os.lstat(path)
            except OSError as exc:
                raise KernelStartError(f"the kernel's socket {path.name} is missing: {exc}") from None
            if not stat.S_ISSOCK(info.st_mode) or info.st_uid != self.uid:
                raise KernelStartError(f"{path.name} in the kernel's socket directory is not the kernel's socket")
        os.chown(self.ipc_dir, 0, 0)
        self.ipc_dir.chmod(0o755)

    async def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self.client.wait_for_ready(timeout=max(left, 0.1)), max(left, 0.1) + 1)
                return
            except RuntimeError:
                # jupyter-client calls a kernel dead when one heartbeat (1 s) goes unanswered, which a kernel
                # still importing on a loaded machine can miss: while its process lives, ask again.
                if not self.alive or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.1)

    def _mount_workspace(self) -> None:
        """The workspace is a tmpfs of its own, so the kernel's files are bounded in bytes and in number: a
        disk-filling loop hits ENOSPC in its own workspace, not the server's disk."""
        self.workspace.mkdir(parents=True, exist_ok=True)
        options = (
            f"mode=0700,uid={self.uid},gid={self.uid},"
            f"size={self.policy.workspace_bytes},nr_inodes={self.policy.workspace_files}"
        )
        try:
            mount("tmpfs", str(self.workspace), "tmpfs", MS_NOSUID | MS_NODEV, options)
        except OSError as exc:
            raise KernelStartError(f"cannot give the sandbox its workspace: {exc}") from None

    def unmount_workspace(self) -> None:
        """Unmount the workspace (and everything the kernel wrote with it), leaving its empty mount point for the
        pool to remove when no kernel is starting (``KernelPool._remove_when_no_kernel_starts``)."""
        if self.files is not None:
            self.files.close()
            self.files = None
        with contextlib.suppress(OSError):
            umount(str(self.workspace))

    def _spec(self) -> SandboxSpec:
        python = sys.executable
        return SandboxSpec(
            workspace=str(self.workspace),
            ipc_dir=str(self.ipc_dir),
            uid=self.uid,
            argv=[
                python,
                "-m",
                "ipykernel_launcher",
                "-f",
                f"{INSIDE_IPC}/kernel.json",
                "--HistoryManager.enabled=False",
                "--matplotlib=inline",
            ],
            hide=self.hidden,
            keep=sorted({sys.base_prefix, sys.prefix, str(Path(python).resolve().parent.parent)}),
            tmp_bytes=self.policy.tmp_bytes,
            env=kernel_environment(python),
        )

    def _child_setup(self) -> Callable[[], None]:
        policy = self.policy
        limits = {
            "memory_bytes": policy.memory_bytes,
            "cpu_seconds": policy.cpu_seconds,
            "processes": policy.processes,
            "file_bytes": policy.file_bytes,
            "open_files": policy.open_files,
        }
        return child_setup(self.cgroup.join_files if self.cgroup is not None else [], limits)

    def _connection(self, key: str, directory: str) -> dict[str, Any]:
        return {
            "transport": "ipc",
            "ip": f"{directory}/k",
            **PORTS,
            "key": key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }

    def _write_connection_file(self, key: str) -> None:
        path = self.ipc_dir / "kernel.json"
        path.write_text(json.dumps(self._connection(key, INSIDE_IPC)))
        os.chown(path, self.uid, self.uid)
        path.chmod(0o600)

    def _stderr(self) -> str:
        if self.process is None or self.process.poll() is None or self.process.stderr is None:
            return "still running"
        return self.process.stderr.read().decode(errors="replace")[-2000:]

    async def execute(self, code: str, timeout: float | None = None) -> Execution:
        """Run ``code``; the kernel runs (thawed) only meanwhile, and is suspended again before this returns."""
        timeout = self.policy.timeout if timeout is None else timeout
        await self.resume()
        started = time.monotonic()
        msg_id = self.client.execute(code, store_history=True, allow_stdin=False, stop_on_error=True)
        collector = _Collector()
        try:
            finished = await self._collect(msg_id, collector, time.monotonic() + timeout)
        except asyncio.CancelledError:  # the request went away: stop the code rather than let it run on
            await self._stop(msg_id, collector)
            raise
        result = Execution(images=collector.images, error=collector.error)
        if finished:
            await self.suspend()
        elif self.alive:
            result.timed_out = True
            result.restarted = not await self._stop(msg_id, collector)
        else:
            result.restarted = True
            await self.shutdown()  # it died: the next run gets a new kernel
        result.logs = "".join(collector.parts)
        result.error = collector.error or result.error
        result.cpu_seconds = self._cpu_since_resume()
        self._log_run(result, time.monotonic() - started)
        return result

    async def _stop(self, msg_id: str, collector: _Collector) -> bool:
        """Interrupt the running code and give the kernel a grace period to come back, then suspend it; one deaf
        to the interrupt is shut down (the next run gets a new kernel). True if it came back. Waiting here also
        keeps the interrupt from being left pending in a frozen kernel, to hit the next run's code."""
        await self.interrupt()
        if await self._collect(msg_id, collector, time.monotonic() + INTERRUPT_GRACE):
            await self.suspend()
            return True
        await self.shutdown()
        return False

    def _cpu_since_resume(self) -> float | None:
        now = self._cpu_seconds()
        if now is None or self._cpu_at_resume is None:
            return None
        return max(0.0, now - self._cpu_at_resume)

    def _cpu_seconds(self) -> float | None:
        if self.cgroup is None:
            return None
        try:
            return self.cgroup.cpu_seconds()
        except (OSError, ValueError):
            return None

    def _log_run(self, result: Execution, wall: float) -> None:
        """One line per run for operators: what it cost the machine (the cgroup's accounting)."""
        peak = None
        if self.cgroup is not None and not result.restarted:
            with contextlib.suppress(OSError, ValueError):
                peak = self.cgroup.memory_peak()
        cpu = "?" if result.cpu_seconds is None else f"{result.cpu_seconds:.2f}"
        log.info(
            "sandbox uid %d: run of %.2f s used %s CPU-s; kernel memory peak %s MiB%s%s",
            self.uid,
            wall,
            cpu,
            "?" if peak is None else peak // (1024 * 1024),
            "; timed out" if result.timed_out else "",
            "; restarted" if result.restarted else "",
        )

    async def _collect(self, msg_id: str, collector: _Collector, deadline: float) -> bool:
        """Read this execution's output until the kernel is idle again; False if the deadline or death came first."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.alive:
                return False
            try:
                msg = await self.client.get_iopub_msg(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return True
            collector.take(msg)

    async def resume(self) -> None:
        """Let the kernel's processes run again: a run starts."""
        self._cpu_at_resume = self._cpu_seconds()
        if self.cgroup is not None and self.suspended:
            try:
                self.cgroup.thaw()  # one write to the cgroup's file: immediate
            except OSError as exc:
                log.error("could not thaw sandbox uid %d (its run will time out and it is replaced): %s", self.uid, exc)
        self.suspended = False

    async def suspend(self) -> None:
        """Stop the kernel between runs: kill what the run left running (every process of the kernel but bwrap,
        its init and the kernel's own) and freeze the kernel's cgroup, so nothing of it — a thread the code left
        in the kernel's own process included — runs until the next ``resume``. Without cgroups the stragglers
        are killed and threads in the kernel's process go on (bounded by its rlimits)."""
        if self.suspended or not self.alive:
            return
        await asyncio.get_running_loop().run_in_executor(None, self._suspend)
        self.suspended = True

    def _suspend(self) -> None:
        assert self.process is not None and self.init_pid is not None and self.kernel_pid is not None
        own = {self.process.pid, self.init_pid, self.kernel_pid}
        deadline = time.monotonic() + STRAGGLER_SECONDS
        while True:
            self._freeze()  # nothing forks between the listing and the kill
            stragglers = self._processes() - own
            if not stragglers:
                return  # frozen, and only the kernel is left
            for pid in stragglers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                log.warning("sandbox uid %d: processes outlived their run: %s", self.uid, sorted(stragglers))
                return  # frozen: on v1 the killed die when it is thawed, before running any more code
            # A killed task of a frozen v1 cgroup dies only once thawed (v2's die frozen); then look again.
            self._thaw()
            time.sleep(0.005)

    def _freeze(self) -> None:
        if self.cgroup is None:
            return
        try:
            if not self.cgroup.freeze():
                log.warning("sandbox uid %d did not freeze within its time", self.uid)
        except OSError as exc:
            log.warning("could not freeze sandbox uid %d: %s", self.uid, exc)

    def _thaw(self) -> None:
        if self.cgroup is None:
            return
        try:
            self.cgroup.thaw()
        except OSError as exc:
            log.error("could not thaw sandbox uid %d: %s", self.uid, exc)

    def _processes(self) -> set[int]:
        """The kernel's processes that have not ended (zombies, which the cgroup never lists, are left out)."""
        if self.cgroup is not None:
            return self.cgroup.pids()
        return {pid for pid in processes_of(self.uid) if not _is_zombie(pid)}

    async def workspace_listing(self) -> dict[str, Stamp]:
        files = self._workspace_files()
        return await asyncio.get_running_loop().run_in_executor(None, files.listing)

    async def written_since(self, before: dict[str, Stamp], *, limit: int, max_files: int) -> tuple[list[FileOut], int]:
        """The files the last run wrote, read while the kernel is suspended (frozen, where cgroups allow): its
        threads and processes cannot rename anything meanwhile. The reads are safe without the freeze too
        (``workspace.py``); the freeze makes what is returned the workspace as the run left it."""
        await self.suspend()
        files = self._workspace_files()
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: files.written_since(before, limit=limit, max_files=max_files)
        )

    async def attach(self, filename: str, data: bytes) -> None:
        """``filename``'s base name in the workspace's root, holding ``data``, the kernel's own; skipped when the
        name is taken (attached before, or something the kernel made)."""
        name = Path(filename).name
        if name in ("", ".", ".."):
            return
        files = self._workspace_files()
        await asyncio.get_running_loop().run_in_executor(None, files.create, name, data, self.uid)

    def _workspace_files(self) -> WorkspaceFiles:
        if self.files is None:
            raise KernelStartError("the kernel has no workspace")
        return self.files

    async def interrupt(self) -> None:
        """Jupyter's interrupt message; the kernel raises KeyboardInterrupt in the running code."""
        msg = self.client.session.msg("interrupt_request", {})
        self.client.control_channel.send(msg)

    async def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        loop = asyncio.get_running_loop()
        if self.cgroup is not None:
            # Killed first, then thawed: a frozen v1 task cannot die (nor can bwrap, which is in the cgroup too).
            await loop.run_in_executor(None, self._kill_cgroup)
        if self.process is not None and self.process.poll() is None:
            # The bwrap we started leads its session; its init in the namespace has a parent-death signal
            # (--die-with-parent), and every process of the namespace dies with that init.
            os.killpg(self.process.pid, signal.SIGKILL)
            await loop.run_in_executor(None, self.process.wait)
        await loop.run_in_executor(None, wait_until_gone, self.uid)
        if self.cgroup is not None:
            cgroup, self.cgroup = self.cgroup, None
            await loop.run_in_executor(None, remove_cgroup, cgroup)
        shutil.rmtree(self.ipc_dir, ignore_errors=True)

    def _kill_cgroup(self) -> None:
        assert self.cgroup is not None
        try:
            self.cgroup.kill_all()
        except OSError as exc:
            log.warning("could not kill sandbox uid %d's cgroup: %s", self.uid, exc)
        self._thaw()


def _seccomp_fd() -> int | None:
    """A pipe holding the seccomp filter for bwrap to read (None where there is none for this architecture)."""
    filter_program = seccomp.program()
    if filter_program is None:
        log.warning("no seccomp filter for %s: kernels run without one", platform.machine())
        return None
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as pipe:  # a few hundred bytes: well within a pipe's buffer
        pipe.write(filter_program)
    return read_end


def _command_by_descriptor(command: list[str]) -> tuple[int, list[str]]:
    """``bwrap <options> -- <command>`` as ``bwrap --args <fd> -- <command>`` and the memfd holding the options."""
    split = command.index("--")
    fd = os.memfd_create("bwrap-args")  # close-on-exec; passed to bwrap by pass_fds
    try:
        data = b"".join(os.fsencode(arg) + b"\0" for arg in command[1:split])
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd, [command[0], "--args", str(fd), *command[split:]]


def _only_child(pid: int) -> int | None:
    """The one child of ``pid``, or None when it has none or several."""
    children = _children(pid)
    return children[0] if len(children) == 1 else None


def _children(pid: int) -> list[int]:
    """``pid``'s children: from ``/proc/<pid>/task/<pid>/children`` (Linux with CONFIG_PROC_CHILDREN), else by
    the parent pid of every process."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return children_by_parent(pid) if Path(f"/proc/{pid}").exists() else []
    except (OSError, ValueError):
        return []


def children_by_parent(pid: int) -> list[int]:
    return sorted(int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and _parent_of(int(e.name)) == pid)


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (state, ppid, ...); [] when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return not fields or fields[0] in ("Z", "X")


def remove_cgroup(cgroup: KernelCgroup) -> None:
    try:
        cgroup.kill_all()  # nothing should be left: the namespace died with its init
        cgroup.remove()
    except OSError as exc:
        log.warning("could not remove a sandbox cgroup: %s", exc)


def remove_workspace(path: Path) -> None:
    with contextlib.suppress(OSError):
        umount(str(path))
    shutil.rmtree(path, ignore_errors=True)


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except FileNotFoundError:
            continue
    return found


def wait_until_gone(uid: int, timeout: float = 30.0) -> None:
    """The namespace dies with its init, but its processes take a moment to be reaped (long, for a fork bomb on
    a busy machine); a uid is only free for the next kernel once they have. Stragglers are killed at half time."""
    started = time.monotonic()
    while processes_of(uid):
        waited = time.monotonic() - started
        if waited > timeout:
            log.warning("processes of sandbox uid %d outlived their namespace", uid)
            return
        if waited > timeout / 2:
            for pid in processes_of(uid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
