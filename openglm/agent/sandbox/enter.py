"""How a kernel enters its sandbox, and the mount helpers the server uses for kernels' workspaces.

The root server starts, for each kernel::

    bwrap --unshare-pid --unshare-net --unshare-ipc --unshare-uts --unshare-cgroup-try --die-with-parent
          --new-session --ro-bind / / --proc /proc --dev /dev --tmpfs <each hidden path> ... --tmpfs /tmp ...
          --bind <workspace> /mnt/workspace --bind <sockets> /mnt/ipc --clearenv --setenv ...
          -- setpriv --reuid=<uid> --regid=<uid> --clear-groups --inh-caps=-all --bounding-set=-all
          -- python -m ipykernel_launcher ...

Bubblewrap (Debian's ``bubblewrap``) makes the namespaces and the filesystem view: the host's tree read-only
with sensitive paths covered by empty tmpfs, a fresh ``/proc`` and a minimal ``/dev``, private size-limited
scratch space, and no network interfaces but its own loopback; it sets ``no_new_privs``, stays as the
namespace's init (reaping orphans) and dies with its parent. As root it cannot give the kernel a host uid of
its own (``--uid`` maps a uid of a new user namespace onto root's), so util-linux's ``setpriv`` drops to the
kernel's uid — one per kernel — with no capabilities left, inherited or bounding. Before bwrap runs, a pre-exec
step (``child_setup``) puts the launcher into the kernel's cgroup and sets its rlimits and parent-death signal,
so everything the kernel ever starts is born inside all of them.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

MS_NOSUID = 2
MS_NODEV = 4
MS_REC = 16384
MNT_DETACH = 2
MS_SLAVE = 1 << 19
CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1
SIGKILL = 9

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


def private_mount_namespace() -> bool:
    """Move this process into a mount namespace of its own, in which the host's mounts still appear but the ones
    made here (the kernels' workspace tmpfs) stay private and vanish with the process, however it ends (a
    crash, SIGKILL): nothing is left mounted on the host. Call it before any thread starts, so that every thread
    of the server sees the same mounts. False when not permitted (not root)."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        return False
    mount(None, "/", None, MS_REC | MS_SLAVE)
    return True


@dataclass(frozen=True)
class SandboxSpec:
    workspace: str
    ipc_dir: str
    uid: int
    argv: list[str]  # the kernel's command line (argv[0]: the Python it runs on)
    hide: list[str]  # paths shown empty: directories as an empty tmpfs, files as /dev/null
    keep: list[str]  # paths put back read-only where a hidden path covered them (the Python installation)
    tmp_bytes: int  # size of each private scratch directory
    env: dict[str, str] = field(default_factory=dict)


def sandbox_command(spec: SandboxSpec, *, seccomp_fd: int | None = None) -> list[str]:
    """The bwrap + setpriv command line that runs ``spec.argv`` in its sandbox; ``seccomp_fd``: a descriptor
    bwrap reads a seccomp filter from (``seccomp.py``), loaded just before setpriv runs."""
    args = [
        "bwrap",
        *("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"),
        *("--die-with-parent", "--new-session"),
        *("--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"),
    ]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    covered: list[str] = []
    # A hidden symlink (/var/run -> /run) is hidden by covering what it points to; a path inside another hidden
    # one is covered with it (and gets no mount point there).
    for path in sorted({os.path.realpath(p) for p in spec.hide}):
        if _under(path, covered):
            continue
        if os.path.isdir(path):
            args += ["--tmpfs", path]
            covered.append(path)
        elif os.path.isfile(path):  # a single file (the model catalog, with its API keys): shown empty
            args += ["--ro-bind", "/dev/null", path]
    for path in SCRATCH_DIRS:
        if os.path.isdir(path) and not _under(path, covered):
            args += ["--size", str(spec.tmp_bytes), "--perms", "1777", "--tmpfs", path]
            covered.append(path)
    # Put back what the kernel needs that the covering hid (a Python under /root, a checkout under /tmp), with
    # the directories leading to it traversable (bwrap would make them 0700, root's).
    for path in spec.keep:
        cover = _under(path, covered)
        if cover is None:
            continue
        parts = PurePosixPath(path).relative_to(cover).parts
        for depth in range(1, len(parts)):
            args += ["--perms", "0755", "--dir", str(PurePosixPath(cover, *parts[:depth]))]
        args += ["--ro-bind", path, path]
    args += ["--tmpfs", SANDBOX_ROOT]
    args += ["--bind", spec.workspace, f"{SANDBOX_ROOT}/workspace", "--bind", spec.ipc_dir, f"{SANDBOX_ROOT}/ipc"]
    args += ["--chdir", f"{SANDBOX_ROOT}/workspace", "--clearenv"]
    for name, value in spec.env.items():
        args += ["--setenv", name, value]
    args += ["--", "setpriv", f"--reuid={spec.uid}", f"--regid={spec.uid}", "--clear-groups"]
    args += ["--inh-caps=-all", "--bounding-set=-all", "--", *spec.argv]
    return args


def _under(path: str, directories: list[str]) -> str | None:
    """The directory of ``directories`` that is ``path`` or holds it, if any."""
    return next((d for d in directories if path == d or path.startswith(d.rstrip("/") + "/")), None)


def kernel_environment(python: str) -> dict[str, str]:
    """A clean environment: none of the server's settings (its secret key) reach the kernel."""
    return {
        "PATH": os.path.dirname(python) + ":/usr/local/bin:/usr/bin:/bin",
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


def child_setup(cgroup_procs: list[str], limits: dict[str, int]) -> Callable[[], None]:
    """For ``Popen(preexec_fn=...)``, run in the forked child before bwrap is executed: join the kernel's cgroup
    (everything the kernel starts is born in it), set the rlimits (inherited by the kernel; bwrap itself runs as
    root, which RLIMIT_NPROC does not bind) and a parent-death signal (bwrap's ``--die-with-parent`` passes it on
    to the sandbox), so a server that dies however it dies (SIGKILL) takes its kernels with it. Everything is
    prepared here, in the parent: the child only makes system calls, and waits on no lock another thread of the
    server may have held at the fork."""
    paths = [path.encode() for path in cgroup_procs]
    rlimits = [
        (resource.RLIMIT_AS, limits["memory_bytes"]),
        (resource.RLIMIT_CPU, limits["cpu_seconds"]),
        (resource.RLIMIT_NPROC, limits["processes"]),
        (resource.RLIMIT_FSIZE, limits["file_bytes"]),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ]

    def setup() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
        for path in paths:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0": the writing process
            finally:
                os.close(fd)
        for which, value in rlimits:
            resource.setrlimit(which, (value, value))

    return setup
