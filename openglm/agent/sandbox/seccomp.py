"""A seccomp filter for kernels (loaded by bubblewrap's ``--seccomp``): the system calls that only reach the
Linux kernel's larger attack surfaces fail with EPERM, everything else is allowed.

The sandbox gives the kernel no capability, so most of these fail anyway — except through a user namespace,
which any unprivileged process may create where the host allows it (Debian does), and inside which it holds
every capability over namespaces of its own: nf_tables, mounts of several filesystems, and so on, where most
recent local privilege escalations start. So: no new namespaces (``unshare``, ``setns``, ``clone`` with
``CLONE_NEWUSER``; ``clone3``, whose flags a filter cannot read, answers ENOSYS and libc falls back to
``clone``), no mounts, and none of io_uring, eBPF, perf events, userfaultfd, the keyring, ptrace or module and
kexec loading. A system call of another ABI (x32, or 32-bit x86) fails as a whole.

Written as classic BPF by hand (a few dozen instructions): libseccomp's Python binding is not on PyPI.
"""

from __future__ import annotations

import errno
import platform
import struct

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian: low word first).
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
CLONE_NEWUSER = 0x10000000
X32_BIT = 0x40000000

# name: (x86_64, aarch64)
BLOCKED = {
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "ptrace": (101, 117),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
}
CLONE = (56, 220)
CLONE3 = (435, 435)
ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter for this machine's architecture as raw ``struct sock_filter``s; None where it has no table."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        return None
    column, audit_arch = ARCHES[machine]
    blocked = sorted(numbers[column] for numbers in BLOCKED.values())
    # Layout: checks, then the shared returns: [.. checks ..] ALLOW, EPERM, ENOSYS. A jump's offset counts the
    # instructions between it and its target.
    body: list[tuple[int, int, str | None, str | None]] = [
        (_LD_ABS, _ARCH, None, None),
        (_JEQ, audit_arch, None, "eperm"),
        (_LD_ABS, _NR, None, None),
    ]
    if machine == "x86_64":
        body.append((_JGE, X32_BIT, "eperm", None))
    body += [(_JEQ, nr, "eperm", None) for nr in blocked]
    body.append((_JEQ, CLONE3[column], "enosys", None))
    body.append((_JEQ, CLONE[column], None, "allow"))
    body.append((_LD_ABS, _ARG0_LOW, None, None))
    body.append((_JSET, CLONE_NEWUSER, "eperm", "allow"))
    targets = {"allow": len(body), "eperm": len(body) + 1, "enosys": len(body) + 2}
    out = []
    for index, (code, k, jt, jf) in enumerate(body):
        offsets = [0 if label is None else targets[label] - index - 1 for label in (jt, jf)]
        out.append(_insn(code, k, *offsets))
    out += [_insn(_RET, ALLOW), _insn(_RET, _ERRNO | errno.EPERM), _insn(_RET, _ERRNO | errno.ENOSYS)]
    return b"".join(out)
