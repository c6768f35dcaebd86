"""One memory budget for everything the process holds for users, and a fair limit on heavy computations.

BPTT_MEMORY_MB (default 600) bounds, together: cached values, computations in flight (by their estimated bytes,
before they start), step-viewer payloads until they are sent, and uploads being checked. It does not bound the
interpreter, torch and Streamlit themselves. No streamlit here: the app passes a callback to show what a caller
waits for. The parts, one job each:

    sizes.py      how many bytes a value holds (nbytes_of), the process's RSS
    cache.py      the byte-bounded cache, and the ledger of reservations and holds it shares the budget with
    admission.py  admission of work by bytes and by a FIFO job limit (BPTT_MAX_JOBS, default 2), progress (Status)
    release.py    giving memory back: malloc tuning, malloc_trim, garbage collection
    settings.py   the environment variables, read once

How to cache something (the analyses, flow reports, gradcheck, FD checks, the step viewer's payloads):

    value = cached(("flow", cfg, b), lambda: flow_report(...))       # size: every array reachable from the value
    value = cached(key, compute, nbytes=123_456, reserve=work)        # a size of your own; `work` bytes while it runs
    value = cached(key, compute, on_status=show)                      # show(Status) every ~0.2 s while waiting

    @budgeted("gradcheck")                                            # the same, keyed on ("gradcheck", *args)
    def gradcheck_for(cfg: RNNConfig) -> GradcheckResult: ...

    with reserved(len(upload)): check(upload)                         # bytes in use for a block, waiting for room
    hold(("payload", session), 2 * len(data), ttl=30)                 # bytes alive outside the cache a while

Keys are hashable and immutable (a config plus scalars); values are read-only once cached. A missing value is
computed once however many callers ask at the same time, on a worker thread that first takes a slot and then room
in the budget; past the budget the least recently used cached values go, and freed memory is handed back.

Importing this has no side effects (no threads, no malloc tuning): the app's entry point calls setup().
"""
from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from .admission import STAGES, Budget, Status, report
from .release import malloc_tuned, release_memory, tune_malloc
from .settings import MB, Settings
from .sizes import nbytes_of, rss

__all__ = ["BUDGET", "MB", "STAGES", "Budget", "Status", "budgeted", "cached", "hold", "malloc_tuned", "nbytes_of",
           "report", "reserved", "room", "setup", "unhold"]

SETTINGS = Settings.from_env()
BUDGET = Budget.from_settings(SETTINGS)     # the process's one budget (one server process serves every session)
JANITOR_EVERY = 2.0    # seconds; after activity, garbage is collected and memory returned even with no eviction
_threads: dict[str, threading.Thread] = {}


def cached(key: Hashable, compute: Callable[[], Any], nbytes: int | Callable[[Any], int] | None = None,
           on_status: Callable[[Status], Any] | None = None, heavy: bool = True, reserve: int = 0,
           ttl: float | None = None) -> Any:
    """The cached value of key, computed once within the budget and the job limit if missing (Budget.get)."""
    return BUDGET.get(key, compute, nbytes, on_status, heavy, reserve, ttl)


def budgeted(name: str, nbytes: int | Callable[[Any], int] | None = None) -> Callable:
    """Decorator: fn(*args) cached under (name, *args) in BUDGET; on_status=... may be passed as a keyword."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, on_status: Callable[[Status], Any] | None = None):
            return BUDGET.get((name, *args), lambda: fn(*args), nbytes, on_status)
        return inner
    return wrap


def reserved(nbytes: int):
    """Context manager: nbytes of the budget in use for the block, after waiting for room."""
    return BUDGET.reserved(nbytes)


def hold(owner: Hashable, nbytes: int, ttl: float) -> None:
    """Count nbytes that owner keeps alive outside the cache for at most ttl s (replacing its previous hold)."""
    BUDGET.cache.hold(owner, nbytes, ttl)


def unhold(owner: Hashable) -> None:
    BUDGET.cache.unhold(owner)


def peek(key: Hashable) -> Any:
    """The cached value of key, or None: nothing is computed."""
    return BUDGET.cache.get(key)


def room() -> int:
    """Bytes of the budget a new computation could have now (the cache makes way; the rest is in use)."""
    return BUDGET.cache.room()


# ----------------------------------------------------------------------------------------------------------------------
# the app's set-up: malloc, the janitor, the log

def setup() -> None:
    """For a long-running server (the app's entry point), once; later calls do nothing: tune malloc, and start the
    janitor thread (expires idle entries and holds, collects garbage and returns memory after activity) and, with
    BPTT_BUDGET_LOG=seconds, a thread that prints the budget's state to stderr."""
    if "janitor" in _threads:
        return
    tune_malloc()
    _start("janitor", _janitor)
    if SETTINGS.log_every:
        _start("log", _log)


def _start(name: str, run: Callable[[], None]) -> None:
    _threads[name] = threading.Thread(target=run, daemon=True, name=f"bptt-memory-{name}")
    _threads[name].start()


def _janitor() -> None:
    """Pages drop their analyses and arrays when they finish, after the last computation and eviction: without this,
    the cycles they leave and the freed heap stay resident until the next burst."""
    seen = -1
    while True:
        time.sleep(JANITOR_EVERY)
        expired = BUDGET.cache.expire()
        if BUDGET.activity != seen or expired:
            seen = BUDGET.activity
            release_memory()


def _log() -> None:
    while True:
        c, lim = BUDGET.cache, BUDGET.limiter
        print(f"[budget] {time.strftime('%H:%M:%S')} cache {c.total / MB:.0f} MB in {len(c.keys())} entries, "
              f"held outside {c.held_elsewhere() / MB:.0f} MB, reserved {c.reserved / MB:.0f} MB, "
              f"jobs running {lim.running}, waiting {lim.waiting()}, evictions {c.evictions}, RSS {rss() / MB:.0f} MB",
              file=sys.stderr, flush=True)
        time.sleep(SETTINGS.log_every)
