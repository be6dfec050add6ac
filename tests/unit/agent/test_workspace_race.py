"""The server collecting a kernel's outputs while the kernel's code swaps workspace entries for symlinks to host
files (issue #12, item 1): whatever the timing, the server reads only files of the workspace.

A real tmpfs workspace (as the server mounts for each kernel) and a real racing process doing
``renameat2(RENAME_EXCHANGE)`` of a directory and a symlink to a host directory, and of a file and a symlink to a
host file, as fast as it can, while the collector lists and reads thousands of times."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from openglm.agent.sandbox.enter import MS_NODEV, MS_NOSUID, mount, umount
from openglm.agent.sandbox.workspace import HAVE_OPENAT2, WorkspaceFiles

SECRET = b"HOST SECRET: the server's master key"
ITERATIONS = 3000

# Swaps each pair in a loop: the directory ``d`` (holding out.txt) with ``s`` -> host/, and the file ``f`` with
# ``l`` -> host/out.txt. Whichever way round, ``d/out.txt`` and ``f`` name a host file half of the time.
RACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
os.chdir(sys.argv[1])
pairs = [(b"d", b"s"), (b"f", b"l")]
print("racing", flush=True)
while True:
    for a, b in pairs:
        libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A directory of the host holding a secret, outside the workspace."""
    directory = tmp_path / "host"
    directory.mkdir()
    (directory / "out.txt").write_bytes(SECRET)
    return directory


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted like a kernel's workspace."""
    root = tmp_path / "workspace"
    root.mkdir()
    mount("tmpfs", str(root), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=4m,nr_inodes=256")
    try:
        yield root
    finally:
        umount(str(root))


@contextlib.contextmanager
def racing(workspace: Path, host: Path) -> Iterator[None]:
    (workspace / "d").mkdir()
    (workspace / "d" / "out.txt").write_bytes(b"harmless")
    (workspace / "f").write_bytes(b"harmless")
    (workspace / "s").symlink_to(host)
    (workspace / "l").symlink_to(host / "out.txt")
    racer = subprocess.Popen([sys.executable, "-c", RACER, str(workspace)], stdout=subprocess.PIPE)
    try:
        assert racer.stdout is not None and racer.stdout.readline() == b"racing\n"
        yield
    finally:
        racer.kill()
        racer.wait()


@pytest.mark.parametrize("use_openat2", [True, False], ids=["openat2", "by-components"])
def test_collecting_while_the_kernel_swaps_links_never_reads_a_host_file(
    workspace: Path, host: Path, use_openat2: bool
) -> None:
    if use_openat2 and not HAVE_OPENAT2:
        pytest.skip("openat2 is not available on this kernel")
    files = WorkspaceFiles(workspace, use_openat2=use_openat2)
    read_inside = 0
    try:
        with racing(workspace, host):
            for _ in range(ITERATIONS):
                outputs, _more = files.written_since({}, limit=1 << 20, max_files=20)
                contents = [o.data for o in outputs if o.data is not None]
                assert SECRET not in contents, "the collector read a host file through a swapped link"
                read_inside += contents.count(b"harmless")
    finally:
        files.close()
    # The race was real: the workspace's own files were read (through both names) many times meanwhile — about
    # 2 per collection on a quiet machine, 1,064 in 3,000 once on a loaded one; a tenth is plenty to say so.
    assert read_inside > ITERATIONS // 10


def test_only_files_of_the_workspace_are_listed_read_and_created(workspace: Path, host: Path) -> None:
    (workspace / "sub").mkdir()
    (workspace / "sub" / "mine.txt").write_bytes(b"mine")
    (workspace / "link").symlink_to(host / "out.txt")
    (workspace / "dirlink").symlink_to(host)
    os.link(workspace / "sub" / "mine.txt", workspace / "hardlink.txt")  # two links: neither is published
    (workspace / "solo.txt").write_bytes(b"solo")
    os.mkfifo(workspace / "pipe")
    files = WorkspaceFiles(workspace)
    try:
        assert sorted(files.listing()) == ["solo.txt"]
        assert files.read("dirlink/out.txt", 1 << 20) is None  # through a symlink: refused
        assert files.read("link", 1 << 20) is None
        assert files.read("pipe", 1 << 20) is None  # no stall on a FIFO
        assert files.read("solo.txt", 3) is None  # over the limit
        assert files.read("solo.txt", 4) == b"solo"
        assert not files.create("link", b"planted", os.getuid())  # a name the kernel took: left alone
        assert not files.create("dirlink", b"planted", os.getuid())
        with pytest.raises(OSError):
            files.create("dirlink/new.txt", b"planted", os.getuid())
        assert files.create("new.csv", b"1,2", 4242)
        assert (workspace / "new.csv").read_bytes() == b"1,2" and (workspace / "new.csv").stat().st_uid == 4242
    finally:
        files.close()
    assert sorted(p.name for p in host.iterdir()) == ["out.txt"] and (host / "out.txt").read_bytes() == SECRET


def test_a_workspace_that_is_not_a_mount_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(OSError, match="mount of its own"):
        WorkspaceFiles(plain)


def test_a_full_workspace_leaves_no_half_written_attachment(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mount("tmpfs", str(small), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k")
    try:
        files = WorkspaceFiles(small)
        with pytest.raises(OSError, match="No space left"):
            files.create("big.bin", b"x" * (1 << 20), os.getuid())
        assert list(small.iterdir()) == []
        files.close()
    finally:
        umount(str(small))
