"""The study server's settings: one class, environment prefix FIELDMARK_, unsafe values refused."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "development-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIELDMARK_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    home: Path = Path("var")  # generated things: database, asset runs
    database_url: str = ""  # default: SQLite file under home
    studies_dir: Path = Path("studies")
    assets_dir: Path | None = None  # default: home / "assets"
    secret_key: str = DEV_SECRET
    base_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 64 * 1024  # participant forms are tiny; anything bigger is refused
    prolific_url: str = "https://app.prolific.com/submissions/complete"
    login_attempts_per_minute: int = 10  # failures per minute per account (per browser, once trusted) and per address
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses, "*" for any);
    # empty: none, the connecting address is the client's.
    trusted_proxies: str = ""
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    stats_engine: Literal["auto", "r", "python"] = "auto"  # auto: R's lme4 when installed, else the Python port

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        if self.environment == "production":
            if self.secret_key == DEV_SECRET or len(self.secret_key) < 32:
                raise ValueError(
                    "FIELDMARK_SECRET_KEY must be set to a long random value in production "
                    "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            if not self.base_url.startswith("https://"):
                raise ValueError("FIELDMARK_BASE_URL must be an https:// address in production")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'fieldmark.db'}"

    @property
    def assets_root(self) -> Path:
        return self.assets_dir or self.home / "assets"

    @property
    def secure_cookies(self) -> bool:
        return self.environment == "production"


@lru_cache
def get_settings() -> Settings:
    return Settings()
