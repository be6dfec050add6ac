"""Runs as root inside fresh mount, PID, network, IPC and UTS namespaces (made by ``unshare``), joins the
kernel's cgroup, builds the sandbox's view of the filesystem, sets the limits, drops to the kernel's own uid,
starts the kernel and stays as the namespace's init, reaping.

    unshare --mount --pid --net --ipc --uts --fork --kill-child python -m openglm.agent.sandbox.enter SPEC_JSON

Only the standard library: this starts for every kernel and must be quick.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

SANDBOX_ROOT = "/mnt"  # inside: /mnt/workspace (the code's cwd and HOME) and /mnt/ipc (the kernel's sockets)
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")

_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    encoded = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    if _libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"umount {target}: {os.strerror(errno)}")


def tmpfs(target: str, mode: str, size: int) -> None:
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size}")


def bind(source: str, target: str, *, read_only: bool) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


PR_SET_PDEATHSIG = 1
SIGKILL = 9


def die_with_parent() -> None:
    """For ``Popen(preexec_fn=...)``: the sandbox's ``unshare`` gets SIGKILL when the server that started it
    dies, however it dies (``--kill-child`` then takes the whole namespace with it): no orphaned kernels. Only a
    system call, as a pre-exec function must be."""
    _libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)


MS_SLAVE = 1 << 19
CLONE_NEWNS = 0x00020000


def private_mount_namespace() -> bool:
    """Move this process into a mount namespace of its own, in which the host's mounts still appear but the ones
    made here (the kernels' workspace tmpfs) stay private and vanish with the process, however it ends (a
    crash, SIGKILL): nothing is left mounted on the host. Call it before any thread starts, so that every thread
    of the server sees the same mounts. False when not permitted (not root)."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        return False
    mount(None, "/", None, MS_REC | MS_SLAVE)
    return True


def build_filesystem(spec: dict[str, Any]) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here leaks back to the host
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this PID namespace's processes only
    tmpfs(SANDBOX_ROOT, "0755", 1024 * 1024)
    stage = f"{SANDBOX_ROOT}/.stage"
    for name in ("workspace", "ipc", ".stage"):
        os.mkdir(f"{SANDBOX_ROOT}/{name}")
    bind(spec["workspace"], f"{SANDBOX_ROOT}/workspace", read_only=False)
    bind(spec["ipc_dir"], f"{SANDBOX_ROOT}/ipc", read_only=False)
    # Paths the kernel needs (the Python installation) that sit inside a hidden path are kept aside first,
    # then put back read-only on top of the emptied path.
    kept = []
    for i, path in enumerate(spec["keep"]):
        os.mkdir(f"{stage}/{i}")
        bind(path, f"{stage}/{i}", read_only=True)
        kept.append((f"{stage}/{i}", path))
    covered = []
    for path in spec["hide"]:
        if os.path.isdir(path):
            tmpfs(path, "0755", 1024 * 1024)
            covered.append(path)
        elif os.path.isfile(path):  # a single file (the model catalog, with its API keys): show it empty
            mount("/dev/null", path, None, MS_BIND)
    for path in SCRATCH_DIRS:
        if os.path.isdir(path):
            tmpfs(path, "1777", spec["limits"]["tmp_bytes"])
            covered.append(path)
    # Put back what the kernel needs that the covering hid (a Python under /root, a checkout under /tmp).
    for staged, path in kept:
        if any(path == c or path.startswith(c.rstrip("/") + "/") for c in covered):
            os.makedirs(path, exist_ok=True)
            bind(staged, path, read_only=True)
        umount(staged)
        os.rmdir(staged)
    os.rmdir(stage)


def join_cgroups(procs_files: list[str]) -> None:
    """Into the kernel's cgroup (one per v1 hierarchy, or one v2), before any of its code runs: everything it
    starts is born there, under the kernel's memory, CPU and process limits."""
    for path in procs_files:
        with open(path, "w") as handle:
            handle.write("0")  # "0": the writing process


def set_limits(limits: dict[str, int]) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # from root to an ordinary uid: every capability is gone with it
    # no_new_privs: no setuid binary can hand any back.
    PR_SET_NO_NEW_PRIVS = 38
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def main() -> None:
    spec = json.loads(sys.argv[1])
    join_cgroups(spec["cgroup_procs"])
    build_filesystem(spec)
    set_limits(spec["limits"])
    drop_privileges(spec["uid"])
    # unshare --kill-child set this, but changing uid clears it: without it the namespace would outlive a
    # killed server. (When this process, the namespace's init, dies, the kernel and all else die with it.)
    die_with_parent()
    os.chdir(f"{SANDBOX_ROOT}/workspace")
    env = {
        "PATH": os.path.dirname(spec["argv"][0]) + ":/usr/local/bin:/usr/bin:/bin",
        "HOME": f"{SANDBOX_ROOT}/workspace",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "XDG_CACHE_HOME": "/tmp/cache",  # the workspace holds what the code writes, nothing else
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    Path("/tmp/matplotlib").mkdir()
    kernel = os.fork()
    if kernel == 0:
        os.execve(spec["argv"][0], spec["argv"], env)
    reap_until_exit(kernel)


def reap_until_exit(kernel: int) -> None:
    """Be the namespace's init: reap every process that ends in it (a killed straggler, or one orphaned by a
    double fork, would otherwise stay a zombie and count against the kernel's process limits) and end, with
    the whole namespace, when the kernel ends. An init gets no signal from inside its namespace that it has
    no handler for: the code cannot kill it (SIGINT goes back to the default, so it is not handled either)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == kernel:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
