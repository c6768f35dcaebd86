"""The memory settings, read from the environment in one place (Settings.from_env), never at import."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

MEMORY_MB_ENV = "BPTT_MEMORY_MB"   # the one budget in megabytes: cache, computations in flight, payloads, uploads
OLD_CACHE_MB_ENV = "BPTT_CACHE_MB"  # its old name (the cache alone), still read when BPTT_MEMORY_MB is not set
JOBS_ENV = "BPTT_MAX_JOBS"         # heavy computations at once
LOG_ENV = "BPTT_BUDGET_LOG"        # seconds between lines on stderr about the budget (0: none)
DEFAULT_MEMORY_MB = 600
DEFAULT_MAX_JOBS = 2
MB = 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    memory_bytes: int = DEFAULT_MEMORY_MB * MB     # everything the process holds for users, at most
    max_jobs: int = DEFAULT_MAX_JOBS               # heavy computations running at once
    log_every: int = 0                             # seconds between budget lines on stderr; 0: none

    @classmethod
    def from_env(cls) -> Settings:
        name = MEMORY_MB_ENV if os.environ.get(MEMORY_MB_ENV, "").strip() or not os.environ.get(
            OLD_CACHE_MB_ENV, "").strip() else OLD_CACHE_MB_ENV
        return cls(env_int(name, DEFAULT_MEMORY_MB, 1) * MB, env_int(JOBS_ENV, DEFAULT_MAX_JOBS, 1),
                   env_int(LOG_ENV, 0, 0))


def env_int(name: str, default: int, lo: int) -> int:
    """The integer environment variable `name` (>= lo), or default with a warning naming it and what is allowed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        v = int(raw, 10)
        if v < lo:
            raise ValueError
        return v
    except ValueError:
        log.warning("%s must be an integer >= %d, got %r; using the default, %d.", name, lo, raw, default)
        return default
