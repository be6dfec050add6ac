"""A server started for an eval run: ``openglm serve`` on a free loopback port, on the operator's catalog plus
the eval environment (the stand-in image model, the browser over the local website)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..config import Settings
from .environment import EvalEnvironment

READY_SECONDS = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EvalServer:
    def __init__(self, env: EvalEnvironment, *, models_file: Path | None = None, data_dir: Path | None = None):
        settings = Settings()
        source = models_file or settings.models_file
        catalog = env.work_dir / "models.toml"
        catalog.write_text(Path(source).read_text() + env.catalog_additions())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = data_dir or env.work_dir / "data"
        self.log_path = env.work_dir / "server.log"
        environment = {**os.environ, "OPENGLM_DATA_DIR": str(data), **env.server_env()}
        if data_dir is None:  # a scratch server: its own master key too (an operator's data keeps its key)
            environment["OPENGLM_SECRET_KEY_FILE"] = str(env.work_dir / "secret.key")
        command = [sys.executable, "-m", "openglm", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--models-file", str(catalog)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        try:
            self._wait_ready()
        except BaseException:  # not ready, or stopped meanwhile (Ctrl-C, SIGTERM): the caller never gets to stop it
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the eval's server exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the eval's server did not start in {READY_SECONDS:.0f} s (log: {self.log_path})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
