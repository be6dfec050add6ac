"""The one settings object: environment variables ``OPENGLM_*`` plus the model catalog file."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOG = PACKAGE_DIR / "models.toml"


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

    def models_to_load(self) -> set[str]:
        return {name.strip() for name in self.load_models.split(",") if name.strip()}
