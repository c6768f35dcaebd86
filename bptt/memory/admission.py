"""Admission of work: a computation runs when one of max_jobs slots is free (first come first served) AND its
estimated bytes fit the budget; meanwhile its callers hear whether it is queued or running, and its latest stage.

Budget ties the cache (cache.py), the job limit and the computations in flight together; bptt.memory has the
process's one Budget and the short functions callers use (cached, budgeted, report, hold, reserved)."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from .cache import ByteLRU
from .release import release_memory
from .settings import MB, Settings
from .sizes import nbytes_of

STAGES = ("engine", "references", "comparison")   # what analyze() reports, in order
POLL = 0.2                         # seconds between a waiting caller's status callbacks

log = logging.getLogger(__name__)


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
# progress

@dataclass(frozen=True)
class Status:
    """What a caller of cached() is waiting for, passed to its on_status callback."""
    state: str           # "queued" (behind other computations, for a slot or for room) or "running"
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


# ----------------------------------------------------------------------------------------------------------------------
# the budget

_MISSING = object()


class Budget:
    """One memory budget (cache, computations in flight, holds) and the job limit; see bptt.memory."""

    def __init__(self, memory_bytes: int, max_jobs: int):
        self.cache = ByteLRU(memory_bytes)
        self.limiter = JobLimiter(max_jobs)
        self._light = threading.BoundedSemaphore(max_jobs)   # light work (decoding) at once, outside the slots
        self._inflight: dict[Hashable, _Pending] = {}
        self._lock = threading.Lock()
        self.activity = 0             # get() calls, so that the janitor works only after something happened

    @classmethod
    def from_settings(cls, s: Settings) -> Budget:
        return cls(s.memory_bytes, s.max_jobs)

    def get(self, key: Hashable, compute: Callable[[], Any], nbytes: int | Callable[[Any], int] | None = None,
            on_status: Callable[[Status], Any] | None = None, heavy: bool = True, reserve: int = 0,
            ttl: float | None = None) -> Any:
        """The cached value of key, computing it (once, in a slot) if missing.

        nbytes: the value's size (or a function of it); default: every array reachable from it (nbytes_of).
        on_status: called every POLL s while the caller waits, with a Status.
        heavy=False: light work (e.g. decoding an array): computed in the caller's thread, without a slot (at most
        max_jobs light computations at once, too).
        reserve: bytes the computation needs while it runs (its estimate, before it starts); cached entries make
        room for them, and a heavy computation waits (queued) until those in flight leave room for it.
        ttl: seconds the value may stay unused before it is dropped (a working set, cheap to remake)."""
        self.activity += 1
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
        """The worker thread of one computation: take a slot, wait for room, compute, cache, give memory back."""
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

    @contextlib.contextmanager
    def reserved(self, nbytes: int) -> Iterator[None]:
        """Hold nbytes of the budget for the block (e.g. an upload being checked), waiting for room first."""
        self.cache.reserve(nbytes, wait=True)
        try:
            yield
        finally:
            self.cache.release(nbytes)
