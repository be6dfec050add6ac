"""Sandboxed, stateful Python kernels for the code interpreter tool.

Each kernel runs in its own Linux namespaces (mount, PID, network, IPC, UTS) under a uid of its own, with
resource limits, a private workspace and no network at all; the server talks to it over Unix sockets.
``docs/architecture.md`` says what this stops and what it does not.
"""
