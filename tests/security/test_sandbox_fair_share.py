"""Issue #12, item 9: one tenant must not hold every kernel. The probe opened conversations from one account
until a small pool was exhausted; another account's code run then failed with "all sandboxed kernels are in
use". Here account A holds the whole pool (two kernels, and a per-account cap that allows both) and B's run
still succeeds, by taking over A's longest-idle kernel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .alltools_client import logs_of, run_agent, scripted_code_agent
from .conftest import RunningServer, new_key

STATEFUL = "n = globals().get('n', 0) + 1\nprint('run', n)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("sandbox-share")
    (tmp / "models.toml").write_text(scripted_code_agent("counter", STATEFUL))
    env = {
        "OPENGLM_AUTH": "on",
        "OPENGLM_SANDBOX_WARM": "0",
        "OPENGLM_SANDBOX_MAX_KERNELS": "2",
        "OPENGLM_SANDBOX_KERNELS_PER_ACCOUNT": "2",
    }
    running = RunningServer(models_file=tmp / "models.toml", log=tmp / "server.log", env=env)
    yield running
    running.stop()


def test_another_account_runs_code_while_one_account_holds_the_whole_pool(server: RunningServer) -> None:
    a, b = new_key(server, "tenant-a"), new_key(server, "tenant-b")
    for conversation in ("a1", "a2"):
        (result,) = run_agent(server, a, "counter", conversation)
        assert logs_of(result) == "run 1\n"
    (result,) = run_agent(server, b, "counter", "b1")
    assert logs_of(result) == "run 1\n", result  # not "all sandboxed kernels are in use"
    (again,) = run_agent(server, a, "counter", "a2")  # A's most recently used kernel kept its state
    assert logs_of(again) == "run 2\n"
