"""The code interpreter tool's file handling, attacked: links the kernel plants must never make the server
(which runs as root) read or write host files; tool state is per account."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from openglm.agent.sandbox.policy import MiB, SandboxPolicy
from openglm.agent.sandbox.pool import KernelPool
from openglm.agent.tools.base import ToolContext
from openglm.agent.tools.code_interpreter import CodeInterpreter
from openglm.files.blobs import LocalBlobStore
from openglm.files.store import FileStore
from openglm.store.db import Database, open_database

POLICY = SandboxPolicy(timeout=5.0, memory_bytes=1024 * MiB)


@pytest.fixture
def host() -> Iterator[Path]:
    """A directory of the host, outside what the sandbox can see, with a secret in it."""
    root = Path(tempfile.mkdtemp(prefix="openglm-host-", dir="/opt"))
    (root / "secret.txt").write_text("host secret")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with db.session() as session:
        from openglm.store.models import Account

        session.add(Account(id="acct_a", name="a"))
        session.add(Account(id="acct_b", name="b"))
    yield db
    await db.close()


@pytest.fixture
async def tool(host: Path, database: Database, tmp_path: Path) -> AsyncIterator[CodeInterpreter]:
    pool = KernelPool(POLICY, tmp_path / "sandboxes", warm=0, hidden=[str(host)])
    await pool.start()
    yield CodeInterpreter(pool, FileStore(database, LocalBlobStore(tmp_path / "blobs")))
    await pool.close()


def context(conversation: str = "acct_a:c1", **options: object) -> ToolContext:
    return ToolContext(conversation, "acct_a", dict(options), None, "http://server/")


async def test_links_to_host_files_are_not_published(tool: CodeInterpreter, host: Path) -> None:
    plant = (
        "import os\n"
        f"os.symlink({str(host / 'secret.txt')!r}, 'leak.txt')\n"
        "os.symlink('/etc/shadow', 'shadow.txt')\n"
        "open('real.txt', 'w').write('mine')\n"
    )
    result = await tool.run({"code": plant}, context())
    files = [o for o in result.outputs if o["type"] == "file"]
    assert len(files) == 1  # only the regular file the code wrote
    assert tool.files is not None
    listed, _ = await tool.files.list("acct_a")
    contents = [(await tool.files.content("acct_a", r.id))[1] for r in listed]
    assert contents == [b"mine"] and not any(b"secret" in c or b"root:" in c for c in contents)


async def test_attaching_through_a_planted_link_writes_nothing_on_the_host(tool: CodeInterpreter, host: Path) -> None:
    target = host / "planted"
    await tool.run({"code": f"import os; os.symlink({str(target)!r}, 'data.csv')"}, context())
    assert tool.files is not None
    upload = await tool.files.create("acct_a", "code-interpreter", "data.csv", b"1,2,3", "text/csv")
    await tool.run({"code": "print(1)"}, context(file_ids=[upload.id]))
    assert not target.exists()  # the server did not follow the kernel's link


async def test_attachments_arrive_and_other_accounts_files_do_not(tool: CodeInterpreter) -> None:
    assert tool.files is not None
    mine = await tool.files.create("acct_a", "code-interpreter", "nums.csv", b"1\n2\n", "text/csv")
    theirs = await tool.files.create("acct_b", "code-interpreter", "theirs.csv", b"x", "text/csv")
    result = await tool.run({"code": "print(open('nums.csv').read().split())"}, context(file_ids=[mine.id]))
    assert result.outputs[0]["logs"] == "['1', '2']\n"
    with pytest.raises(Exception, match="does not exist"):
        await tool.run({"code": "print(1)"}, context(file_ids=[theirs.id]))


async def test_endless_output_is_capped(tool: CodeInterpreter) -> None:
    result = await tool.run({"code": "for _ in range(5000):\n    print('x' * 1000)"}, context())
    logs = result.outputs[0]["logs"]
    assert len(logs) < 1_200_000 and "output truncated" in logs
