"""Start the real server on a free loopback port, as users run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    def __init__(
        self,
        *,
        models_file: Path | None = None,
        env: dict[str, str] | None = None,
        log: Path,
        host: str = "127.0.0.1",
        wait: bool = True,
        command_prefix: list[str] | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # command_prefix: a launcher that execs the server in another environment (its pid stays the server's).
        command = [*(command_prefix or []), sys.executable, "-m", "openglm", "serve", "--host", host]
        command += ["--port", str(self.port)]
        if models_file is not None:
            command += ["--models-file", str(models_file)]
        self._log = log.open("wb")
        # Each server gets its own data directory (SQLite file, blobs) and master key file unless the test names
        # them (the key's default place is the user's ~/.config, shared by every server of the machine). The key
        # file sits beside the data directory, so a server restarted on a test's data directory finds its key.
        data_dir = Path((env or {}).get("OPENGLM_DATA_DIR") or log.parent / f"data-{self.port}")
        self.env = {
            **os.environ,  # OPENGLM_THREADS: the worker's share of the cores (tests/fixtures/cores.py)
            "OPENGLM_DATA_DIR": str(data_dir),
            "OPENGLM_SECRET_KEY_FILE": str(data_dir.parent / f"{data_dir.name}-config" / "secret.key"),
            **(env or {}),
        }
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        self.log_path = log
        if wait:
            self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not become ready")

    def cli(self, *args: str) -> str:
        """Run ``openglm <args>`` against this server's store; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "openglm", *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"openglm {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
