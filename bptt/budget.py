"""One memory budget for all cached numerical work, a fair limit on concurrent heavy computations, progress stages,
and giving freed memory back to the system. No streamlit: the app passes a callback to show what a caller waits for.

How to cache something (the analyses, flow reports, gradcheck, FD checks, the step viewer's payloads):

    value = cached(("flow", cfg, b), lambda: flow_report(...))       # size: every array reachable from the value
    value = cached(key, compute, nbytes=123_456)                      # or a size of your own
    value = cached(key, compute, on_status=show)                      # show(Status) every ~0.2 s while waiting

    @budgeted("gradcheck")                                            # the same, keyed on ("gradcheck", *args)
    def gradcheck_for(cfg: RNNConfig) -> GradcheckResult: ...

Keys are hashable and immutable (an RNNConfig plus scalars); values are read-only once cached, never mutated by a
caller. A missing value is computed once however many callers ask at the same time, on a worker thread that first
takes one of BPTT_MAX_JOBS slots (default 2, first come first served); meanwhile each caller's on_status is told
whether it is queued (and behind how many) or running, and the computation's latest stage, set by report("engine")
etc. from inside the computation. Cached values share one budget of BPTT_CACHE_MB megabytes (default 600): past it
the least recently used go, and the freed memory is handed back to the system (glibc malloc_trim).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import gc
import logging
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CACHE_MB_ENV = "BPTT_CACHE_MB"     # the cache budget in megabytes (default DEFAULT_CACHE_MB)
JOBS_ENV = "BPTT_MAX_JOBS"         # heavy computations at once (default DEFAULT_MAX_JOBS)
LOG_ENV = "BPTT_BUDGET_LOG"        # seconds between lines on stderr about the budget (cache, reserved, jobs, RSS)
DEFAULT_CACHE_MB = 600
DEFAULT_MAX_JOBS = 2
STAGES = ("engine", "references", "comparison")   # what analyze() reports, in order
POLL = 0.2                         # seconds between a waiting caller's status callbacks
MB = 1024 * 1024

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------------
# how many bytes a value holds

def nbytes_of(obj: Any) -> int:
    """Bytes of every numpy array, torch tensor, pandas frame and bytes object reachable from obj, each buffer once.

    Views count their base once (the memory they keep alive); dataclasses, objects' __dict__ (so cached_property
    values), dicts, lists and tuples are walked."""
    seen_obj: set[int] = set()
    seen_buf: set[int] = set()
    total = 0
    todo = [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen_obj or o is None or isinstance(o, (str, int, float, bool, complex, type)):
            continue
        seen_obj.add(id(o))
        if isinstance(o, np.ndarray):
            base = o
            while isinstance(base.base, np.ndarray):
                base = base.base
            key = id(base) if base.base is None else base.__array_interface__["data"][0]
            if key not in seen_buf:
                seen_buf.add(key)
                total += base.nbytes
        elif isinstance(o, (pd.DataFrame, pd.Series)):
            total += int(np.sum(o.memory_usage(deep=True)))
        elif isinstance(o, (bytes, bytearray)):
            total += len(o)
        elif hasattr(o, "untyped_storage") and hasattr(o, "data_ptr"):     # a torch tensor, without importing torch
            if o.data_ptr() not in seen_buf:
                seen_buf.add(o.data_ptr())
                total += o.untyped_storage().nbytes()
        elif isinstance(o, dict):
            todo += list(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            todo += list(o)
        elif dataclasses.is_dataclass(o) or hasattr(o, "__dict__"):
            if callable(o) and not dataclasses.is_dataclass(o):
                continue                                                   # functions, modules: not data
            todo += list(vars(o).values()) if hasattr(o, "__dict__") else []
            todo += [getattr(o, s) for s in getattr(type(o), "__slots__", ()) if hasattr(o, s)]
    return total


# ----------------------------------------------------------------------------------------------------------------------
# giving memory back

def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
        return lib if lib is not None and hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()                    # glibc, or None elsewhere (musl, macOS, Windows): then nothing to tune
M_MMAP_THRESHOLD = -3              # mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024       # allocations from 256 KB up get their own mmap, returned to the system on free
ARENA_MAX = 4                      # malloc arenas for all threads (glibc's default is 8 per core)


def tune_malloc() -> bool:
    """Make glibc give large freed blocks back: a fixed mmap threshold, few arenas. True if glibc took both.

    By default glibc raises its mmap threshold after each large free (up to 32 MB), so that the next arrays come
    from per-thread heaps (arenas) that keep freed memory; with one arena per script thread, a burst of large configs
    leaves gigabytes resident. Call once, early (before the threads start)."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(_LIBC.mallopt(M_ARENA_MAX, ARENA_MAX))


GC_EVERY = 1.0                     # seconds between the full garbage collections release_memory() may run
_last_gc = [0.0]


def release_memory() -> bool:
    """Collect garbage cycles (at most every GC_EVERY s), then return freed heap memory to the system (glibc
    malloc_trim(0)); True if any was returned.

    Cycles matter here: a page script that defines a function keeps its globals (its analysis, the arrays it read)
    in a reference cycle, which Python frees only at a full collection, and those are rare when the objects are few
    but large. Measured with 6 sessions at the largest config: ~1 GB of 32 MB arrays waiting for the collector."""
    now = time.monotonic()
    if now - _last_gc[0] >= GC_EVERY:
        _last_gc[0] = now
        gc.collect()
    return bool(_LIBC.malloc_trim(0)) if _LIBC is not None else False


# ----------------------------------------------------------------------------------------------------------------------
# a cache bounded by bytes

class ByteLRU:
    """A thread-safe LRU cache that never holds more than `capacity` bytes; an entry larger than that is not kept."""

    def __init__(self, capacity: int, on_evict: Callable[[], Any] | None = release_memory):
        self.capacity = int(capacity)
        self.total = 0
        self.reserved = 0          # bytes promised to computations in flight (their temporaries), see reserve()
        self.evictions = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()   # oldest first
        self._idle: dict[Hashable, tuple[float, float]] = {}   # key -> (ttl, last use) for entries that expire
        self._lock = threading.Condition()     # a lock, and reserve(wait=True) waits on it for room
        self._on_evict = on_evict
        # evicted values that someone still holds (a page drawing its analysis): found again instead of recomputed,
        # since their memory is in use anyway; weak references, so they cost nothing once dropped
        self._ghosts: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._ghost_bytes: dict[Hashable, int] = {}

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of key (now the most recently used), or default. An evicted value still alive elsewhere comes
        back into the cache."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                if key in self._idle:
                    self._idle[key] = (self._idle[key][0], time.monotonic())
                return self._items[key][0]
            ghost = self._ghosts.get(key)
            nbytes = self._ghost_bytes.pop(key, None)
        if ghost is None or nbytes is None:
            return default
        self.put(key, ghost, nbytes)
        return ghost

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, value: Any, nbytes: int, ttl: float | None = None) -> bool:
        """Keep value under key, evicting the least recently used entries to stay within capacity. False if too big.

        ttl: seconds the entry may stay unused before expire() drops it (working-set entries, cheap to remake)."""
        evicted = False
        with self._lock:
            if key in self._items:
                self.total -= self._items.pop(key)[1]
                self._idle.pop(key, None)
            if nbytes > self.capacity:
                return False
            self._items[key] = (value, int(nbytes))
            self.total += int(nbytes)
            if ttl is not None:
                self._idle[key] = (ttl, time.monotonic())
            evicted = self._evict(keep=1)
        if evicted and self._on_evict is not None:
            self._on_evict()
        return True

    def reserve(self, nbytes: int, wait: bool = False) -> None:
        """Make room for a computation's temporaries: evict until cached + reserved bytes fit (release() after).

        wait: first wait until the other reservations leave room for this one (or there are none), so that
        computations in flight never promise more than the budget together."""
        with self._lock:
            if wait:
                self._lock.wait_for(lambda: self.reserved == 0 or self.reserved + nbytes <= self.capacity)
            self.reserved += int(nbytes)
            evicted = self._evict(keep=0)
        if evicted and self._on_evict is not None:
            self._on_evict()

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.reserved -= int(nbytes)
            self._lock.notify_all()

    def held_elsewhere(self) -> int:
        """Bytes of evicted values that are still alive (held by a page): resident, so they count against capacity."""
        with self._lock:
            return self._held_elsewhere()

    def _held_elsewhere(self) -> int:
        if len(self._ghost_bytes) > 2 * len(self._ghosts) + 64:   # forget the sizes of ghosts that are gone
            self._ghost_bytes = {k: n for k, n in self._ghost_bytes.items() if k in self._ghosts}
        return sum(n for k, n in self._ghost_bytes.items() if k in self._ghosts)

    def expire(self) -> bool:
        """Drop the entries unused for longer than their ttl; True if any went."""
        now = time.monotonic()
        with self._lock:
            old = [k for k, (ttl, used) in self._idle.items() if now - used > ttl]
            for k in old:
                self._drop(k)
        if old and self._on_evict is not None:
            self._on_evict()
        return bool(old)

    def _drop(self, key: Hashable) -> None:
        """Remove key; if its value lives on elsewhere, remember it weakly (and its size, still resident)."""
        value, n = self._items.pop(key)
        self._idle.pop(key, None)
        self.total -= n
        self.evictions += 1
        try:
            self._ghosts[key] = value
            self._ghost_bytes[key] = n
        except TypeError:             # not weakly referenceable (a float, a tuple): simply gone
            pass
        del value                     # now the ghost survives only if someone else holds the value

    def _evict(self, keep: int) -> bool:
        """Drop least recently used entries while cached + held elsewhere + reserved bytes exceed capacity, keeping
        the `keep` newest. Holds the lock."""
        evicted = False
        while self.total + self._held_elsewhere() + self.reserved > self.capacity and len(self._items) > keep:
            self._drop(next(iter(self._items)))      # one still held elsewhere frees nothing: go on to the next
            evicted = True
        return evicted

    def keys(self) -> list[Hashable]:
        """Keys from the least to the most recently used."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._idle.clear()
            self.total = 0
        if self._on_evict is not None:
            self._on_evict()


# ----------------------------------------------------------------------------------------------------------------------
# at most max_jobs heavy computations at once, first come first served

class JobLimiter:
    """A FIFO semaphore: a caller gets one of max_jobs slots only when every earlier caller has had one."""

    def __init__(self, max_jobs: int):
        self.max_jobs = int(max_jobs)
        self.running = 0
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()

    def acquire(self, ticket: object | None = None) -> object:
        """Wait for a slot, in arrival order; returns the ticket (pass it to position() from another thread)."""
        ticket = object() if ticket is None else ticket
        with self._cond:
            self._queue.append(ticket)
            while not (self._queue[0] is ticket and self.running < self.max_jobs):
                self._cond.wait()
            self._queue.popleft()
            self.running += 1
            self._cond.notify_all()            # the next in line may have a free slot too
        return ticket

    def release(self) -> None:
        with self._cond:
            self.running -= 1
            self._cond.notify_all()

    def position(self, ticket: object) -> int | None:
        """How many callers are ahead of this ticket in the queue (0: next), None once it has a slot."""
        with self._cond:
            try:
                return self._queue.index(ticket)
            except ValueError:
                return None

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


# ----------------------------------------------------------------------------------------------------------------------
# the budget: cache + limiter + computations in flight

@dataclass(frozen=True)
class Status:
    """What a caller of cached() is waiting for, passed to its on_status callback."""
    state: str           # "queued" (behind other computations) or "running"
    stage: str           # the computation's latest report() ("engine", "references", "comparison"), "" before any
    ahead: int           # queued: computations waiting before this one (running ones not counted); 0 when running
    elapsed: float       # seconds since this caller asked


class _Pending:
    """A computation in flight: its worker, its latest stage, and its outcome once done."""

    def __init__(self):
        self.done = threading.Event()
        self.ticket = object()
        self.stage = ""
        self.waiting_for_room = False      # has a slot, waits for the running ones to leave room in the budget
        self.value: Any = None
        self.error: BaseException | None = None


_local = threading.local()          # .pending: the computation this thread is running (for report())


def report(stage: str) -> None:
    """Called from inside a computation: it has reached `stage` (shown to whoever waits for it). No-op elsewhere."""
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.stage = stage


class Budget:
    """The process's cache (bounded by bytes) and job limiter; see the module docstring."""

    JANITOR_EVERY = 2.0    # seconds; after activity, garbage is collected and memory returned even with no eviction

    def __init__(self, cache_bytes: int, max_jobs: int):
        self.cache = ByteLRU(cache_bytes)
        self.limiter = JobLimiter(max_jobs)
        self._light = threading.BoundedSemaphore(max_jobs)   # light work (decoding) at once, outside the slots
        self._inflight: dict[Hashable, _Pending] = {}
        self._lock = threading.Lock()
        self._activity = 0             # get() calls, so that the janitor works only after something happened
        self._janitor: threading.Thread | None = None

    def _start_janitor(self) -> None:
        """A daemon thread that calls release_memory() every JANITOR_EVERY s while the budget is in use.

        Pages drop their analyses and arrays when they finish, after the last computation and eviction: without
        this, the cycles they leave (see release_memory) and the freed heap stay resident until the next burst."""
        def run() -> None:
            seen = -1
            while True:
                time.sleep(self.JANITOR_EVERY)
                expired = self.cache.expire()
                if self._activity != seen or expired:
                    seen = self._activity
                    release_memory()
        self._janitor = threading.Thread(target=run, daemon=True, name="bptt-budget-janitor")
        self._janitor.start()

    @classmethod
    def from_env(cls) -> Budget:
        return cls(_env_int(CACHE_MB_ENV, DEFAULT_CACHE_MB, 1) * MB, _env_int(JOBS_ENV, DEFAULT_MAX_JOBS, 1))

    def get(self, key: Hashable, compute: Callable[[], Any], nbytes: int | Callable[[Any], int] | None = None,
            on_status: Callable[[Status], Any] | None = None, heavy: bool = True, reserve: int = 0,
            ttl: float | None = None) -> Any:
        """The cached value of key, computing it (once, in a slot) if missing; see the module docstring.

        heavy=False: light work (e.g. decoding an array): computed in the caller's thread, without a slot (at most
        max_jobs light computations at once, too).
        reserve: bytes the computation needs while it runs; cached entries make room for them first, and a heavy
        computation waits until those in flight leave room for it, so that the cache and the computations in flight
        together stay within the budget.
        ttl: seconds the value may stay unused before it is dropped (a working set, cheap to remake)."""
        self._activity += 1
        if self._janitor is None:
            with self._lock:
                if self._janitor is None:
                    self._start_janitor()
        hit = self.cache.get(key, _MISSING)
        if hit is not _MISSING:
            return hit
        if getattr(_local, "pending", None) is not None or getattr(_local, "light", False):
            # already inside a computation: compute inline (waiting for a slot could deadlock)
            return self._finish(key, compute(), nbytes, ttl)
        if not heavy:
            with self._light:
                _local.light = True
                self.cache.reserve(reserve)
                try:
                    return self._finish(key, compute(), nbytes, ttl)
                finally:
                    _local.light = False
                    self.cache.release(reserve)
        with self._lock:
            hit = self.cache.get(key, _MISSING)
            if hit is not _MISSING:
                return hit
            pending = self._inflight.get(key)
            if pending is None:
                pending = self._inflight[key] = _Pending()
                threading.Thread(target=self._work, args=(key, pending, compute, nbytes, reserve), daemon=True,
                                 name=f"bptt-job-{key!r:.60}").start()
        t0 = time.monotonic()
        while not pending.done.wait(POLL):
            if on_status is not None:
                ahead = self.limiter.position(pending.ticket)
                queued = ahead is not None or pending.waiting_for_room
                on_status(Status("queued" if queued else "running", pending.stage, ahead or 0, time.monotonic() - t0))
        if pending.error is not None:
            raise pending.error
        return pending.value

    def _work(self, key: Hashable, pending: _Pending, compute: Callable[[], Any], nbytes, reserve: int) -> None:
        """The worker thread of one computation: take a slot, compute, cache, give memory back, wake the callers."""
        self.limiter.acquire(pending.ticket)
        _local.pending = pending
        pending.waiting_for_room = True
        self.cache.reserve(reserve, wait=True)
        pending.waiting_for_room = False
        try:
            pending.value = self._finish(key, compute(), nbytes)
        except BaseException as err:  # noqa: BLE001  (handed to every caller, which raises it)
            pending.error = err
        finally:
            _local.pending = None
            self.cache.release(reserve)
            self.limiter.release()
            with self._lock:
                self._inflight.pop(key, None)
            pending.done.set()
            release_memory()              # the computation's temporaries are freed now

    def _finish(self, key: Hashable, value: Any, nbytes, ttl: float | None = None) -> Any:
        n = nbytes(value) if callable(nbytes) else nbytes_of(value) if nbytes is None else int(nbytes)
        if not self.cache.put(key, value, n, ttl):
            log.info("not cached (%.0f MB is more than the %.0f MB budget): %r", n / MB, self.cache.capacity / MB,
                     key)
        return value


_MISSING = object()


def _env_int(name: str, default: int, lo: int) -> int:
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


def _rss() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def _log_every(bud: Budget, seconds: float) -> None:
    """A daemon thread that prints the budget's state every `seconds` (for benchmarks/load_app.py)."""
    def run() -> None:
        while True:
            c, lim = bud.cache, bud.limiter
            print(f"[budget] {time.strftime('%H:%M:%S')} cache {c.total / MB:.0f} MB in {len(c.keys())} entries, "
                  f"held by pages {c.held_elsewhere() / MB:.0f} MB, "
                  f"reserved {c.reserved / MB:.0f} MB, jobs running {lim.running}, waiting {lim.waiting()}, "
                  f"evictions {c.evictions}, RSS {_rss() / MB:.0f} MB", file=sys.stderr, flush=True)
            time.sleep(seconds)
    threading.Thread(target=run, daemon=True, name="bptt-budget-log").start()


tune_malloc()
BUDGET = Budget.from_env()          # the process's one budget (one server process serves every session)
if _env_int(LOG_ENV, 0, 0):
    _log_every(BUDGET, _env_int(LOG_ENV, 0, 0))


def cached(key: Hashable, compute: Callable[[], Any], nbytes: int | Callable[[Any], int] | None = None,
           on_status: Callable[[Status], Any] | None = None, heavy: bool = True, reserve: int = 0) -> Any:
    """BUDGET.get: the cached value of key, computed once within the budget and the job limit if missing."""
    return BUDGET.get(key, compute, nbytes, on_status, heavy, reserve)


def budgeted(name: str, nbytes: int | Callable[[Any], int] | None = None) -> Callable:
    """Decorator: fn(*args) cached under (name, *args) in BUDGET; on_status=... may be passed as a keyword."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, on_status: Callable[[Status], Any] | None = None):
            return BUDGET.get((name, *args), lambda: fn(*args), nbytes, on_status)
        return inner
    return wrap
