"""An embedding backend for the ingestion tests, registered on import (also in the worker processes the tests
start, through ``--import tests.unit.knowledge.paused_embeddings``): deterministic vectors from the texts' bytes,
one line per call in ``<source>/calls.log`` (with the process id), and a pause while ``<source>/pause`` exists,
so a test can kill a worker exactly mid-embedding."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from openglm.embeddings.backends import Embedded, EmbeddingBackend, embedding_backends


@embedding_backends.register("test.paused")
class PausedEmbeddings(EmbeddingBackend):
    async def embed(self, texts: Sequence[str]) -> Embedded:
        home = Path(self.spec.source)
        with (home / "calls.log").open("a") as log:
            log.write(f"embed pid={os.getpid()} texts={len(texts)}\n")
        while (home / "pause").exists():
            await asyncio.sleep(0.02)
        rows = []
        for text in texts:
            digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), dtype=np.uint8)[: self.spec.dimensions]
            vector = digest.astype(np.float32) + 1
            rows.append(vector / np.linalg.norm(vector))
        return Embedded(np.stack(rows).astype(np.float32), tokens=sum(len(text.split()) for text in texts))


def calls(home: Path) -> list[str]:
    log = home / "calls.log"
    return log.read_text().splitlines() if log.exists() else []
