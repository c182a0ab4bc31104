"""What a served ward is configured with: where the ward is, and the limits of the boundary."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "DATAWARD_SERVER_"


@dataclass(frozen=True)
class ServerSettings:
    """Settings of one server process (every worker reads the same ones from the environment)."""

    ward: Path
    max_json_bytes: int = 1 << 20
    """Largest accepted JSON request body (1 MiB): a request of a use case is small."""
    max_upload_bytes: int = 512 << 20
    """Largest accepted upload (512 MiB): a contribution's file, streamed to disk, never held in memory."""
    auth_failures_per_key: int = 10
    """Failed authentications allowed per claimed key id within ``auth_window_s`` before 429."""
    auth_failures_per_address: int = 30
    """Failed authentications allowed per client address within ``auth_window_s`` before 429."""
    auth_window_s: float = 60.0
    job_workers: int = 2
    """Background threads per worker process running jobs (gate runs, self-tests, verify)."""
    upload_ttl_s: float = 3600.0
    """An upload not used by a contribution within this time is deleted."""
    console_session_s: float = 3600.0
    """How long a console session lasts after sign-in (never longer than its key)."""

    def to_environment(self) -> dict[str, str]:
        """The settings as environment variables, so that each uvicorn worker process rebuilds them."""
        return {
            ENV_PREFIX + "WARD": str(self.ward),
            ENV_PREFIX + "MAX_JSON_BYTES": str(self.max_json_bytes),
            ENV_PREFIX + "MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
            ENV_PREFIX + "AUTH_FAILURES_PER_KEY": str(self.auth_failures_per_key),
            ENV_PREFIX + "AUTH_FAILURES_PER_ADDRESS": str(self.auth_failures_per_address),
            ENV_PREFIX + "AUTH_WINDOW_S": str(self.auth_window_s),
            ENV_PREFIX + "JOB_WORKERS": str(self.job_workers),
            ENV_PREFIX + "UPLOAD_TTL_S": str(self.upload_ttl_s),
            ENV_PREFIX + "CONSOLE_SESSION_S": str(self.console_session_s),
        }

    @classmethod
    def from_environment(cls) -> ServerSettings:
        """The settings ``to_environment`` wrote (``DATAWARD_SERVER_WARD`` is required)."""
        env = os.environ
        ward = env.get(ENV_PREFIX + "WARD")
        if not ward:
            raise RuntimeError(f"{ENV_PREFIX}WARD is not set: start the server with `dataward serve`")
        defaults = cls(ward=Path(ward))

        def num(name: str, default: float) -> float:
            value = env.get(ENV_PREFIX + name)
            return float(value) if value else default

        return cls(
            ward=Path(ward),
            max_json_bytes=int(num("MAX_JSON_BYTES", defaults.max_json_bytes)),
            max_upload_bytes=int(num("MAX_UPLOAD_BYTES", defaults.max_upload_bytes)),
            auth_failures_per_key=int(num("AUTH_FAILURES_PER_KEY", defaults.auth_failures_per_key)),
            auth_failures_per_address=int(num("AUTH_FAILURES_PER_ADDRESS", defaults.auth_failures_per_address)),
            auth_window_s=num("AUTH_WINDOW_S", defaults.auth_window_s),
            job_workers=int(num("JOB_WORKERS", defaults.job_workers)),
            upload_ttl_s=num("UPLOAD_TTL_S", defaults.upload_ttl_s),
            console_session_s=num("CONSOLE_SESSION_S", defaults.console_session_s),
        )
