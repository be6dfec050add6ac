"""The server's hands in a kernel's workspace: listing, reading and creating files in a directory the kernel
controls, such that the kernel can never choose which file the server (root) opens.

The kernel runs code — threads and processes that outlive a cell — while the server collects its outputs, so
any name in the workspace can change between two system calls of the server: a directory swapped for a
symlink (``renameat2(RENAME_EXCHANGE)``) between a check and an open once made the server read its own
database. So nothing here resolves a path through the host's view of the workspace. Every open is relative to
one descriptor of the workspace's root, taken when the server mounted the workspace (a tmpfs of its own), with
``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS)``: the kernel
refuses any path that would leave the root, cross a mount or meet a symlink, whatever the kernel's code does
meanwhile. Every descriptor opened is then checked itself (``fstat``): a regular file, singly linked, on the
workspace's own filesystem. Where ``openat2`` is missing (Linux < 5.6, or a seccomp profile that predates
it), the same holds by walking one component at a time from descriptor to descriptor with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64 (and every architecture's generic table)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
CONFINED = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS

# A listing stops here: the workspace's inode quota bounds it too, but a deep tree must not cost a walk of
# everything (nor a descriptor per level: directories are opened one at a time).
MAX_DEPTH = 32
MAX_ENTRIES = 20_000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = CONFINED) -> int:
    """``openat2(2)``: a descriptor for ``path`` resolved under ``dirfd`` as ``resolve`` allows (close-on-exec)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    encoded = os.fsencode(path)
    fd = _libc.syscall(
        ctypes.c_long(SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(encoded),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def _probe_openat2() -> bool:
    try:
        os.close(openat2(-100, "/", os.O_PATH | os.O_DIRECTORY, resolve=0))  # AT_FDCWD
    except OSError as exc:
        log.warning("openat2 is not available (%s): workspace paths are walked one component at a time", exc)
        return False
    return True


HAVE_OPENAT2 = _probe_openat2()


@dataclass(frozen=True)
class Stamp:
    """What the listing saw of one file: enough to tell a file written (or replaced) since."""

    mtime_ns: int
    inode: int
    size: int


@dataclass(frozen=True)
class FileOut:
    """A file the code wrote, as the server will publish it. ``data`` is None when it is too large, or when it
    was no longer a regular file of the workspace by the time it was opened."""

    path: str  # relative to the workspace root, '/'-separated
    size: int
    data: bytes | None

    @property
    def name(self) -> str:
        """The file's own name, shown to the user (undecodable bytes replaced)."""
        raw = os.fsencode(self.path.rsplit("/", 1)[-1])
        return raw.decode("utf-8", errors="replace")


class WorkspaceFiles:
    """One kernel's workspace, held by a descriptor of its root from the moment it is mounted."""

    def __init__(self, root: Path, *, use_openat2: bool | None = None):
        self._openat2 = HAVE_OPENAT2 if use_openat2 is None else use_openat2
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            own = os.fstat(self.fd)
            parent = os.stat(root.parent, follow_symlinks=False)
            # Its own filesystem (the tmpfs the server mounted): what "inside the workspace" is checked against.
            if own.st_dev == parent.st_dev:
                raise OSError(errno.EXDEV, "the workspace is not a mount of its own", str(root))
        except BaseException:
            os.close(self.fd)
            raise
        self.device = own.st_dev

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open(self, path: str, flags: int, mode: int = 0) -> int:
        """A descriptor for ``path`` (relative, no ``.``/``..``/empty parts) that is, at the moment of opening,
        inside the workspace through no symlink and no mount. Raises OSError otherwise."""
        parts = path.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise OSError(errno.EINVAL, "not a plain relative path", path)
        if self._openat2:
            return openat2(self.fd, path, flags | os.O_NOFOLLOW, mode)
        return self._open_by_components(parts, flags, mode)

    def _open_by_components(self, parts: list[str], flags: int, mode: int) -> int:
        directory = self.fd
        try:
            for part in parts[:-1]:
                step = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
                if directory != self.fd:
                    os.close(directory)
                directory = step
                if os.fstat(directory).st_dev != self.device:
                    raise OSError(errno.EXDEV, "crosses a mount", "/".join(parts))
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=directory)
        finally:
            if directory != self.fd:
                os.close(directory)

    def _open_directory(self, path: str) -> int:
        if not path:
            return os.dup(self.fd)
        return self.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def listing(self) -> dict[str, Stamp]:
        """Regular, singly linked files of the workspace by relative path. Each directory is read through a
        descriptor opened as above and each entry examined by name in it without following it, so a name the
        kernel swaps meanwhile is either seen as what it is or skipped — never resolved elsewhere."""
        found: dict[str, Stamp] = {}
        pending: list[tuple[str, int]] = [("", 0)]
        seen = 0
        while pending and seen < MAX_ENTRIES:
            directory, depth = pending.pop()
            try:
                fd = self._open_directory(directory)
            except OSError:
                continue  # gone, or no longer a directory of the workspace
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        seen += 1
                        if seen > MAX_ENTRIES:
                            break
                        path = f"{directory}/{entry.name}" if directory else entry.name
                        try:
                            info = entry.stat(follow_symlinks=False)  # fstatat(fd, name, AT_SYMLINK_NOFOLLOW)
                        except OSError:
                            continue
                        if info.st_dev != self.device:
                            continue
                        if stat.S_ISDIR(info.st_mode) and depth + 1 < MAX_DEPTH:
                            pending.append((path, depth + 1))
                        elif stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                            found[path] = Stamp(info.st_mtime_ns, info.st_ino, info.st_size)
            except OSError:
                continue
            finally:
                os.close(fd)
        return found

    def read(self, path: str, limit: int) -> bytes | None:
        """The bytes of ``path`` if, once opened, it is a regular file of this workspace with one link and at
        most ``limit`` bytes; else None. ``O_NONBLOCK``: a FIFO planted under the name cannot stall the read."""
        try:
            fd = self.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not self._is_own_file(info) or info.st_size > limit:
                return None
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return None if size > limit else b"".join(chunks)
        except OSError:
            return None
        finally:
            os.close(fd)

    def create(self, name: str, data: bytes, uid: int) -> bool:
        """A new file ``name`` in the workspace's root holding ``data``, owned by ``uid``. False when the name is
        taken (by anything: ``O_EXCL`` never follows a link). A write that fails (the quota) leaves nothing."""
        try:
            fd = self.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        try:
            if not self._is_own_file(os.fstat(fd)):
                raise OSError(errno.EXDEV, "not a file of the workspace", name)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchown(fd, uid, uid)
        except BaseException:
            os.close(fd)
            # One name in the root, not followed: at worst it removes what the kernel put there meanwhile.
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.fd)
            raise
        os.close(fd)
        return True

    def _is_own_file(self, info: os.stat_result) -> bool:
        return stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and info.st_dev == self.device

    def written_since(self, before: dict[str, Stamp], *, limit: int, max_files: int) -> tuple[list[FileOut], int]:
        """Files written or replaced since ``before``, the first ``max_files`` read (up to ``limit`` bytes each),
        and how many more there were."""
        changed = sorted(
            (path, stamp)
            for path, stamp in self.listing().items()
            if (old := before.get(path)) is None or (old.mtime_ns, old.inode) != (stamp.mtime_ns, stamp.inode)
        )
        outputs = []
        for path, stamp in changed[:max_files]:
            data = self.read(path, limit) if stamp.size <= limit else None
            outputs.append(FileOut(path, stamp.size if data is None else len(data), data))
        return outputs, len(changed) - len(outputs)
