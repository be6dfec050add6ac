"""The one settings object: environment variables ``OPENGLM_*`` plus the model catalog file."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOG = PACKAGE_DIR / "models.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "openglm"


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class Settings(BaseSettings):
    """Read once at start-up and passed down; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="OPENGLM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    models_file: Path = DEFAULT_CATALOG
    # Only these catalog ids are loaded (comma separated); empty loads every entry.
    load_models: str = ""
    threads: int = default_threads()
    # Seconds a stalled stream may wait for its next token before it is failed.
    stream_timeout: float = 300.0

    # Where the SQLite database, the master key file and blobs live; created on first run.
    data_dir: Path = default_data_dir()
    # sqlite:///path or postgresql://user@host/db; empty means a SQLite file in data_dir.
    database_url: str = ""
    # Set to share per-key limits between gateway replicas (redis://host:6379/0); empty keeps them in-process.
    redis_url: str = ""
    # "auto": off when bound to loopback (one local user), on otherwise; "on"; "off" (loopback binds only).
    auth: Literal["auto", "on", "off"] = "auto"
    # Seals API-key secrets at rest; every replica must share it. Empty: a key file in data_dir.
    secret_key: str = Field(default="", repr=False)
    # CNY granted to each new account (a ledger entry of kind "grant").
    free_grant: Decimal = Decimal("5")
    # The fraction (0..1) of a charge through a GLM credited to its creator (a ledger entry of kind "share");
    # 0: usage is attributed to the agent and its creator, nothing is paid out.
    creator_share: Decimal = Field(default=Decimal(0), ge=0, le=1)
    # Limits for keys that set none of their own; 0 means unlimited.
    key_concurrency: int = Field(default=16, ge=0)
    key_rpm: int = Field(default=600, ge=0)
    key_daily_tokens: int = Field(default=0, ge=0)
    # Clock skew tolerated on JWT expiry, seconds.
    jwt_leeway: float = Field(default=30.0, ge=0)
    # Hours a web sign-in's session key lives (POST /auth/login).
    web_session_hours: float = Field(default=12.0, gt=0, le=24 * 90)

    # Code interpreter: kernels kept booted for new conversations, and seconds one run may take.
    sandbox_warm: int = Field(default=2, ge=0, le=32)
    sandbox_timeout: float = Field(default=60.0, gt=0)
    # Live kernels at most (one per active conversation), and idle minutes before a conversation's kernel goes.
    sandbox_max_kernels: int = Field(default=16, ge=1, le=1024)
    sandbox_idle_minutes: float = Field(default=15.0, gt=0)
    # Per kernel: address space, and the workspace's bytes and files (a tmpfs, so RAM when used).
    sandbox_memory_mb: int = Field(default=2048, ge=512)
    sandbox_workspace_mb: int = Field(default=512, ge=1)
    sandbox_workspace_files: int = Field(default=10_000, ge=16)

    # Knowledge bases: the embedding model new bases use (empty: the catalog's first [[embeddings]] entry), the
    # vector index ("flat": exact, in memory; "pgvector": HNSW in PostgreSQL; "auto": pgvector where the database
    # has the extension, else flat), ingestion workers, and the characters an account may keep.
    knowledge_embedding_model: str = ""
    vector_index: str = "auto"
    # pgvector: the HNSW candidate list (hnsw.ef_search) a search starts with; higher is better recall, slower
    # (docs/benchmarks.md: 200 gave recall@20 0.97-0.999 at +1.5 ms over 100).
    pgvector_ef_search: int = Field(default=200, ge=1, le=1000)
    ingest_workers: int = Field(default=2, ge=1, le=16)
    knowledge_capacity_chars: int = Field(default=20_000_000, ge=1)

    # Web browser: "local" (an index of browser_sites) or "searxng" (browser_searxng_url); empty: not offered.
    browser_search: str = ""  # a search provider's registry name
    browser_searxng_url: str = ""
    browser_sites: str = ""  # comma-separated start URLs for the local index
    # Addresses the browser may open although they are private or local (CIDRs, hosts, host:port), comma-separated.
    browser_allow: str = ""

    # Untrusted input (documents, web pages, OpenAPI documents, grammars) is parsed in worker processes: how many
    # run at once, each one's address space, and the seconds one parse may take before its worker is killed.
    parse_workers: int = Field(default=2, ge=1, le=64)
    parse_memory_mb: int = Field(default=1024, ge=256)
    parse_timeout: float = Field(default=30.0, gt=0)

    def models_to_load(self) -> set[str]:
        return {name.strip() for name in self.load_models.split(",") if name.strip()}

    @staticmethod
    def split(value: str) -> list[str]:
        return [item.strip() for item in value.split(",") if item.strip()]

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'openglm.db'}"

    def auth_enabled(self) -> bool:
        loopback = self.host in LOOPBACK_HOSTS
        if self.auth == "off" and not loopback:
            raise ValueError(f"OPENGLM_AUTH=off is refused when binding {self.host}: keys are required off loopback")
        return self.auth == "on" or (self.auth == "auto" and not loopback)
