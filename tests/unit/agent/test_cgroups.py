"""Per-kernel cgroups (issue #12, item 8). This machine has cgroup v1 (the v2 hierarchy has no memory, cpu or
pids controller), so v1 is tested for real, with real kernels; the v2 path is tested for the files it writes,
against a directory standing in for a v2 cgroup, and detection against mount tables of both kinds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from openglm.agent.sandbox.cgroups import CgroupV1, Limits, TreeV1, TreeV2, find_v1, find_v2, open_tree
from openglm.agent.sandbox.kernel import Execution
from openglm.agent.sandbox.policy import MiB, SandboxPolicy
from openglm.agent.sandbox.pool import KernelPool

LIMITS = Limits(memory_bytes=768 * MiB, cpus=0.5, processes=64)


def test_v2_kernel_cgroups_get_their_limits_freezer_and_kill(tmp_path: Path) -> None:
    base = tmp_path / "service"  # the server's own cgroup
    base.mkdir()
    (base / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    tree = TreeV2("openglm-sandbox-1-ab", base)
    tree.setup()
    assert (base / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (base / tree.name / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    cgroup = tree.create("k1", LIMITS)
    kernel = base / tree.name / "k1"
    assert (kernel / "memory.max").read_text() == str(768 * MiB)
    assert (kernel / "cpu.max").read_text() == "50000 100000"
    assert (kernel / "pids.max").read_text() == "64"
    assert cgroup.join_files == [str(kernel / "cgroup.procs")]
    (kernel / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    with cgroup.frozen() as frozen:
        assert frozen and (kernel / "cgroup.freeze").read_text() == "1"
    assert (kernel / "cgroup.freeze").read_text() == "0"
    (kernel / "cgroup.procs").write_text("41\n42\n")
    assert cgroup.pids() == {41, 42}
    (kernel / "cgroup.kill").write_text("")
    cgroup.kill_all()
    assert (kernel / "cgroup.kill").read_text() == "1"
    (kernel / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    assert cgroup.cpu_seconds() == 2.5
    tree.limit_pool(Limits(memory_bytes=4096 * MiB, cpus=3.0, processes=None))  # all the pool's kernels together
    assert (base / tree.name / "memory.max").read_text() == str(4096 * MiB)
    assert (base / tree.name / "cpu.max").read_text() == "300000 100000"
    assert not (base / tree.name / "pids.max").exists()


def test_v2_is_preferred_where_it_has_the_controllers_else_v1(tmp_path: Path) -> None:
    for name in ("unified", "memory", "cpu,cpuacct", "pids", "freezer"):
        (tmp_path / name / "svc").mkdir(parents=True)
    mountinfo = "\n".join(
        f"{30 + n} 23 0:{40 + n} / {tmp_path / name} rw,relatime - {kind} cgroup rw,{options}"
        for n, (name, kind, options) in enumerate(
            [
                ("unified", "cgroup2", "nsdelegate"),
                ("memory", "cgroup", "memory"),
                ("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                ("pids", "cgroup", "pids"),
                ("freezer", "cgroup", "freezer"),
            ]
        )
    )
    own = {"": "/svc", "memory": "/svc", "cpu": "/svc", "cpuacct": "/svc", "pids": "/svc", "freezer": "/svc"}
    (tmp_path / "unified" / "svc" / "cgroup.controllers").write_text("hugetlb\n")  # as on this machine
    assert find_v2(mountinfo, own) is None
    bases = find_v1(mountinfo, own)
    assert bases is not None
    assert bases["cpu"] == bases["cpuacct"] == tmp_path / "cpu,cpuacct" / "svc"  # co-mounted: one directory
    assert TreeV1("p", bases).bases() == sorted(
        {tmp_path / n / "svc" for n in ("cpu,cpuacct", "memory", "pids", "freezer")}
    )
    (tmp_path / "unified" / "svc" / "cgroup.controllers").write_text("cpu io memory pids\n")
    assert find_v2(mountinfo, own) == tmp_path / "unified" / "svc"
    del own["freezer"]
    assert find_v1(mountinfo, own) is None  # no freezer: v1 is not enough


@pytest.fixture
def root_dir() -> Iterator[Path]:
    data = Path(tempfile.mkdtemp(prefix="openglm-test-", dir="/opt"))
    yield data
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
async def pool(root_dir: Path) -> AsyncIterator[KernelPool]:
    kernels = KernelPool(SandboxPolicy(memory_bytes=1024 * MiB, cpus=0.5, processes=96), root_dir / "sb", warm=0)
    await kernels.start()
    yield kernels
    await kernels.close()


async def test_each_kernel_runs_in_a_cgroup_of_its_own_removed_with_it(pool: KernelPool) -> None:
    if pool.cgroups is None:
        pytest.skip("no cgroups on this host")
    async with pool.session("c1") as kernel:
        cgroup = kernel.cgroup
        assert isinstance(cgroup, CgroupV1)  # this machine: v1 (see the module's docstring)
        assert kernel.process is not None
        assert {kernel.process.pid, kernel.init_pid, kernel.kernel_pid} == cgroup.pids()
        assert (cgroup.dirs["memory"] / "memory.limit_in_bytes").read_text().strip() == str(1024 * MiB)
        assert (cgroup.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cgroup.dirs["pids"] / "pids.max").read_text().strip() == "96"
        # Every process the code starts is born in it.
        child = await kernel.execute("import subprocess; p = subprocess.Popen(['sleep', '30']); print(p.pid)")
        assert child.error is None
        # ... and is gone when the run returns (a straggler): left are bwrap, its init and the kernel.
        assert cgroup.pids() == {kernel.process.pid, kernel.init_pid, kernel.kernel_pid}
    tree = pool.cgroups
    await pool.close()
    assert not any(d.exists() for d in cgroup.dirs.values())
    assert not any((base / tree.name).exists() for base in tree.bases())


def test_a_dead_servers_cgroups_are_removed_by_the_next() -> None:
    """A pool whose lock nobody holds belongs to a server that died: the next one to start removes its cgroups,
    killing whatever is left in them."""
    dead, how = open_tree()
    assert dead is not None, how
    cgroup = dead.create("k-left", Limits(memory_bytes=256 * MiB, cpus=1.0, processes=8))
    assert isinstance(cgroup, CgroupV1)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (cgroup.dirs["freezer"] / "cgroup.procs").write_text(str(sleeper.pid))
        os.close(dead.lock_fd)  # the server dies: the OS drops its lock and its end of the guardian's pipe
        dead.lock_fd = -1
        dead.stop_guardian()
        assert sleeper.poll() is None
        fresh, _ = open_tree()
        assert fresh is not None
        fresh.close()
        assert sleeper.wait(timeout=10) == -9
        assert not any((base / dead.name).exists() for base in dead.bases())
    finally:
        sleeper.kill()
        sleeper.wait()


def kernel_dirs(pool: KernelPool) -> list[Path]:
    assert pool.cgroups is not None
    return [k for base in pool.cgroups.bases() for k in (base / pool.cgroups.name).iterdir() if k.is_dir()]


async def test_a_kernel_that_cannot_be_made_leaves_no_cgroup(pool: KernelPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's object failing after its cgroup was made (here: no directory for its sockets) used to leave
    the cgroup behind until the server stopped."""
    if pool.cgroups is None:
        pytest.skip("no cgroups on this host")
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent-openglm-tmp")
    with pytest.raises(FileNotFoundError):
        async with pool.session("c1"):
            pass
    assert kernel_dirs(pool) == []
    assert pool._slots == 0 and not pool._uids_in_use


async def test_a_kernel_is_frozen_between_runs_and_each_run_reports_its_cpu(pool: KernelPool) -> None:
    if pool.cgroups is None:
        pytest.skip("no cgroups on this host")
    async with pool.session("c1") as kernel:
        assert isinstance(kernel.cgroup, CgroupV1)
        state = kernel.cgroup.dirs["freezer"] / "freezer.state"
        assert state.read_text().strip() == "FROZEN"  # started, and suspended until its first run
        busy = await kernel.execute(
            "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
        )
        assert state.read_text().strip() == "FROZEN"
        idle = await kernel.execute("import time; time.sleep(0.5)")
    assert busy.cpu_seconds is not None and 0.45 < busy.cpu_seconds < 2
    assert idle.cpu_seconds is not None and idle.cpu_seconds < 0.3
    # A run cancelled mid-way (its request went away) is interrupted before the kernel is frozen, so the interrupt
    # is not left pending to hit the next run.
    running = asyncio.create_task(run_code(pool, "c1", "import time; time.sleep(30)"))
    await asyncio.sleep(1.0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    after = await run_code(pool, "c1", "import time; time.sleep(1); print('ok')")
    assert after.error is None and after.logs == "ok\n"


async def run_code(pool: KernelPool, conversation: str, code: str) -> Execution:
    async with pool.session(conversation) as kernel:
        return await kernel.execute(code)


def test_a_half_removed_dead_pool_does_not_cost_the_next_pool_its_cgroups() -> None:
    """A dead pool whose cleanup stopped part way (here: its kernel's freezer directory gone, the others left, as
    an rmdir that timed out on a busy machine once left them) used to make every later pool on the machine start
    without cgroups: the cleanup's error aborted the new pool's setup."""
    dead, how = open_tree()
    assert dead is not None, how
    try:
        cgroup = dead.create("k-half", Limits(memory_bytes=256 * MiB, cpus=1.0, processes=8))
        assert isinstance(cgroup, CgroupV1)
        cgroup.dirs["freezer"].rmdir()
        os.close(dead.lock_fd)
        dead.lock_fd = -1
        dead.stop_guardian()
        fresh, how = open_tree()
        assert fresh is not None, how
        fresh.close()
        assert not any((base / dead.name).exists() for base in dead.bases())
    finally:  # whatever happened, no half-removed pool is left to the machine's other servers
        for base in dead.bases():
            for kernel in (base / dead.name).glob("*/"):
                kernel.rmdir()
            with contextlib.suppress(FileNotFoundError):
                (base / dead.name).rmdir()


async def test_the_pool_as_a_whole_can_be_limited(root_dir: Path) -> None:
    """Each kernel may use one core (half of one, as the pool's quota bounds each kernel's), the pool half of one:
    two kernels spinning together for 1.5 s get about 0.75 CPU-s between them."""
    pool = KernelPool(
        SandboxPolicy(memory_bytes=1024 * MiB, cpus=1.0),
        root_dir / "sb",
        warm=0,
        total=Limits(memory_bytes=3072 * MiB, cpus=0.5, processes=None),
    )
    await pool.start()
    try:
        if pool.cgroups is None:
            pytest.skip("no cgroups on this host")
        assert isinstance(pool.cgroups, TreeV1)
        bases = pool.cgroups.controller_bases
        assert (bases["cpu"] / pool.cgroups.name / "cpu.cfs_quota_us").read_text().strip() == "50000"
        limit = bases["memory"] / pool.cgroups.name / "memory.limit_in_bytes"
        assert limit.read_text().strip() == str(3072 * MiB)
        spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
        for conversation in ("c1", "c2"):
            await run_code(pool, conversation, "pass")  # both booted before the clock starts
        spun = await asyncio.gather(run_code(pool, "c1", spin), run_code(pool, "c2", spin))
        used = [run.cpu_seconds or 0.0 for run in spun]
        # Half a core each, so 1.5 CPU-s between them where two cores are free; half a core together: 0.75.
        assert 0 < sum(used) < 1.1, used
    finally:
        await pool.close()
