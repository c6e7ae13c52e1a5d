"""Settings of `grove api`: every option is also an environment variable with the prefix GROVE_."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# api/grove_api/settings.py -> the repository root, which holds playbooks/, collections/ and roles/.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GROVE_", extra="ignore")

    host: str = Field("0.0.0.0", description="address to listen on")  # noqa: S104 - a server's default
    port: int = Field(10000, ge=1, le=65535, description="port to listen on (Oakestra's)")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    inventory: Path | None = Field(None, description="Ansible inventory of the workers (clusters are groups)")
    data_dir: Path = Field(Path("/var/lib/grove/api"), description="signing key, job directories, locks")
    db: Path | None = Field(None, description="SQLite file (default: DATA_DIR/grove.db)")
    mongo_url: SecretStr | None = Field(None, description="use MongoDB at this URL instead of SQLite")
    mongo_db: str = Field("grove", description="MongoDB database name")

    jwt_secret: SecretStr | None = Field(
        None, description="HS256 signing key (default: generated in DATA_DIR)"
    )
    admin_password: SecretStr | None = Field(None, description="password of Admin when first created")
    access_token_minutes: int = Field(10, ge=1)
    refresh_token_days: int = Field(7, ge=1)
    # About 50 ms per login on a 2-core machine (measured: benchmarks/bench_api.py, docs/benchmarks.md).
    argon2_time_cost: int = Field(2, ge=1)
    argon2_memory_kib: int = Field(32768, ge=8)
    argon2_parallelism: int = Field(1, ge=1)
    login_max_failures: int = Field(5, ge=1, description="failed logins before a client is throttled")
    login_lockout_seconds: float = Field(30, gt=0, description="first lockout; doubles while failures go on")
    login_lockout_max_seconds: float = Field(900, gt=0)

    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger request bodies answer 413")

    repo_root: Path = Field(SOURCE_ROOT, description="holds ansible.cfg, collections/ and roles/")
    playbook_dir: Path | None = Field(None, description="default: REPO_ROOT/playbooks")
    job_batch_seconds: float = Field(
        1.0, ge=0, description="the longest a run waits for more requests after the first one"
    )
    job_poll_seconds: float = Field(2.0, gt=0, description="how often a worker process looks for queued jobs")
    job_retry_seconds: float = Field(60, gt=0, description="wait before retrying a removal that failed")
    job_max_attempts: int = Field(
        2, ge=1, description="runs of a job interrupted by a restart before it fails"
    )
    job_batch_quiet_seconds: float = Field(
        0.15, ge=0, description="start sooner once no request came for this long (within job_batch_seconds)"
    )
    ssh_shared_connections: bool = Field(
        True, description="one SSH master connection per worker for all runs (else one per run)"
    )
    # About 30% off a deploy and 60% off a burst of 100 (docs/benchmarks.md); ansible-core 2.19
    # deprecates third-party strategy plugins, so this can be switched off.
    mitogen: bool = Field(True, description="run playbooks with Mitogen's linear strategy")
    facts_interval_seconds: float = Field(60, gt=0, description="how often cluster facts are refreshed")
    cluster_stale_seconds: float = Field(
        180, gt=0, description="facts older than this make a cluster inactive"
    )
    stop_timeout: int = Field(10, ge=0, description="seconds between SIGTERM and SIGKILL when removing")
    job_retention_days: float = Field(
        14,
        ge=0,
        description="finished jobs with their runs and event logs are deleted after this many days, "
        "except the last job of each instance and service (0: keep them forever)",
    )
    keep_job_dirs: bool = Field(False, description="keep each job's private data dir (without descriptor)")
    run_jobs: bool = Field(True, description="run deploy jobs in this process (off: only queue them)")

    @model_validator(mode="after")
    def _derived_paths(self) -> Settings:
        if self.db is None:
            self.db = self.data_dir / "grove.db"
        if self.playbook_dir is None:
            self.playbook_dir = self.repo_root / "playbooks"
        return self

    @property
    def sqlite_path(self) -> Path:
        assert self.db is not None
        return self.db

    @property
    def playbooks(self) -> Path:
        assert self.playbook_dir is not None
        return self.playbook_dir
