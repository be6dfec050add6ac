"""The one settings object: environment variables ``OPENGLM_*`` plus the model catalog file."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOG = PACKAGE_DIR / "models.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "openglm"


def default_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
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
    # MB a JSON request body may have (file uploads take their purpose's limit); larger ones are refused with 413
    # while they are read, after the caller was authenticated from the headers.
    max_request_mb: int = Field(default=8, ge=1, le=1024)

    # Where the SQLite database, blobs and the sandboxes' workspaces live; created on first run, owner-only (0700).
    data_dir: Path = default_data_dir()
    # sqlite:///path or postgresql://user@host/db; empty means a SQLite file in data_dir.
    database_url: str = ""
    # Set to share per-key limits between gateway replicas (redis://host:6379/0); empty keeps them in-process.
    redis_url: str = ""
    # "auto": off when bound to loopback (one local user), on otherwise; "on"; "off" (loopback binds only).
    auth: Literal["auto", "on", "off"] = "auto"
    # Seals API-key secrets at rest; every replica must share it. Empty: the key file below.
    secret_key: str = Field(default="", repr=False)
    # The master key file, made on first run (0600, in a 0700 directory). Never inside data_dir: a copy or a leak
    # of the data directory must not carry the key that opens its sealed secrets (a key file an older version
    # made in data_dir is moved here on start).
    secret_key_file: Path = default_config_dir() / "secret.key"
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
    # Kernels one account may hold at once (0: half of sandbox_max_kernels), and seconds a new conversation waits
    # for a kernel to come free when every kernel is busy, before a "busy" (1302) error.
    sandbox_kernels_per_account: int = Field(default=0, ge=0, le=1024)
    sandbox_queue_seconds: float = Field(default=30.0, ge=0, le=600)
    # Per kernel: memory (each process's address space, and all its processes' RAM together), CPU cores' worth
    # of time for all its processes together, and the workspace's bytes and files (a tmpfs, so RAM when used).
    sandbox_memory_mb: int = Field(default=2048, ge=512)
    sandbox_cpus: float = Field(default=1.0, gt=0, le=256)
    sandbox_workspace_mb: int = Field(default=512, ge=1)
    sandbox_workspace_files: int = Field(default=10_000, ge=16)
    # All kernels together, where cgroups exist (0: no overall limit, only each kernel's): CPU cores' worth of
    # time, and memory (past it the OOM killer picks among all the kernels, so keep it above what they need).
    sandbox_total_cpus: float = Field(default=0.0, ge=0, le=1024)
    sandbox_total_memory_mb: int = Field(default=0, ge=0)

    # Knowledge bases: the embedding model new bases use (empty: the catalog's first [[embeddings]] entry), the
    # vector index ("flat": exact, in memory; "pgvector": HNSW in PostgreSQL; "auto": pgvector where the database
    # has the extension, else flat), ingestion workers, and the characters an account may keep.
    knowledge_embedding_model: str = ""
    vector_index: str = "auto"
    # pgvector: the HNSW candidate list (hnsw.ef_search) a search starts with; higher is better recall, slower
    # (docs/benchmarks.md: 200 gave recall@20 0.97-0.999 at +1.5 ms over 100).
    pgvector_ef_search: int = Field(default=200, ge=1, le=1000)
    # Documents ingested at once by this server: job-runner slots of the ``knowledge_ingest`` kind alone, besides
    # the shared OPENGLM_JOB_WORKERS (0: none here, only in ``openglm jobs work`` processes, which take at least 1).
    ingest_workers: int = Field(default=4, ge=0, le=64)
    knowledge_capacity_chars: int = Field(default=20_000_000, ge=1)
    # Async calls (``/async/chat/completions``, ``/async/images/generations``) this server runs at once: job-runner
    # slots of the ``async_call`` kind alone, so they are not queued behind fine-tuning jobs. Only servers run them
    # (they need the loaded models); 0: this replica leaves them to the others.
    async_workers: int = Field(default=4, ge=0, le=64)
    # Batches this server runs at once (job-runner slots of the ``batch`` kind alone), and the lines of one batch in
    # flight at once. Batch lines are background work for the engine (served after interactive requests).
    batch_workers: int = Field(default=1, ge=0, le=16)
    batch_concurrency: int = Field(default=8, ge=1, le=256)

    # MB of files an account may keep (uploads, knowledge documents, code outputs, pictures, GLM configurations)
    # unless the operator sets its own quota (admin API, ``openglm accounts storage``); -1: unlimited, 0: nothing
    # (the same as an account's own quota).
    storage_quota_mb: int = Field(default=1024, ge=-1)
    # GLMs an account may have, and the versions kept of each (older ones are removed as edits add new ones; a
    # conversation pinned to a removed version goes on with the current one). Their configurations count as storage.
    glms_per_account: int = Field(default=100, ge=1)
    glm_versions_kept: int = Field(default=20, ge=1)

    # Web browser: "local" (an index of browser_sites) or "searxng" (browser_searxng_url); empty: not offered.
    browser_search: str = ""  # a search provider's registry name
    browser_searxng_url: str = ""
    browser_sites: str = ""  # comma-separated start URLs for the local index
    # Addresses the browser may open although they are private or local (CIDRs, hosts, host:port), comma-separated.
    browser_allow: str = ""
    # Addresses user-defined HTTP tools (a GLM's OpenAPI operations) may call although private or local, in the same
    # form. The browser's list does not apply to them: any user can point a GLM anywhere. Catalog agents' HTTP tools
    # may also call the servers their (operator-written) documents name.
    http_tools_allow: str = ""
    # Seconds one browser page (redirects included) or one HTTP tool call may take in all, connecting and reading;
    # each network wait is bounded separately (10 s), which alone lets a server trickling bytes hold a call for hours.
    http_deadline: float = Field(default=30.0, gt=0)

    # Untrusted input (documents, web pages, OpenAPI documents, grammars) is parsed in worker processes: how many
    # run at once, each one's address space, and the seconds one parse may take before its worker is killed.
    parse_workers: int = Field(default=2, ge=1, le=64)
    parse_memory_mb: int = Field(default=1024, ge=256)
    parse_timeout: float = Field(default=30.0, gt=0)

    # Background jobs (``openglm/jobs/``): jobs this server runs at once (0: none here, only in separate
    # ``openglm jobs work`` processes); seconds a claim lasts without a heartbeat (a worker that dies gives its job
    # up after this long); seconds between heartbeats, which also notice cancellation (so a cancelled running job
    # stops within about this long); seconds an idle worker waits before looking for jobs other processes queued.
    job_workers: int = Field(default=2, ge=0, le=64)
    job_lease_seconds: float = Field(default=30.0, gt=0)
    job_heartbeat_seconds: float = Field(default=2.0, gt=0)
    job_poll_seconds: float = Field(default=2.0, gt=0)

    # Fine-tuning (``openglm/tuning/``): the trainer registry's entry that runs jobs (``local``: LoRA in torch in a
    # worker process of this machine; more by configuration), and the torch threads of the local trainer's process
    # (niced as well), so a job beside a serving engine does not fight llama.cpp's threads for every core (with 2
    # cores and both taken by serving, a training step is 5× slower).
    fine_tuning_trainer: str = "local"
    fine_tuning_threads: int = Field(default=max(1, default_threads() // 2), ge=1, le=256)
    # Where each job's working directory is made (``<dir>/<job id>``: checkpoints, the adapter, the ``command``
    # trainer's job files); empty: ``data_dir/fine-tuning``. For the ``command`` trainer, a directory the cluster's
    # nodes see at the same path (a shared filesystem).
    fine_tuning_work_dir: str = ""
    # The ``remote`` trainer: an OpenAI-compatible fine-tuning API (another OpenGLM, say ``http://gpu:8000/v1``),
    # its key, the remote names of local bases where they differ (``local=remote,…``), seconds between polls, and
    # seconds it may stay unreachable before the attempt is given up (and retried, re-attaching to the remote job).
    fine_tuning_remote_url: str = ""
    fine_tuning_remote_api_key: str = Field(default="", repr=False)
    fine_tuning_remote_models: str = ""
    fine_tuning_remote_poll_seconds: float = Field(default=2.0, gt=0)
    fine_tuning_remote_patience_seconds: float = Field(default=300.0, ge=0)
    # The ``command`` trainer: a shell command template that runs ``python -m openglm.tuning.runner {job_dir}`` on
    # a cluster and waits for it (``sbatch --wait job.sh {job_dir}``, ``kubectl …``), and one that cancels it
    # (optional: the runner also stops when a ``cancel`` file appears in its directory). Placeholders:
    # {job_dir}, {job_id}, {threads}, {python} (this interpreter), each shell-quoted.
    fine_tuning_submit_command: str = ""
    fine_tuning_cancel_command: str = ""

    # Merged fine-tunes (``POST /fine_tuning/fine_tuned_models/{model}/merge``) loaded at once by this process, each
    # an engine of its own (a second copy of the weights and a KV cache of the base's size); one merged beyond that is
    # served as its adapter on the base. 0: merging is off on this server.
    fine_tuning_merged_models: int = Field(default=2, ge=0, le=64)

    # Client commands (``openglm finetune``) call a running server's API: its URL (empty: this machine's
    # OPENGLM_HOST and OPENGLM_PORT) and the key they send (empty: none, for a server with authentication off).
    url: str = ""
    api_key: str = Field(default="", repr=False)

    # Modules imported at start by the server and by job workers (comma-separated), so that what they register
    # (engines, job kinds, trainers, ... each into its registry) is there: an operator's extensions, or tests'.
    plugins: str = ""

    @model_validator(mode="after")
    def _heartbeats_within_the_lease(self) -> Settings:
        if self.job_heartbeat_seconds * 2 > self.job_lease_seconds:
            raise ValueError(
                f"OPENGLM_JOB_HEARTBEAT_SECONDS ({self.job_heartbeat_seconds}) must be at most half of "
                f"OPENGLM_JOB_LEASE_SECONDS ({self.job_lease_seconds}): a lease must survive a late heartbeat"
            )
        return self

    def models_to_load(self) -> set[str]:
        return {name.strip() for name in self.load_models.split(",") if name.strip()}

    @staticmethod
    def split(value: str) -> list[str]:
        return [item.strip() for item in value.split(",") if item.strip()]

    def storage_quota_bytes(self) -> int | None:
        """The default storage quota in bytes; None: unlimited."""
        return None if self.storage_quota_mb == -1 else self.storage_quota_mb * 1024 * 1024

    def fine_tuning_root(self) -> Path:
        """Absolute: job directories are named to commands that run elsewhere."""
        return (
            Path(self.fine_tuning_work_dir) if self.fine_tuning_work_dir else self.data_dir / "fine-tuning"
        ).absolute()

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'openglm.db'}"

    def client_url(self) -> str:
        """Where client commands find the server: OPENGLM_URL, else this machine's host and port."""
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # a wildcard bind: loopback
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def auth_enabled(self) -> bool:
        loopback = self.host in LOOPBACK_HOSTS
        if self.auth == "off" and not loopback:
            raise ValueError(f"OPENGLM_AUTH=off is refused when binding {self.host}: keys are required off loopback")
        return self.auth == "on" or (self.auth == "auto" and not loopback)
