"""Per-kernel control groups: one memory limit, CPU quota and process cap for a kernel *and everything it
starts* (rlimits are per process: four children of one kernel once held 3.2 GB against a 2 GB policy), a
freezer (the server reads the workspace while the kernel's code cannot run), and a way to find and kill all of
a kernel's processes.

Where the cgroup v2 hierarchy has the memory, cpu and pids controllers it is used (``memory.max``,
``memory.swap.max``, ``cpu.max``, ``pids.max``, ``cgroup.freeze``, ``cgroup.kill``); else the v1 hierarchies
(``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes``, ``cpu.cfs_quota_us``/``cpu.cfs_period_us``,
``pids.max``, ``freezer.state``; killing by listing ``cgroup.procs`` while frozen). Neither: kernels keep their
rlimits only, and the server says so once at start.

Layout: a server's cgroups sit below the server's own cgroup (its own subtree, as a service manager delegates
one), in a directory per pool named ``openglm-sandbox-<pid>-<random>`` — unique per server process, since
several servers share a machine — with one directory per kernel in it. A pool holds an flock on a file named
like its directory in ``/run/openglm-sandbox-cgroups`` while it lives; a starting pool removes the directories
whose lock nobody holds (a server that died without cleaning up), killing anything left in them; a directory
it cannot clean up is logged and left, never a reason to run the new pool without cgroups.

Kernels are frozen between runs. A server killed outright (SIGKILL, the OOM killer) cannot thaw them, and a
frozen v1 task cannot die — not even of the parent-death signal that takes a kernel down with its server — so
each pool starts a guardian: a shell outside the kernels' cgroups reading a pipe only the server holds. When
the server is gone, however it went, the pipe ends and the guardian thaws every kernel of the pool, which then
dies of its pending signal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

POOL_PREFIX = "openglm-sandbox-"
LOCKS = Path("/run/openglm-sandbox-cgroups")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
V1_REQUIRED = ("memory", "cpu", "pids", "freezer")
V2_REQUIRED = ("memory", "cpu", "pids")
CFS_PERIOD_US = 100_000
SETTLE_SECONDS = 5.0  # how long a freeze, or an emptied cgroup's removal, may take to settle
# $1: the pool's directory in the freezer's hierarchy, $2: each kernel's freezer file there, $3: "thawed".
GUARDIAN = 'read -r _; cd "$1" || exit 0; for f in */"$2"; do [ -f "$f" ] && printf %s "$3" > "$f"; done'


@dataclass(frozen=True)
class Limits:
    """A cgroup's limits; None leaves one as it is (unlimited in a new cgroup)."""

    memory_bytes: int | None  # everything the processes hold in RAM, tmpfs pages they write included; no swap
    cpus: float | None  # CPU time per wall-clock second (1.0: one core)
    processes: int | None  # tasks (threads count)


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:  # one write(2): cgroup files take a value per write
        handle.write(value)


def _read(path: Path) -> str:
    return path.read_text()


def _pids_in(procs: Path) -> set[int]:
    try:
        return {int(line) for line in _read(procs).split()}
    except FileNotFoundError:
        return set()


def _remove_dir(path: Path) -> None:
    """rmdir an emptied cgroup: its last processes may take a moment to leave it."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("could not remove the cgroup %s: %s", path, exc)
                return
            time.sleep(0.02)


class KernelCgroup(ABC):
    """One kernel's cgroup."""

    @property
    @abstractmethod
    def join_files(self) -> list[str]:
        """The ``cgroup.procs`` files the kernel's first process writes ``0`` into, before it runs any code."""

    @abstractmethod
    def apply(self, limits: Limits) -> None: ...

    @abstractmethod
    def pids(self) -> set[int]:
        """The kernel's processes (by pid in the server's namespace)."""

    @abstractmethod
    def freeze(self) -> bool:
        """Stop every process of the kernel; True once they are all stopped."""

    @abstractmethod
    def thaw(self) -> None: ...

    @abstractmethod
    def cpu_seconds(self) -> float | None:
        """CPU time the kernel's processes have used, in all (None: no CPU accounting here). Each run's share is
        reported in its result and the server's log."""

    @abstractmethod
    def memory_peak(self) -> int | None:
        """The most memory the kernel has held at once (bytes), where the kernel reports it; logged per run."""

    @abstractmethod
    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup, including any forked meanwhile."""

    @abstractmethod
    def remove(self) -> None:
        """Remove the cgroup (its processes must be gone)."""

    @contextlib.contextmanager
    def frozen(self) -> Iterator[bool]:
        try:
            yield self.freeze()
        finally:
            self.thaw()

    def kill(self, pids: set[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class CgroupV2(KernelCgroup):
    def __init__(self, path: Path):
        self.path = path

    @property
    def join_files(self) -> list[str]:
        return [str(self.path / "cgroup.procs")]

    def apply(self, limits: Limits) -> None:
        if limits.memory_bytes is not None:
            _write(self.path / "memory.max", str(limits.memory_bytes))
            if (self.path / "memory.swap.max").exists():
                _write(self.path / "memory.swap.max", "0")
        if limits.cpus is not None:
            _write(self.path / "cpu.max", f"{round(limits.cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}")
        if limits.processes is not None:
            _write(self.path / "pids.max", str(limits.processes))

    def pids(self) -> set[int]:
        return _pids_in(self.path / "cgroup.procs")

    def freeze(self) -> bool:
        _write(self.path / "cgroup.freeze", "1")
        deadline = time.monotonic() + SETTLE_SECONDS
        while "frozen 1" not in _read(self.path / "cgroup.events"):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def thaw(self) -> None:
        _write(self.path / "cgroup.freeze", "0")

    def cpu_seconds(self) -> float | None:
        for line in _read(self.path / "cpu.stat").splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        return None

    def memory_peak(self) -> int | None:
        peak = self.path / "memory.peak"
        return int(_read(peak)) if peak.exists() else None

    def kill_all(self) -> None:
        if (self.path / "cgroup.kill").exists():
            _write(self.path / "cgroup.kill", "1")  # the kernel kills them all at once, forks included
        else:  # Linux < 5.14
            with self.frozen():
                self.kill(self.pids())

    def remove(self) -> None:
        _remove_dir(self.path)


class CgroupV1(KernelCgroup):
    def __init__(self, dirs: dict[str, Path]):
        self.dirs = dirs  # controller -> this kernel's directory in that controller's hierarchy

    @property
    def join_files(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def apply(self, limits: Limits) -> None:
        if limits.memory_bytes is not None:
            memory = self.dirs["memory"]
            _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no swapping past the limit
                _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        if limits.cpus is not None:
            cpu = self.dirs["cpu"]
            _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(round(limits.cpus * CFS_PERIOD_US)))
        if limits.processes is not None:
            _write(self.dirs["pids"] / "pids.max", str(limits.processes))

    def pids(self) -> set[int]:
        return _pids_in(self.dirs["freezer"] / "cgroup.procs")

    def freeze(self) -> bool:
        state = self.dirs["freezer"] / "freezer.state"
        _write(state, "FROZEN")
        deadline = time.monotonic() + SETTLE_SECONDS
        while _read(state).strip() != "FROZEN":
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def thaw(self) -> None:
        _write(self.dirs["freezer"] / "freezer.state", "THAWED")

    def cpu_seconds(self) -> float | None:
        usage = self.dirs.get("cpuacct")  # optional: cpuacct is not needed for the limits
        return int(_read(usage / "cpuacct.usage")) / 1e9 if usage is not None else None

    def memory_peak(self) -> int | None:
        return int(_read(self.dirs["memory"] / "memory.max_usage_in_bytes"))

    def kill_all(self) -> None:
        if not self.dirs["freezer"].is_dir():  # half removed (a cleanup stopped part way): kill what is listed
            self.kill(set().union(*(_pids_in(directory / "cgroup.procs") for directory in self.dirs.values())))
            return
        # Frozen, nothing can fork between the listing and the kill; the killed die as they thaw.
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            with self.frozen():
                pids = self.pids()
                self.kill(pids)
            if not pids:
                return
            time.sleep(0.01)

    def remove(self) -> None:
        for directory in set(self.dirs.values()):
            _remove_dir(directory)


class CgroupTree(ABC):
    """A pool's directory of kernel cgroups."""

    def __init__(self, name: str):
        self.name = name
        self.lock_fd = -1  # the flock that says this pool's server lives
        self.guardian: subprocess.Popen[bytes] | None = None  # thaws the pool's kernels when the server dies

    @abstractmethod
    def bases(self) -> list[Path]:
        """The server's own cgroup in every hierarchy used: where pools' directories live."""

    @abstractmethod
    def setup(self) -> None:
        """Make this pool's directory (in every hierarchy)."""

    @abstractmethod
    def group(self, *names: str) -> KernelCgroup:
        """The cgroup at ``names`` below the server's own (existing or not)."""

    def kernel_cgroup(self, pool: str, kernel: str) -> KernelCgroup:
        """The cgroup named ``kernel`` in the pool ``pool``'s directory (existing or not)."""
        return self.group(pool, kernel)

    def limit_pool(self, limits: Limits) -> None:
        """Limits for all of this pool's kernels together (a parent's limits bind its children's sum)."""
        self.group(self.name).apply(limits)

    @abstractmethod
    def thawing(self) -> tuple[Path, str, str]:
        """This pool's directory in the freezer's hierarchy, the freezer file of each kernel in it, and the value
        that thaws one."""

    def start_guardian(self) -> None:
        """The guardian (see the module's docstring): its stdin is a pipe whose write end only this process holds
        (close-on-exec, so no kernel inherits it); its own session, so a signal to the server's process group
        does not take it first."""
        directory, name, value = self.thawing()
        self.guardian = subprocess.Popen(
            ["sh", "-c", GUARDIAN, "openglm-sandbox-guardian", str(directory), name, value],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop_guardian(self) -> None:
        if self.guardian is None:
            return
        guardian, self.guardian = self.guardian, None
        assert guardian.stdin is not None
        guardian.stdin.close()
        try:
            guardian.wait(timeout=SETTLE_SECONDS)
        except subprocess.TimeoutExpired:
            guardian.kill()
            guardian.wait()

    def create(self, kernel: str, limits: Limits) -> KernelCgroup:
        cgroup = self.kernel_cgroup(self.name, kernel)
        try:
            for directory in self._dirs(self.name, kernel):
                directory.mkdir()
            cgroup.apply(limits)
        except BaseException:
            cgroup.remove()
            raise
        return cgroup

    def _dirs(self, *names: str) -> list[Path]:
        return [base.joinpath(*names) for base in self.bases()]

    def close(self) -> None:
        """Remove this pool's directories (its kernels' are gone), its guardian and its lock."""
        for directory in self._dirs(self.name):
            _remove_dir(directory)
        self.stop_guardian()
        if self.lock_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(LOCKS / self.name)
            os.close(self.lock_fd)
            self.lock_fd = -1

    def remove_dead_pools(self) -> None:
        """Directories of pools whose server is gone: their leftovers are killed and the directories removed.
        What cannot be removed is logged and left for the next start."""
        pools = {child.name for base in self.bases() if base.is_dir() for child in base.iterdir()}
        for pool in sorted(pools):
            if not pool.startswith(POOL_PREFIX) or pool == self.name:
                continue
            with _lock_if_dead(pool) as dead:
                if not dead:
                    continue
                log.info("removing the cgroups of a sandbox pool whose server is gone: %s", pool)
                try:
                    self._remove_pool(pool)
                except OSError as exc:
                    log.warning("could not remove the cgroups of the dead sandbox pool %s: %s", pool, exc)

    def _remove_pool(self, pool: str) -> None:
        kernels = {k.name for d in self._dirs(pool) if d.is_dir() for k in d.iterdir() if k.is_dir()}
        for kernel in kernels:
            cgroup = self.kernel_cgroup(pool, kernel)
            cgroup.kill_all()
            cgroup.remove()
        for directory in self._dirs(pool):
            _remove_dir(directory)


class TreeV2(CgroupTree):
    def __init__(self, name: str, base: Path):
        super().__init__(name)
        self.base = base  # the server's own cgroup

    def bases(self) -> list[Path]:
        return [self.base]

    def setup(self) -> None:
        """Delegate memory, cpu and pids to the pool's kernels. A cgroup with processes in it cannot hand
        controllers to children (v2's no-internal-processes rule), so when the server's own cgroup refuses, the
        server moves itself into a leaf of it and asks again (which works where it sits there alone, as a
        service with its own delegated cgroup does)."""
        wanted = " ".join(f"+{c}" for c in V2_REQUIRED)
        try:
            _write(self.base / "cgroup.subtree_control", wanted)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            leaf = self.base / "openglm-server"
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", "0")
            _write(self.base / "cgroup.subtree_control", wanted)
        root = self.base / self.name
        root.mkdir()
        _write(root / "cgroup.subtree_control", wanted)

    def group(self, *names: str) -> KernelCgroup:
        return CgroupV2(self.base.joinpath(*names))

    def thawing(self) -> tuple[Path, str, str]:
        return self.base / self.name, "cgroup.freeze", "0"


class TreeV1(CgroupTree):
    def __init__(self, name: str, bases: dict[str, Path]):
        super().__init__(name)
        self.controller_bases = bases  # controller -> the server's own cgroup in its hierarchy

    def bases(self) -> list[Path]:
        return sorted(set(self.controller_bases.values()))  # co-mounted controllers (cpu,cpuacct) share one

    def setup(self) -> None:
        for directory in self._dirs(self.name):
            directory.mkdir()

    def group(self, *names: str) -> KernelCgroup:
        return CgroupV1({c: base.joinpath(*names) for c, base in self.controller_bases.items()})

    def thawing(self) -> tuple[Path, str, str]:
        return self.controller_bases["freezer"] / self.name, "freezer.state", "THAWED"


@contextlib.contextmanager
def _lock_if_dead(name: str) -> Iterator[bool]:
    """Yields True (holding its lock) when the pool ``name``'s server is gone; False while it lives."""
    try:
        fd = os.open(LOCKS / name, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True  # its server never got as far as locking, or finished removing it
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(LOCKS / name)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Mount:
    point: Path
    root: str  # the part of the hierarchy this mount shows
    fstype: str
    options: set[str]


def _mounts(mountinfo: str) -> list[_Mount]:
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype, super_options = fields[separator + 1], fields[separator + 3]
        if fstype in ("cgroup", "cgroup2"):
            found.append(_Mount(Path(fields[4]), fields[3], fstype, set(super_options.split(","))))
    return found


def _own_cgroups(text: str) -> dict[str, str]:
    """``/proc/self/cgroup``: controller (``""`` for v2) -> this process's cgroup path in it."""
    own = {}
    for line in text.splitlines():
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _inside(mount: _Mount, path: str) -> Path | None:
    relative = os.path.relpath(path, mount.root)
    if relative.startswith(".."):
        return None  # our cgroup is not visible through this mount
    return mount.point if relative == "." else mount.point / relative


def find_v2(mountinfo: str, own: dict[str, str]) -> Path | None:
    """The server's own v2 cgroup, if the v2 hierarchy has the controllers kernels need."""
    for mount in _mounts(mountinfo):
        if mount.fstype != "cgroup2" or "" not in own:
            continue
        base = _inside(mount, own[""])
        if base is None or not (base / "cgroup.controllers").exists():
            continue
        if set(V2_REQUIRED) <= set(_read(base / "cgroup.controllers").split()):
            return base
    return None


def find_v1(mountinfo: str, own: dict[str, str]) -> dict[str, Path] | None:
    """The server's own cgroup in each v1 hierarchy kernels use, if all the required ones are mounted."""
    bases: dict[str, Path] = {}
    for mount in _mounts(mountinfo):
        if mount.fstype != "cgroup":
            continue
        for controller in V1_CONTROLLERS:
            if controller in mount.options and controller in own:
                base = _inside(mount, own[controller])
                if base is not None and base.is_dir():
                    bases.setdefault(controller, base)
    return bases if set(V1_REQUIRED) <= set(bases) else None


def open_tree() -> tuple[CgroupTree | None, str]:
    """This pool's cgroup directory, made and locked, after removing dead servers' ones; or None and why not
    (then the second item says so; else it names the version used)."""
    if os.geteuid() != 0:
        return None, "not root"
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        own = _own_cgroups(Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        return None, f"cannot read this process's cgroups: {exc}"
    name = f"{POOL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    tree: TreeV1 | TreeV2
    if (base := find_v2(mountinfo, own)) is not None:
        tree = TreeV2(name, base)
    elif (bases := find_v1(mountinfo, own)) is not None:
        tree = TreeV1(name, bases)
    else:
        return None, "neither cgroup v2 with memory, cpu and pids nor the v1 memory, cpu, pids and freezer hierarchies"
    LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = os.open(LOCKS / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # held while this pool lives (and dropped by the OS if it dies)
    try:
        tree.remove_dead_pools()
        tree.setup()
        tree.start_guardian()
    except OSError as exc:
        os.close(lock)
        with contextlib.suppress(OSError):
            os.unlink(LOCKS / name)
        return None, f"cannot create cgroups: {exc}"
    tree.lock_fd = lock
    return tree, "v2" if isinstance(tree, TreeV2) else "v1"
