"""The byte-bounded cache, and the ledger of every byte it shares its budget with.

One capacity bounds, together:
- cached values (least recently used go first);
- values evicted but still held elsewhere (a page drawing its analysis; found again instead of recomputed);
- reservations: bytes promised to computations in flight and to uploads being checked (reserve / release);
- holds: bytes alive outside the cache for a while (Streamlit's copies of a step-viewer payload until it has sent
  them), replaced by the owner's next hold, dropped by unhold or after their ttl.
Only cached values can be evicted; the rest wait for room (reserve(wait=True)) or are counted as they come.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from .release import release_memory

WAIT_POLL = 0.2          # seconds between a waiting reservation's re-checks (holds expire, held values die unseen)


class ByteLRU:
    """A thread-safe LRU cache that never holds more than `capacity` bytes together with the reservations and holds;
    an entry larger than the capacity is not kept."""

    def __init__(self, capacity: int, on_evict: Callable[[], Any] | None = release_memory):
        self.capacity = int(capacity)
        self.total = 0             # bytes of the cached values
        self.reserved = 0          # bytes promised to computations in flight and uploads, see reserve()
        self.evictions = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()   # oldest first
        self._idle: dict[Hashable, tuple[float, float]] = {}   # key -> (ttl, last use) for entries that expire
        self._lock = threading.Condition()     # a lock, and reserve(wait=True) waits on it for room
        self._on_evict = on_evict
        # evicted values that someone still holds: weak references, so they cost nothing once dropped
        self._ghosts: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._ghost_bytes: dict[Hashable, int] = {}
        self._holds: dict[Hashable, tuple[int, float]] = {}   # owner -> (bytes, expiry)

    # ------------------------------------------------------------------------------------------------------------------
    # cached values

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
        self._evicted(evicted)
        return True

    def keys(self) -> list[Hashable]:
        """Keys from the least to the most recently used."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._idle.clear()
            self.total = 0
        self._evicted(True)

    # ------------------------------------------------------------------------------------------------------------------
    # reservations and holds

    def reserve(self, nbytes: int, wait: bool = False) -> None:
        """Make room for bytes about to be used (a computation's temporaries, an upload): evict until everything
        fits (release() after).

        wait: first wait until what is reserved and held elsewhere leaves room for this one (or nothing else is
        reserved: one that is larger than the budget alone still runs, alone), so that computations in flight never
        promise more than the budget together."""
        with self._lock:
            if wait:
                while not (self.reserved == 0 or self.reserved + self._held_elsewhere() + nbytes <= self.capacity):
                    self._lock.wait(WAIT_POLL)
            self.reserved += int(nbytes)
            evicted = self._evict(keep=0)
        self._evicted(evicted)

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.reserved -= int(nbytes)
            self._lock.notify_all()

    def hold(self, owner: Hashable, nbytes: int, ttl: float) -> None:
        """Count nbytes that `owner` keeps alive outside the cache for at most ttl seconds, replacing its previous
        hold (they are already there: this evicts cached values to make up for them, it does not wait)."""
        with self._lock:
            self._holds[owner] = (int(nbytes), time.monotonic() + ttl)
            evicted = self._evict(keep=0)
            self._lock.notify_all()
        self._evicted(evicted)

    def unhold(self, owner: Hashable) -> None:
        with self._lock:
            if self._holds.pop(owner, None) is not None:
                self._lock.notify_all()

    def held_elsewhere(self) -> int:
        """Bytes alive outside the cache that count against the capacity: evicted values still held by a page, and
        holds."""
        with self._lock:
            return self._held_elsewhere()

    def room(self) -> int:
        """Bytes a new reservation could have now by evicting cached values (never negative)."""
        with self._lock:
            return max(0, self.capacity - self.reserved - self._held_elsewhere())

    def expire(self) -> bool:
        """Drop the entries unused for longer than their ttl, and the holds past theirs; True if any went."""
        now = time.monotonic()
        with self._lock:
            old = [k for k, (ttl, used) in self._idle.items() if now - used > ttl]
            for k in old:
                self._drop(k)
            gone = self._expire_holds(now)
            if gone:
                self._lock.notify_all()
        self._evicted(bool(old))
        return bool(old) or gone

    # ------------------------------------------------------------------------------------------------------------------
    # inside the lock

    def _held_elsewhere(self) -> int:
        if len(self._ghost_bytes) > 2 * len(self._ghosts) + 64:   # forget the sizes of ghosts that are gone
            self._ghost_bytes = {k: n for k, n in self._ghost_bytes.items() if k in self._ghosts}
        self._expire_holds(time.monotonic())
        ghosts = sum(n for k, n in self._ghost_bytes.items() if k in self._ghosts)
        return ghosts + sum(n for n, _ in self._holds.values())

    def _expire_holds(self, now: float) -> bool:
        gone = [o for o, (_, until) in self._holds.items() if until <= now]
        for o in gone:
            del self._holds[o]
        return bool(gone)

    def _drop(self, key: Hashable) -> None:
        """Remove key; if its value lives on elsewhere, remember it weakly (and its size, still resident)."""
        value, n = self._items.pop(key)
        self._idle.pop(key, None)
        self.total -= n
        self.evictions += 1
        try:
            self._ghosts[key] = value
            self._ghost_bytes[key] = n
        except TypeError:             # not weakly referenceable (a float, a tuple, bytes): simply gone
            pass
        del value                     # now the ghost survives only if someone else holds the value

    def _evict(self, keep: int) -> bool:
        """Drop least recently used entries while cached + held elsewhere + reserved bytes exceed capacity, keeping
        the `keep` newest."""
        evicted = False
        while self.total + self._held_elsewhere() + self.reserved > self.capacity and len(self._items) > keep:
            self._drop(next(iter(self._items)))      # one still held elsewhere frees nothing: go on to the next
            evicted = True
        return evicted

    def _evicted(self, evicted: bool) -> None:
        if evicted and self._on_evict is not None:
            self._on_evict()
