"""The kernels' seccomp filter, run through a small classic-BPF interpreter for both architectures it knows
(x86_64 is also exercised for real by test_sandbox.py; aarch64 only here)."""

from __future__ import annotations

import errno
import struct

import pytest

from openglm.agent.sandbox.seccomp import ALLOW, ARCHES, BLOCKED, CLONE, CLONE3, CLONE_NEWUSER, program

EPERM = 0x00050000 | errno.EPERM
ENOSYS = 0x00050000 | errno.ENOSYS


def decide(filter_program: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """What the filter returns for one system call (the subset of classic BPF the filter uses)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack_from("<HBBI", filter_program, at) for at in range(0, len(filter_program), 8)]
    pc, accumulator = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            accumulator = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == 0x06:
            return k
        else:
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: bool(accumulator & k)}[code]
            pc += 1 + (jt if taken else jf)


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_blocked_calls_fail_and_the_rest_pass(machine: str) -> None:
    column, arch = ARCHES[machine]
    compiled = program(machine)
    assert compiled is not None
    for name, numbers in BLOCKED.items():
        assert decide(compiled, arch, numbers[column]) == EPERM, name
    assert decide(compiled, arch, CLONE3[column]) == ENOSYS  # libc falls back to clone
    assert decide(compiled, arch, CLONE[column], arg0=0x003D0F00) == ALLOW  # pthread_create's flags
    assert decide(compiled, arch, CLONE[column], arg0=CLONE_NEWUSER | 0x11) == EPERM
    for nr in (0, 1, 3, 63, 64, 93, 222, 231):  # read, write, close, mmap, exit... on either table
        if nr not in {numbers[column] for numbers in BLOCKED.values()} | {CLONE[column], CLONE3[column]}:
            assert decide(compiled, arch, nr) == ALLOW, nr
    assert decide(compiled, 0x40000003, 11) == EPERM  # another ABI (i386) as a whole


def test_x32_calls_are_refused_and_unknown_machines_get_no_filter() -> None:
    compiled = program("x86_64")
    assert compiled is not None and decide(compiled, ARCHES["x86_64"][1], 0x40000000 | 1) == EPERM
    assert program("riscv64") is None
