"""What a sandboxed kernel may use. One policy per server, from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

MiB = 1024 * 1024


@dataclass(frozen=True)
class SandboxPolicy:
    # Memory of the kernel: the address space of each of its processes (RLIMIT_AS: numpy + matplotlib need
    # ~1 GiB of mappings to start), and the RAM all of them hold together, tmpfs pages they write included (the
    # kernel's cgroup; no swap). Past the cgroup's limit the kernel's OOM killer picks one of them.
    memory_bytes: int = 2048 * MiB
    # CPU seconds over each process's whole life (RLIMIT_CPU); past it the kernel is killed and restarted.
    cpu_seconds: int = 600
    # CPU time per second the kernel and all it starts may take together (the cgroup's CFS quota; 1.0 = a core).
    cpus: float = 1.0
    # Processes and threads of the kernel's own uid (RLIMIT_NPROC) and of its cgroup (pids.max): stops fork
    # bombs.
    processes: int = 128  # an IPython kernel alone runs ~15 threads, and threads count
    # Largest file the code may write (RLIMIT_FSIZE).
    file_bytes: int = 256 * MiB
    open_files: int = 256
    # The workspace is a tmpfs of its own (mounted by the server), so these bound what a conversation keeps:
    # bytes in all and files in all (inodes). Past them, writes fail with "No space left on device".
    workspace_bytes: int = 512 * MiB
    workspace_files: int = 10_000
    # Size of the private /tmp, /var/tmp, /dev/shm and /run/lock.
    tmp_bytes: int = 64 * MiB
    # Wall-clock seconds one execution may run before it is interrupted.
    timeout: float = 60.0
    # Kernels get uids base_uid, base_uid + 1, ... (no passwd entry needed): one uid per kernel, so the
    # process limit is per kernel and kernels cannot signal or read each other.
    base_uid: int = 200_000
    # Paths made empty inside the sandbox, besides the server's data directory and root's home.
    hidden_paths: tuple[str, ...] = field(default_factory=tuple)
