"""The ``pgvector`` vector index: chunk embeddings searched inside PostgreSQL with the ``vector`` extension.

Its structures belong to the index, not to the migrations (they exist only where this index is chosen, and which
HNSW indexes exist depends on the catalog's embedding sizes). ``open`` creates whatever is missing in one
transaction under an advisory lock, so replicas starting together do it once:

    CREATE EXTENSION vector
    knowledge_vectors(seq → knowledge_chunks.seq ON DELETE CASCADE, knowledge_id, dims, embedding vector)
    a trigger on knowledge_chunks filling it from ``knowledge_chunks.embedding`` (float32 little-endian bytes)
    per embedding size d ≤ 2000: an HNSW index on ((embedding::vector(d)) vector_cosine_ops) WHERE dims = d

The chunks table stays the source of truth. The trigger copies each written chunk's embedding in the same
transaction (whoever writes it: this server, a replica running ``flat``, a restore), deletes follow by cascade,
and when the trigger is first created the chunks already there are copied too. Decoding the bytes in PL/pgSQL
costs ~0.15 ms per 384-dimension chunk (docs/architecture.md), less than inserting it into the HNSW graph.

Search: a base with at most ``exact_rows`` vectors of the query's size is scanned exactly (its rows by the
knowledge_id index, every distance computed: the same answer as ``flat``). A bigger one is searched in the HNSW
index of its size (the planner is told not to sort instead), which holds every base's vectors; pgvector 0.6
filters the index's ``ef_search`` nearest by base afterwards, so when fewer than ``limit`` of them belong to the
base, ``ef_search`` is raised (×4, up to 1000) and, failing that, the base is scanned exactly. A search never
returns fewer hits than an exact one would.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import UserDefinedType

from ..config import Settings
from .index import Vector, VectorIndex, VectorIndexUnavailable, vector_indexes
from .store import KnowledgeStore

log = logging.getLogger(__name__)

_LOCK = 0x6F676C6D766563  # any constant, the same for every replica ("oglmvec")
MAX_HNSW_DIMS = 2000  # pgvector's limit for an HNSW index on `vector`
MAX_EF_SEARCH = 1000  # pgvector's limit for hnsw.ef_search
EXACT_ROWS = 10_000  # ~9 ms for an exact scan of 384-dimension vectors
CACHED_BASES = 100_000
INSTALL = (
    "install pgvector in the PostgreSQL server (https://github.com/pgvector/pgvector), or run one that bundles "
    "it (the `pgserver` Python package)"
)

TABLE = """
CREATE TABLE IF NOT EXISTS knowledge_vectors (
    seq INTEGER PRIMARY KEY REFERENCES knowledge_chunks (seq) ON DELETE CASCADE,
    knowledge_id VARCHAR(40) NOT NULL,
    dims INTEGER NOT NULL,
    embedding vector NOT NULL
)"""
TABLE_INDEX = "CREATE INDEX IF NOT EXISTS ix_knowledge_vectors_kb ON knowledge_vectors (knowledge_id, dims)"
# IEEE 754 binary32, little-endian, decoded exactly: (2^23 + mantissa) × 2^(exponent - 150), or mantissa × 2^-149
# when subnormal. The copy into `plain` detoasts once; get_byte on a compressed value would inflate it each call.
DECODE = r"""
CREATE OR REPLACE FUNCTION openglm_float32_vector(b bytea) RETURNS vector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    plain bytea := b || '\x'::bytea;
    result vector;
BEGIN
    SELECT array_agg(
               CASE WHEN e = 0 THEN m * 2::float8 ^ -149 ELSE (8388608 + m) * 2::float8 ^ (e - 150) END
               * (1 - 2 * s) ORDER BY i)::real[]::vector
      INTO result
      FROM (SELECT i,
                   get_byte(plain, i + 3) >> 7 AS s,
                   ((get_byte(plain, i + 3) & 127) << 1) | (get_byte(plain, i + 2) >> 7) AS e,
                   ((get_byte(plain, i + 2) & 127) << 16) | (get_byte(plain, i + 1) << 8) | get_byte(plain, i) AS m
              FROM generate_series(0, length(plain) - 4, 4) AS i) AS parts;
    RETURN result;
END $$"""
SYNC = """
CREATE OR REPLACE FUNCTION openglm_knowledge_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO knowledge_vectors (seq, knowledge_id, dims, embedding)
    VALUES (NEW.seq, NEW.knowledge_id, length(NEW.embedding) / 4, openglm_float32_vector(NEW.embedding))
    ON CONFLICT (seq) DO UPDATE
        SET knowledge_id = EXCLUDED.knowledge_id, dims = EXCLUDED.dims, embedding = EXCLUDED.embedding;
    RETURN NULL;
END $$"""
TRIGGER = (
    "CREATE TRIGGER knowledge_chunks_vector AFTER INSERT OR UPDATE OF embedding, knowledge_id ON knowledge_chunks "
    "FOR EACH ROW EXECUTE FUNCTION openglm_knowledge_vector()"
)
BACKFILL = """
INSERT INTO knowledge_vectors (seq, knowledge_id, dims, embedding)
SELECT c.seq, c.knowledge_id, length(c.embedding) / 4, openglm_float32_vector(c.embedding)
  FROM knowledge_chunks c
 WHERE NOT EXISTS (SELECT 1 FROM knowledge_vectors v WHERE v.seq = c.seq)"""


def hnsw_index_name(dims: int) -> str:
    return f"ix_knowledge_vectors_hnsw_{dims}"


def hnsw_index(dims: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(dims)} ON knowledge_vectors "
        f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
        f"WHERE dims = {dims}"
    )


def approximate_query(dims: int) -> str:
    """Nearest first through the HNSW index of this size (the cast and the literal ``dims`` match its expression
    and predicate); binds :q (see ``statement``), :kb, :limit."""
    return (
        f"SELECT seq, embedding::vector({dims}) <=> :q AS distance FROM knowledge_vectors "
        f"WHERE dims = {dims} AND knowledge_id = :kb ORDER BY distance LIMIT :limit"
    )


EXACT_QUERY = (
    "SELECT seq, embedding <=> :q AS distance FROM knowledge_vectors "
    "WHERE knowledge_id = :kb AND dims = :dims ORDER BY distance, seq LIMIT :limit"
)


class VectorParameter(UserDefinedType[str]):
    """pgvector's text form, bound as ``$1::vector``: PostgreSQL parses it once. Bound as the varchar it would
    otherwise be, a cast in the query is redone for every row compared once psycopg prepares the statement and
    the server picks a generic plan (a 2,000-row exact scan went from ~3 to ~70 ms)."""

    cache_ok = True
    render_bind_cast = True

    def get_col_spec(self, **kw: object) -> str:
        return "vector"


def statement(query: str) -> TextClause:
    return text(query).bindparams(bindparam("q", type_=VectorParameter()))


def vector_text(vector: Vector) -> str:
    """pgvector's text form; the repr of each float32 (as a double) reads back as the same float32."""
    return "[" + ",".join(map(repr, vector.astype("float32", copy=False).tolist())) + "]"


@dataclass
class _Base:
    version: int
    dims: int
    rows: int  # vectors of this size in the base
    ef_search: int = 0  # the ef_search that last found enough of the base's rows, when the setting did not


@vector_indexes.register("pgvector")
class PgVectorIndex(VectorIndex):
    """HNSW (cosine) in PostgreSQL; bases up to ``exact_rows`` vectors are searched exactly."""

    def __init__(self, store: KnowledgeStore, *, ef_search: int = 200, exact_rows: int = EXACT_ROWS):
        super().__init__(store)
        if store.db.dialect != "postgresql":
            raise VectorIndexUnavailable(
                f"the pgvector index needs a PostgreSQL database (OPENGLM_DATABASE_URL=postgresql://…); this one "
                f"is {store.db.dialect}: set OPENGLM_VECTOR_INDEX=flat"
            )
        self.ef_search = ef_search
        self.exact_rows = exact_rows
        self.indexed: set[int] = set()  # sizes with an HNSW index
        self._bases: OrderedDict[tuple[str, int], _Base] = OrderedDict()

    @classmethod
    async def open(cls, store: KnowledgeStore, settings: Settings, dimensions: Collection[int]) -> VectorIndex:
        index = cls(store, ef_search=settings.pgvector_ef_search)
        await index.prepare(dimensions)
        return index

    async def prepare(self, dimensions: Collection[int] = ()) -> None:
        """Create what is missing (see the module's docstring): the extension, the table, its trigger (copying the
        chunks already there) and an HNSW index for every size in ``dimensions`` and in existing bases. What exists
        is left alone, so that a restart takes no lock that would hold up other replicas' writes."""
        async with self.store.db.writing() as connection:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
            await _create_extension(connection)
            if not await connection.scalar(text("SELECT to_regclass('knowledge_vectors') IS NOT NULL")):
                await connection.exec_driver_sql(TABLE)
                await connection.exec_driver_sql(TABLE_INDEX)
            await connection.exec_driver_sql(DECODE)
            await connection.exec_driver_sql(SYNC)
            if not await connection.scalar(text("SELECT 1 FROM pg_trigger WHERE tgname = 'knowledge_chunks_vector'")):
                await connection.exec_driver_sql(TRIGGER)
                copied = (await connection.exec_driver_sql(BACKFILL)).rowcount
                log.info("pgvector: copied the embeddings of %d existing chunks", copied)
            sizes = set(dimensions) | set(
                (await connection.scalars(text("SELECT DISTINCT dimensions FROM knowledge_bases"))).all()
            )
            missing = {d for d in sizes if 0 < d <= MAX_HNSW_DIMS} - await _indexed_sizes(connection)
            for dims in sorted(missing):
                await connection.exec_driver_sql(hnsw_index(dims))
            self.indexed = await _indexed_sizes(connection)

    async def search(self, knowledge_id: str, query: Vector, limit: int) -> list[tuple[int, float]]:
        dims = int(query.shape[-1])
        base = await self._base(knowledge_id, dims)
        if base is None or base.rows == 0 or limit <= 0:
            return []
        q = vector_text(query)
        hits = None
        if dims in self.indexed and base.rows > self.exact_rows:
            hits = await self._approximate(knowledge_id, base, q, limit)
        if hits is None:
            hits = await self._fetch(EXACT_QUERY, {"q": q, "kb": knowledge_id, "dims": dims, "limit": limit})
        return [(seq, 1.0 - distance) for seq, distance in hits]

    async def _approximate(self, knowledge_id: str, base: _Base, q: str, limit: int) -> list[tuple[int, float]] | None:
        """The HNSW search, with ef_search raised until it finds ``limit`` of the base's rows; None: it cannot."""
        wanted = min(limit, base.rows)
        ef_search = min(max(self.ef_search, limit, base.ef_search), MAX_EF_SEARCH)
        query = approximate_query(base.dims)
        while True:
            hits = await self._fetch(query, {"q": q, "kb": knowledge_id, "limit": limit}, ef_search=ef_search)
            if len(hits) >= wanted:
                base.ef_search = ef_search if ef_search > self.ef_search else 0
                return hits
            if ef_search >= MAX_EF_SEARCH:
                return None
            ef_search = min(ef_search * 4, MAX_EF_SEARCH)

    async def _fetch(
        self, query: str, values: dict[str, object], *, ef_search: int | None = None
    ) -> list[tuple[int, float]]:
        if ef_search is None:
            rows = await self.store.db.fetch(statement(query).bindparams(**values))
        else:
            async with self.store.db.read() as session:
                await _through_the_graph(session, ef_search)
                rows = (await session.execute(statement(query), values)).all()
        return [(int(seq), float(distance)) for seq, distance in rows]

    async def explain(self, knowledge_id: str, query: Vector, limit: int) -> str:
        """The plan of the HNSW search of this base (as ``search`` runs it past ``exact_rows``)."""
        async with self.store.db.read() as session:
            await _through_the_graph(session, self.ef_search)
            values = {"q": vector_text(query), "kb": knowledge_id, "limit": limit}
            plan = await session.execute(statement("EXPLAIN " + approximate_query(int(query.shape[-1]))), values)
            return "\n".join(plan.scalars())

    async def _base(self, knowledge_id: str, dims: int) -> _Base | None:
        """The base's version and row count of this size, counted again when its index version moves."""
        version = await self.store.index_version(knowledge_id)
        key = (knowledge_id, dims)
        if version is None:
            self._bases.pop(key, None)
            return None
        cached = self._bases.get(key)
        if cached is None or cached.version != version:
            rows = await self.store.db.fetch(
                text("SELECT count(*) FROM knowledge_vectors WHERE knowledge_id = :kb AND dims = :dims").bindparams(
                    kb=knowledge_id, dims=dims
                )
            )
            cached = _Base(version, dims, int(rows[0][0]))
            if dims not in self.indexed and 0 < dims <= MAX_HNSW_DIMS:
                self.indexed = await self._indexed_sizes()  # another replica may have made one since
        self._bases[key] = cached
        self._bases.move_to_end(key)
        while len(self._bases) > CACHED_BASES:
            self._bases.popitem(last=False)
        return cached

    async def _indexed_sizes(self) -> set[int]:
        async with self.store.db.engine.connect() as connection:
            return await _indexed_sizes(connection)


async def _through_the_graph(session: AsyncSession, ef_search: int) -> None:
    """For this transaction: ``ef_search``, and no top-N sort. A base gets here only when it holds more than
    ``exact_rows`` vectors, which the planner may not know: at 20,000 of 25,000 rows it chose to sort them all
    (13 ms) over the HNSW index (5-7 ms at 0.91-0.97 recall@20)."""
    await session.execute(
        text("SELECT set_config('hnsw.ef_search', :ef, true), set_config('enable_sort', 'off', true)"),
        {"ef": str(ef_search)},
    )


async def _create_extension(connection: AsyncConnection) -> None:
    available = await connection.scalar(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
    if not available:
        raise VectorIndexUnavailable(
            f"the PostgreSQL server has no `vector` extension (pgvector): {INSTALL}, or set OPENGLM_VECTOR_INDEX=flat"
        )
    try:
        await connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except DBAPIError as exc:  # most often: not allowed to create extensions
        raise VectorIndexUnavailable(
            f"could not create the `vector` extension (pgvector): {exc.orig}; a superuser can run CREATE EXTENSION "
            f"vector in this database once, or set OPENGLM_VECTOR_INDEX=flat"
        ) from exc


async def _indexed_sizes(connection: AsyncConnection) -> set[int]:
    names = await connection.scalars(
        text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass('knowledge_vectors') AND i.indisvalid AND c.relname LIKE :pattern"
        ),
        {"pattern": hnsw_index_name(0)[:-1] + "%"},
    )
    return {int(name.rsplit("_", 1)[1]) for name in names}
