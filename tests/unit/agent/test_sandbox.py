"""The code interpreter's sandbox, attacked for real: each attack is contained, reported, and the host and the
next run are unharmed. Real kernels in real namespaces; nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from openglm.agent.sandbox.kernel import KernelStartError, SandboxedKernel, children_by_parent
from openglm.agent.sandbox.policy import MiB, SandboxPolicy
from openglm.agent.sandbox.pool import KernelPool

POLICY = SandboxPolicy(timeout=3.0, memory_bytes=1024 * MiB, processes=64, file_bytes=8 * MiB)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Stands in for the server's data directory: a secret the code must not read. Outside /tmp on purpose:
    the sandbox replaces /tmp anyway, which would hide it for the wrong reason."""
    data = Path(tempfile.mkdtemp(prefix="openglm-test-", dir="/opt"))
    (data / "secret.key").write_text("top secret")
    yield data
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
async def pool(data_dir: Path) -> AsyncIterator[KernelPool]:
    kernels = KernelPool(POLICY, data_dir / "sandboxes", warm=1, hidden=[str(data_dir)])
    await kernels.start()
    yield kernels
    await kernels.close()


async def run(pool: KernelPool, code: str, conversation: str = "c1"):  # type: ignore[no-untyped-def]
    async with pool.session(conversation) as kernel:
        return await kernel.execute(code)


def sandbox_processes(uid: int) -> list[str]:
    found = subprocess.run(["pgrep", "-u", str(uid)], capture_output=True, text=True)
    return found.stdout.split()


async def test_state_carries_over_within_a_conversation_only(pool: KernelPool) -> None:
    assert (await run(pool, "x = 41")).error is None
    assert (await run(pool, "x + 1")).logs == "42\n"
    other = await run(pool, "x", conversation="c2")
    assert other.error == "NameError: name 'x' is not defined"


async def test_stdout_results_tracebacks_and_images(pool: KernelPool) -> None:
    printed = await run(pool, "print('hello'); 6 * 7")
    assert printed.logs == "hello\n42\n" and printed.error is None
    failed = await run(pool, "1 / 0")
    assert failed.error == "ZeroDivisionError: division by zero" and "Traceback" in failed.logs
    drawn = await run(pool, "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()")
    assert len(drawn.images) == 1 and drawn.images[0].startswith(b"\x89PNG")


async def test_code_runs_in_its_workspace_as_its_own_uid(pool: KernelPool) -> None:
    seen = await run(pool, "import os; print(os.getcwd(), os.getuid(), os.getppid())")
    cwd, uid, parent = seen.logs.split()
    assert cwd == "/mnt/workspace" and int(uid) >= POLICY.base_uid and parent == "1"  # the namespace's init
    await run(pool, "open('report.csv', 'w').write('a,b\\n1,2\\n')")
    workspace = pool.workspace_of("c1")
    assert workspace is not None and (workspace / "report.csv").read_text() == "a,b\n1,2\n"


async def test_no_network_at_all(pool: KernelPool) -> None:
    # The network namespace's own loopback is up (bwrap's) and nothing listens there: the host's PostgreSQL and
    # Redis on 127.0.0.1 are another namespace's. Nothing else is reachable.
    for target in ("('127.0.0.1', 5432)", "('127.0.0.1', 6379)"):
        attempt = await run(pool, f"import socket; socket.create_connection({target}, timeout=2)")
        assert attempt.error is not None and "ConnectionRefusedError" in attempt.error, attempt.error
    attempt = await run(pool, "import socket; socket.create_connection(('1.1.1.1', 443), timeout=2)")
    assert attempt.error is not None and "unreachable" in attempt.error.lower(), attempt.error
    lookup = await run(pool, "import socket; socket.gethostbyname('example.com')")
    assert lookup.error is not None


async def test_local_service_sockets_are_out_of_reach(pool: KernelPool) -> None:
    # PostgreSQL trusts its Unix socket; the sandbox must not see it.
    attempt = await run(pool, "import os; print(sorted(os.listdir('/run')), sorted(os.listdir('/var/run')))")
    assert attempt.logs == "[] []\n"


async def test_the_servers_data_and_homes_cannot_be_read(pool: KernelPool, data_dir: Path) -> None:
    secret = await run(pool, f"open({str(data_dir / 'secret.key')!r}).read()")
    assert secret.error is not None and "FileNotFoundError" in secret.error
    listing = await run(pool, f"import os; print(os.path.exists({str(data_dir)!r}) and os.listdir({str(data_dir)!r}))")
    assert listing.logs in ("False\n", "[]\n")  # gone, or an empty directory
    home = await run(pool, "import os; print(os.listdir('/root'))")
    python_home = Path(sys.base_prefix).relative_to("/root").parts[:1] if sys.base_prefix.startswith("/root/") else ()
    assert home.logs == f"{list(python_home)}\n"  # at most the Python installation the kernel runs on
    environ = await run(pool, "import os; print(sorted(k for k in os.environ if k.startswith('OPENGLM')))")
    assert environ.logs == "[]\n"  # the server's settings (its secret key) never reach the kernel


async def test_writing_outside_the_workspace_is_refused_or_private(pool: KernelPool, tmp_path: Path) -> None:
    here = Path(__file__).resolve()
    attempt = await run(pool, f"open({str(here.parent / 'planted.py')!r}, 'w')")
    # The host's tree is read-only in the sandbox (a checkout under /tmp is not in its view at all).
    assert attempt.error is not None and (
        "Read-only file system" in attempt.error or "FileNotFoundError" in attempt.error
    )
    assert not (here.parent / "planted.py").exists()
    name = f"/tmp/openglm-scratch-{uuid.uuid4().hex}"  # a name nothing on the host can already have
    scratch = await run(pool, f"open({name!r}, 'w').write('private'); print(open({name!r}).read())")
    assert scratch.logs == "private\n" and not Path(name).exists()  # its /tmp is its own


async def test_no_new_namespaces_and_no_kernel_attack_surfaces(pool: KernelPool) -> None:
    """The seccomp filter: a user namespace (all capabilities over namespaces of its own) is where most local
    privilege escalations start; io_uring and the keyring are others. Ordinary code (threads, processes) runs."""
    code = (
        "import ctypes, os, subprocess, threading\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def attempt(rc): return os.strerror(ctypes.get_errno()) if rc == -1 else rc\n"
        "print(attempt(libc.unshare(0x10000000)))\n"  # CLONE_NEWUSER
        "print(subprocess.run(['unshare', '-Ur', 'true'], capture_output=True, text=True).returncode)\n"
        "print(attempt(libc.syscall(425, 8, ctypes.c_void_p(0))))\n"  # io_uring_setup on x86_64 and aarch64
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "print(subprocess.run(['echo', 'process'], capture_output=True, text=True).stdout.strip())\n"
    )
    tried = await run(pool, code)
    assert tried.logs == "Operation not permitted\n1\nOperation not permitted\nthread\nprocess\n", tried.logs


async def test_file_size_limit(pool: KernelPool) -> None:
    big = await run(pool, "open('big.bin', 'wb').write(b'0' * (16 * 1024 * 1024))")
    assert big.error is not None and "File too large" in big.logs


async def test_memory_bomb_is_contained(pool: KernelPool) -> None:
    bomb = await run(pool, "blob = bytearray(8 * 1024 ** 3)")
    assert bomb.error == "MemoryError: "
    assert (await run(pool, "print('still here')")).logs == "still here\n"


async def test_infinite_loop_is_interrupted(pool: KernelPool) -> None:
    loop = await run(pool, "while True:\n    pass")
    assert loop.timed_out and loop.error == "KeyboardInterrupt: "
    assert (await run(pool, "print('after')")).logs == "after\n"


async def test_fork_bomb_is_contained_and_cleaned_up(pool: KernelPool) -> None:
    async with pool.session("bomb") as kernel:
        uid = kernel.uid
        bomb = await kernel.execute("import os\nwhile True:\n    os.fork()")
    assert bomb.error is not None or bomb.timed_out or bomb.restarted
    assert len(sandbox_processes(uid)) <= POLICY.processes
    await pool.release("bomb")
    assert sandbox_processes(uid) == []  # the whole namespace went with its kernel
    assert (await run(pool, "print('fine')", conversation="next")).logs == "fine\n"


async def test_killing_the_parent_only_kills_the_sandbox(pool: KernelPool) -> None:
    async with pool.session("killer") as kernel:
        first_uid = kernel.uid
        attack = await kernel.execute("import os, signal\nos.kill(-1, signal.SIGKILL)\nos.kill(0, signal.SIGKILL)")
    assert attack.restarted or attack.error is not None
    async with pool.session("killer") as kernel:  # a dead kernel is replaced on the next run
        assert kernel.alive
        assert (await kernel.execute("print('reborn')")).logs == "reborn\n"
    assert first_uid >= POLICY.base_uid


async def test_idle_conversations_are_reaped(data_dir: Path) -> None:
    kernels = KernelPool(POLICY, data_dir / "sandboxes", warm=0, idle_seconds=0.0)
    await kernels.start()
    try:
        async with kernels.session("idle") as kernel:
            await kernel.execute("print(1)")
            process = kernel.process
        await kernels.reap()
        assert kernels.workspace_of("idle") is None
        assert process is not None and process.poll() is not None
    finally:
        await kernels.close()


async def test_kernels_cannot_see_each_other(pool: KernelPool) -> None:
    await run(pool, "open('mine.txt', 'w').write('a')", conversation="a")
    code = "import os; print(os.listdir('/mnt/workspace'), [p for p in os.listdir('/proc') if p.isdigit()])"
    peek = await run(pool, code, conversation="b")
    assert peek.logs == "[] ['1', '2']\n"  # an empty workspace of its own; in sight: its init and itself


async def test_a_workspaces_mount_point_is_removed_only_while_no_kernel_starts(pool: KernelPool) -> None:
    """A starting kernel's bwrap copies the server's mounts, every workspace among them, then remounts each one;
    a mount point removed in between failed that start under load ("Can't bind mount /oldroot/ on /newroot/: …
    remount …/sandboxes/<id>: No such file or directory"). The workspace is unmounted at once; its mount point
    goes once no kernel is starting."""
    async with pool.session("a") as first:
        workspace = first.workspace
    with pool._kernel_starting():  # as while a kernel's bwrap sets up
        await pool.release("a")
        assert workspace.exists() and not os.path.ismount(workspace)
    deadline = time.monotonic() + 30
    while pool._kernels_starting and time.monotonic() < deadline:  # the warm refill may be starting one too
        await asyncio.sleep(0.05)
    assert not workspace.exists()


async def test_kernels_start_while_others_are_removed(pool: KernelPool) -> None:
    """Kernels started while others shut down, over and over: every one starts."""

    async def one(n: int) -> str:
        async with pool.session(f"churn-{n}") as kernel:
            out = (await kernel.execute(f"print({n})")).logs
        await pool.release(f"churn-{n}")
        return out

    for _ in range(3):
        assert await asyncio.gather(*(one(n) for n in range(4))) == [f"{n}\n" for n in range(4)]


async def test_two_servers_never_give_two_kernels_one_uid(data_dir: Path) -> None:
    """Pools of different servers on one machine claim uids through shared locks."""
    pools = [KernelPool(POLICY, data_dir / f"sandboxes-{n}", warm=0, max_kernels=1) for n in range(2)]
    try:
        for pool in pools:
            await pool.start()
        uids = []
        for n, pool in enumerate(pools):
            for conversation in ("a", "b", "c"):
                async with pool.session(f"{n}{conversation}") as kernel:
                    uids.append(kernel.uid)
                await pool.release(f"{n}{conversation}")
            async with pool.session(f"{n}-held") as kernel:  # each pool keeps one kernel alive
                uids.append(kernel.uid)
        held = [uids[3], uids[7]]
        assert held[0] != held[1]
    finally:
        for pool in pools:
            await pool.close()


async def test_the_workspace_has_a_quota_of_bytes_and_files(data_dir: Path) -> None:
    policy = SandboxPolicy(timeout=10.0, file_bytes=64 * MiB, workspace_bytes=4 * MiB, workspace_files=200)
    kernels = KernelPool(policy, data_dir / "sandboxes", warm=0, hidden=[str(data_dir)])
    await kernels.start()
    try:
        filled = await run(kernels, "open('big', 'wb').write(b'x' * (8 * 1024 * 1024))")
        assert filled.error is not None and "No space left on device" in filled.error
        many = await run(kernels, "for i in range(1000): open(f'f{i}', 'w').close()")
        assert many.error is not None and "No space left on device" in many.error
        freed = await run(kernels, "import os\nfor n in os.listdir(): os.remove(n)\nopen('ok', 'w').write('fine')")
        assert freed.error is None  # the conversation goes on once it makes room
        workspace = kernels.workspace_of("c1")
        assert workspace is not None and (workspace / "ok").read_text() == "fine"
    finally:
        await kernels.close()
    assert workspace is not None and not workspace.exists()  # unmounted and removed with its kernel


async def test_a_crashed_servers_workspaces_are_removed_at_start(data_dir: Path) -> None:
    crashed = KernelPool(SandboxPolicy(), data_dir / "sandboxes", warm=1, hidden=[str(data_dir)])
    await crashed.start()
    async with crashed.session("c1") as kernel:
        await kernel.execute("open('left', 'w').write('behind')")
        left = kernel.workspace
    # The server dies without cleaning up: its kernels go with it, its workspaces stay mounted.
    for kernel in [*crashed._ready, *(lease.kernel for lease in crashed._conversations.values())]:
        await kernel.shutdown()
    for uid in list(crashed._uid_locks):
        crashed._free_uid(uid)
    assert (left / "left").exists()
    fresh = KernelPool(SandboxPolicy(), data_dir / "sandboxes", warm=0, hidden=[str(data_dir)])
    await fresh.start()
    await fresh.close()
    assert not left.exists() and list((data_dir / "sandboxes").iterdir()) == []


def test_a_killed_server_takes_its_kernels_with_it(data_dir: Path) -> None:
    """SIGKILL leaves no cleanup to run: the kernels must die by themselves (parent-death signal)."""
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from openglm.agent.sandbox.enter import private_mount_namespace\n"
        "assert private_mount_namespace()  # as openglm serve does: its mounts go with it\n"
        "from openglm.agent.sandbox.policy import SandboxPolicy\n"
        "from openglm.agent.sandbox.pool import KernelPool\n"
        "async def main():\n"
        f"    pool = KernelPool(SandboxPolicy(), Path({str(data_dir / 'sandboxes')!r}), warm=0)\n"
        "    await pool.start()\n"
        "    async with pool.session('c') as kernel:\n"
        "        print(kernel.uid, flush=True)\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        uid = int(server.stdout.readline())
        assert sandbox_processes(uid)
    finally:
        server.kill()
        server.wait()
    deadline = time.monotonic() + 10
    while sandbox_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox_processes(uid) == []
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    assert str(data_dir) not in mounts
    # Its kernels' cgroups stay behind (nothing ran to remove them) until the next server starts.
    left = list(Path("/sys/fs/cgroup").rglob(f"openglm-sandbox-{server.pid}-*"))
    assert left
    asyncio.run(_start_and_close(KernelPool(SandboxPolicy(), data_dir / "sandboxes", warm=0)))
    assert not [p for p in left if p.exists()]


async def _start_and_close(pool: KernelPool) -> None:
    await pool.start()
    await pool.close()


async def test_the_kernel_cannot_swap_its_sockets_for_links_to_host_sockets(pool: KernelPool, tmp_path: Path) -> None:
    """The server's libzmq (root) reconnects to a kernel's socket by path whenever a connection drops. A kernel
    that replaced its socket file with a symlink to a host Unix socket, then closed its end, once had root connect
    there and send it a ZeroMQ greeting. The socket directory is root's once the kernel has bound its sockets."""
    host = tmp_path / "host.sock"  # a host service's socket, outside the sandbox's view
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(host))
    listener.listen()
    listener.setblocking(False)
    code = f"""
import os
try:
    os.unlink("/mnt/ipc/k-3")
    os.symlink({str(host)!r}, "/mnt/ipc/k-3")
    print("swapped")
except PermissionError:
    print("refused")
get_ipython().kernel.stdin_socket.close()  # the server's end reconnects
"""
    try:
        swapping = await run(pool, code)
        await asyncio.sleep(1.0)  # libzmq reconnects after 100 ms
        with contextlib.suppress(BlockingIOError):
            connection, _ = listener.accept()
            connection.settimeout(1.0)
            pytest.fail(f"the server connected to a host socket the kernel chose and sent {connection.recv(64)!r}")
    finally:
        listener.close()
    assert swapping.logs == "refused\n"
    assert (await run(pool, "print('still here')")).logs == "still here\n"
    async with pool.session("c1") as kernel:
        sockets = kernel.ipc_dir.stat()
        assert (sockets.st_uid, sockets.st_mode & 0o777) == (0, 0o755)


async def test_the_sandboxes_init_shows_no_host_path_on_its_command_line(pool: KernelPool, data_dir: Path) -> None:
    """Every process of the namespace reads /proc/1/cmdline: bwrap's options (the hidden data directory, the key
    and catalog files) are read from a descriptor instead."""
    seen = (await run(pool, "print(open('/proc/1/cmdline', 'rb').read().replace(b'\\0', b' ').decode())")).logs
    assert seen.startswith("bwrap --args "), seen
    assert str(data_dir) not in seen and "--tmpfs" not in seen and "--ro-bind" not in seen


def test_a_kernel_whose_own_processes_cannot_be_found_is_refused(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the kernel's pid every process of the sandbox looks like a straggler (or none does): the end of a run
    once killed nothing, silently. Here bwrap's stand-in has two children: which is the namespace's init?"""
    kernel = SandboxedKernel(POLICY, data_dir / "workspace", POLICY.base_uid, [])
    kernel.process = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(children_by_parent(kernel.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(children_by_parent(kernel.process.pid)) == 2
        with pytest.raises(KernelStartError, match="cannot tell"):
            kernel._find_kernel_pid()
        assert "cannot find the kernel's process" in caplog.text
    finally:
        for child in children_by_parent(kernel.process.pid):
            os.kill(child, signal.SIGKILL)
        kernel.process.kill()
        kernel.process.wait()
        shutil.rmtree(kernel.ipc_dir)
