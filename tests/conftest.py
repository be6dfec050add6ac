from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from openglm.store.db import Database, open_database

from .databases import database_url, pgvector_server
from .fixtures.cores import TEST_THREADS


def pytest_configure(config: pytest.Config) -> None:
    # Every server, engine and embedding model a test starts (in this process or a child, which inherits the
    # environment) reads its threads from here unless the test names its own: see fixtures/cores.py. Not in the
    # controller of an xdist run: its workers start with its environment, and each sets its own share (a value the
    # user set before pytest started is kept everywhere).
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    os.environ.setdefault("OPENGLM_THREADS", str(TEST_THREADS))


@pytest.fixture(scope="session")
def pgvector_admin() -> Iterator[str]:
    """The admin URL of a PostgreSQL server with pgvector, started once for the session (see databases.py)."""
    if importlib.util.find_spec("pgserver") is None:
        pytest.skip("pgserver (a PostgreSQL with pgvector) is not installed: pip install pgserver==0.1.4")
    # Not under pytest's basetemp: another pytest run on the machine prunes older basetemps (it keeps three), which
    # deleted the data directory under this running server.
    home = Path(tempfile.mkdtemp(prefix="openglm-pgvector-"))
    home.chmod(0o755)  # pgserver runs PostgreSQL as its own system user when we are root
    try:
        with pgvector_server(home / "pgdata") as url:
            yield url
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama GGUF with the default's tokenizer and template (tests/fixtures/tiny_model.py), written once
    a session: the base of the fine-tuning tests that test plumbing, not what the default model can learn."""
    from .fixtures.tiny_model import write_tiny_llama_gguf  # gguf and numpy: only in sessions that use it

    return write_tiny_llama_gguf(tmp_path_factory.mktemp("tiny-model") / "tiny-smollm2.gguf")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def db_url(db_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    admin = request.getfixturevalue("pgvector_admin") if db_kind == "pgvector" else None
    with database_url(db_kind, tmp_path, admin) as url:
        yield url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = await open_database(db_url)
    yield db
    await db.close()
