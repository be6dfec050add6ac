"""Issue #12, item 1: a kernel that swaps workspace entries for symlinks while the server collects its output
files must not get the server to publish host files (its SQLite database, blobs, the master key) — nor to open
and close the server's own SQLite files, which drops the process's POSIX locks on them and lets another
process delete the live WAL (lost usage records while ``openglm db verify`` still passed).

The attack, as the probe ran it: code in the kernel starts a thread that keeps exchanging
(``renameat2(RENAME_EXCHANGE)``) a directory of decoy files named like the data directory's with a symlink to
the data directory, and every run adds a pair, so that each collection finds new files under both names.
Measured here: 80 runs (collections) in about 15 s.

Where cgroups exist the server freezes the kernel between runs, so its thread cannot rename anything while the
server collects: that proves the end-to-end result, not the descriptor discipline. So the test runs twice: once
as deployed, and once with the server in a mount namespace without the cgroup filesystem — the fallback of a
host without usable cgroups, where nothing is frozen and the thread races every collection — which proves,
through the real server, that the way the server opens workspace files is safe on its own."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .alltools_client import files_of, logs_of, run_agent, scripted_code_agent
from .conftest import RunningServer, new_key

ROUNDS = 10  # code runs per request, each followed by a collection of its outputs
REQUESTS = 8
DECOYS = ("openglm.db", "openglm.db-wal", "openglm.db-shm", "secret.key")


def race_code(target: Path) -> str:
    return f"""
import ctypes, os, threading
state = globals().setdefault("_race", {{"n": 0, "pairs": []}})
state["n"] += 1
d, s = f"d{{state['n']}}", f"s{{state['n']}}"
os.mkdir(d)
for name in {DECOYS!r}:
    with open(f"{{d}}/{{name}}", "w") as decoy:
        decoy.write("decoy")
os.symlink({str(target)!r}, s)  # the data directory, as the server (not the kernel) sees it
state["pairs"].append((d.encode(), s.encode()))
if "thread" not in state:
    libc = ctypes.CDLL(None, use_errno=True)
    def race(pairs=state["pairs"]):
        while True:
            for a, b in pairs[-2:]:  # the newest two: fresh paths to collect every run, not hundreds
                libc.renameat2(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE
    state["thread"] = threading.Thread(target=race, daemon=True)
    state["thread"].start()
print("pairs", len(state["pairs"]))
"""


# The server in a mount namespace of its own from which the cgroup filesystem is unmounted: it finds no cgroup
# hierarchy, as on a host without one, and runs its kernels unfrozen (rlimits only).
WITHOUT_CGROUPS = [
    *("unshare", "--mount", "--propagation", "private", "--"),
    *("sh", "-c", 'umount -l /sys/fs/cgroup && exec "$@"', "without-cgroups"),
]


@pytest.fixture(scope="module", params=["cgroups", "no-cgroups"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("sandbox-outputs")
    data = tmp / "data"
    catalog = scripted_code_agent("racer", race_code(data), max_rounds=ROUNDS + 1)
    catalog += scripted_code_agent("plain", "print('plain')")
    (tmp / "models.toml").write_text(catalog)
    running = RunningServer(
        models_file=tmp / "models.toml",
        log=tmp / "server.log",
        env={"OPENGLM_AUTH": "on", "OPENGLM_DATA_DIR": str(data), "OPENGLM_SANDBOX_WARM": "0"},
        command_prefix=WITHOUT_CGROUPS if request.param == "no-cgroups" else None,
    )
    yield running
    running.stop()


def frozen_between_runs(server: RunningServer) -> bool:
    """Whether the server's kernels get cgroups (and so are frozen while their outputs are collected)."""
    log = server.log_path.read_text(errors="replace")
    assert "sandboxed kernels get cgroup" in log or "no per-kernel cgroups" in log, log[-2000:]
    return "no per-kernel cgroups" not in log


def requests_recorded(server: RunningServer, account: str) -> int:
    table = server.cli("usage", "--account", account, "--by", "model")
    return sum(int(m.group(1)) for m in re.finditer(r"^\S+\s+(\d+)\s", table, re.MULTILINE))


def test_racing_links_never_make_the_server_publish_or_touch_its_own_files(
    server: RunningServer, request: pytest.FixtureRequest
) -> None:
    key = new_key(server, "racer-org")
    data = Path(server.env["OPENGLM_DATA_DIR"])
    published: list[bytes] = []
    logs = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(REQUESTS):
            results = run_agent(server, key, "racer", "race")
            logs += [logs_of(r) for r in results]
            published += [client.get(link).content for r in results for link in files_of(r)]
    leaked = [c[:40] for c in published if c != b"decoy"]
    assert leaked == [], f"published {len(leaked)} files that are not the kernel's: {leaked[:5]}"
    assert logs == [f"pairs {n + 1}\n" for n in range(REQUESTS * ROUNDS)]  # every run ran, in one kernel
    # The attack was live: the kernel's decoys were collected (through whichever name held the directory).
    assert published.count(b"decoy") > REQUESTS * ROUNDS
    # The variant is what it says: frozen while collected only where the server has cgroups.
    assert frozen_between_runs(server) == (request.node.callspec.params["server"] == "cgroups")

    # The server never opened its own database files for the kernel: it still holds their POSIX locks, so a
    # CLI process neither deletes the live WAL nor misses what the server writes afterwards.
    server.cli("db", "verify")
    for _ in range(3):
        run_agent(server, key, "plain", "after")
    fds = Path(f"/proc/{server.process.pid}/fd")
    targets = [os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()]
    assert not [t for t in targets if t.startswith(str(data)) and t.endswith("(deleted)")], targets
    assert requests_recorded(server, "racer-org") == REQUESTS + 3
    assert "every balance equals" in server.cli("db", "verify")
