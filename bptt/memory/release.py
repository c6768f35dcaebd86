"""Giving freed memory back to the system: glibc malloc tuning, malloc_trim, and full garbage collections.

Nothing happens at import: the app's entry point calls tune_malloc() (through bptt.memory.setup)."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from typing import Any

M_MMAP_THRESHOLD = -3              # mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024       # allocations from 256 KB up get their own mmap, returned to the system on free
ARENA_MAX = 4                      # malloc arenas for all threads (glibc's default is 8 per core)
GC_EVERY = 1.0                     # seconds between the full garbage collections release_memory() may run

_state = {"libc": None, "looked": False, "tuned": False, "last_gc": 0.0}


def libc() -> Any:
    """glibc (found once, on first use), or None elsewhere (musl, macOS, Windows): then nothing to tune or trim."""
    if not _state["looked"]:
        _state["looked"] = True
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            _state["libc"] = lib if lib is not None and hasattr(lib, "malloc_trim") else None
        except OSError:
            _state["libc"] = None
    return _state["libc"]


def tune_malloc() -> bool:
    """Make glibc give large freed blocks back: a fixed mmap threshold, few arenas. True if glibc took both.

    By default glibc raises its mmap threshold after each large free (up to 32 MB), so that the next arrays come
    from per-thread heaps (arenas) that keep freed memory; with one arena per script thread, a burst of large configs
    leaves gigabytes resident. Call once, early (before the threads start)."""
    lib = libc()
    if lib is None:
        return False
    ok = bool(lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(lib.mallopt(M_ARENA_MAX, ARENA_MAX))
    _state["tuned"] = True
    return ok


def malloc_tuned() -> bool:
    """Whether tune_malloc() has run in this process."""
    return bool(_state["tuned"])


def release_memory() -> bool:
    """Collect garbage cycles (at most every GC_EVERY s), then return freed heap memory to the system (glibc
    malloc_trim(0)); True if any was returned.

    Cycles matter here: a page script that defines a function keeps its globals (its analysis, the arrays it read)
    in a reference cycle, which Python frees only at a full collection, and those are rare when the objects are few
    but large. Measured with 6 sessions at the largest config: ~1 GB of 32 MB arrays waiting for the collector."""
    now = time.monotonic()
    if now - _state["last_gc"] >= GC_EVERY:
        _state["last_gc"] = now
        gc.collect()
    lib = libc()
    return bool(lib.malloc_trim(0)) if lib is not None else False
