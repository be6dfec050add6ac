"""Sandboxed, stateful Python kernels for the code interpreter tool.

Each kernel runs under bubblewrap in namespaces of its own (mount, PID, network, IPC, UTS, cgroup), under a uid,
a cgroup and a seccomp filter of its own, with rlimits, a private workspace and no network; the server talks to
it over Unix sockets and reaches its workspace only through a descriptor. ``docs/architecture.md`` and
``docs/security.md`` say what this stops and what it does not.
"""
