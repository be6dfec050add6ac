"""Per-kernel cgroups (issue #12, item 8). This machine has cgroup v1 (the v2 hierarchy has no memory, cpu or
pids controller), so v1 is tested for real, with real kernels; the v2 path is tested for the files it writes,
against a directory standing in for a v2 cgroup, and detection against mount tables of both kinds."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openglm.agent.sandbox.cgroups import CgroupV1, Limits, TreeV1, TreeV2, find_v1, find_v2, open_tree
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
async def pool() -> AsyncIterator[KernelPool]:
    data = Path(tempfile.mkdtemp(prefix="openglm-test-", dir="/opt"))
    kernels = KernelPool(SandboxPolicy(memory_bytes=1024 * MiB, cpus=0.5, processes=96), data / "sb", warm=0)
    await kernels.start()
    yield kernels
    await kernels.close()
    shutil.rmtree(data, ignore_errors=True)


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
        os.close(dead.lock_fd)  # the server dies: the OS drops its lock, nothing else is cleaned up
        dead.lock_fd = -1
        assert sleeper.poll() is None
        fresh, _ = open_tree()
        assert fresh is not None
        fresh.close()
        assert sleeper.wait(timeout=10) == -9
        assert not any((base / dead.name).exists() for base in dead.bases())
    finally:
        sleeper.kill()
        sleeper.wait()
