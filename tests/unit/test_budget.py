"""The memory budget: byte accounting and LRU order, the job limit and its fairness, one computation per key,
admission by bytes (uploads and payloads in transit too), chunks under the limit, and import without side effects."""
from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import memory
from bptt.memory.admission import Budget, JobLimiter, Status
from bptt.memory.cache import ByteLRU
from bptt.memory.settings import (
    DEFAULT_MAX_JOBS,
    JOBS_ENV,
    MB,
    MEMORY_MB_ENV,
    OLD_CACHE_MB_ENV,
    Settings,
)
from bptt.memory.sizes import nbytes_of


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# ----------------------------------------------------------------------------------------------------------------------
# bytes

@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 1000),
       ops=st.lists(st.tuples(st.sampled_from(["put", "get"]), st.integers(0, 9), st.integers(0, 400)), max_size=60))
def test_cache_never_holds_more_than_its_budget_and_evicts_least_recently_used(capacity, ops):
    cache = ByteLRU(capacity, on_evict=None)
    model: list[tuple[int, int]] = []            # (key, size), least recently used first
    for op, key, size in ops:
        if op == "get":
            got = cache.get(key, None)
            hit = [kv for kv in model if kv[0] == key]
            assert (got is not None) == bool(hit)
            if hit:
                assert got == ("value", key)
                model.remove(hit[0])
                model.append(hit[0])
            continue
        model = [kv for kv in model if kv[0] != key]
        kept = cache.put(key, ("value", key), size)
        assert kept == (size <= capacity)
        if kept:
            model.append((key, size))
            while sum(s for _, s in model) > capacity:
                model.pop(0)                     # the least recently used goes first
        assert cache.total <= capacity
        assert cache.total == sum(s for _, s in model)
        assert cache.keys() == [k for k, _ in model]


def test_eviction_gives_memory_back():
    calls = []
    cache = ByteLRU(100, on_evict=lambda: calls.append(1))
    cache.put("a", 1, 60)
    cache.put("b", 2, 30)
    assert not calls
    cache.put("c", 3, 50)                        # 140 > 100: "a" goes
    assert calls and cache.keys() == ["b", "c"] and cache.total == 80


class Big:
    """A weakly referenceable value."""


def test_an_evicted_value_still_in_use_comes_back_instead_of_being_recomputed():
    cache = ByteLRU(100, on_evict=None)
    held = Big()
    cache.put("a", held, 60)
    cache.put("b", Big(), 60)                    # "a" is evicted, but someone still holds it
    assert "a" not in cache and cache.total == 60
    assert cache.get("a") is held and "a" in cache and cache.total == 60     # back, and "b" made room
    cache.put("c", Big(), 60)                    # "a" evicted again; nobody holds "b" or, after del, "a"
    del held
    gc.collect()
    assert cache.get("a") is None and cache.get("b") is None


def test_values_held_elsewhere_count_against_the_budget_and_idle_entries_expire():
    cache = ByteLRU(100, on_evict=None)
    held = Big()
    cache.put("a", held, 60)
    cache.put("b", Big(), 30)
    cache.put("c", Big(), 30)                    # "a" evicted, but alive: 60 resident bytes elsewhere
    assert cache.held_elsewhere() == 60 and cache.keys() == ["c"] and cache.total == 30
    cache.put("d", Big(), 10, ttl=0.05)
    time.sleep(0.1)
    assert cache.expire() and cache.keys() == ["c"]
    assert held is not None


@dataclass(frozen=True)
class Holder:
    big: np.ndarray
    view: np.ndarray
    more: dict


def test_nbytes_counts_every_reachable_buffer_once():
    a = np.zeros((100, 10))                      # 8,000 bytes
    b = np.ones(50)                              # 400 bytes
    h = Holder(a, a[3:7], {"b": b, "again": [b, a.T], "blob": b"xyz"})
    assert nbytes_of(h) == a.nbytes + b.nbytes + 3
    assert nbytes_of([h, h, (a,)]) == a.nbytes + b.nbytes + 3


# ----------------------------------------------------------------------------------------------------------------------
# the job limit

def test_a_third_computation_waits_while_two_run():
    bud = Budget(10**9, max_jobs=2)
    release = {k: threading.Event() for k in "abc"}
    started: list[str] = []
    statuses: list[Status] = []

    def job(k):
        def run():
            started.append(k)
            memory.report("engine")
            release[k].wait(10)
            return k * 3
        return run

    out = {}
    threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, bud.get(k, job(k), nbytes=1,
                                                                             on_status=statuses.append)))
               for k in "abc"]
    for i, t in enumerate(threads):
        t.start()
        wait_for(lambda i=i: len(started) == min(i + 1, 2) and bud.limiter.running + bud.limiter.waiting() == i + 1)
    # conditions, not a sleep: each caller's status comes every POLL s, later on a loaded machine
    wait_for(lambda: any(s.state == "queued" and s.ahead == 0 for s in statuses))
    wait_for(lambda: any(s.state == "running" and s.stage == "engine" for s in statuses))
    assert sorted(started) == ["a", "b"] and bud.limiter.running == 2          # c is queued, not running
    release["a"].set()
    wait_for(lambda: "c" in started)                                             # a's slot goes to c
    release["b"].set()
    release["c"].set()
    for t in threads:
        t.join(10)
    assert out == {"a": "aaa", "b": "bbb", "c": "ccc"}
    assert bud.limiter.running == 0


def test_slots_are_given_in_arrival_order():
    lim = JobLimiter(1)
    lim.acquire()                                # hold the only slot
    order: list[int] = []

    def worker(i):
        lim.acquire()
        order.append(i)
        lim.release()

    threads = []
    for i in range(8):
        threads.append(threading.Thread(target=worker, args=(i,)))
        threads[-1].start()
        wait_for(lambda i=i: lim.waiting() == i + 1)                  # each one queued before the next arrives
    lim.release()
    for t in threads:
        t.join(10)
    assert order == list(range(8))


def test_one_computation_per_key_however_many_ask():
    bud = Budget(10**9, max_jobs=2)
    calls = []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(10)
        return np.arange(10)

    results = []
    threads = [threading.Thread(target=lambda: results.append(bud.get("k", compute))) for _ in range(5)]
    for t in threads:
        t.start()
    wait_for(lambda: len(calls) == 1)
    time.sleep(0.3)
    gate.set()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(results) == 5 and all(r is results[0] for r in results)
    assert "k" in bud.cache and bud.cache.total == results[0].nbytes


def test_an_error_reaches_the_caller_and_is_not_cached():
    bud = Budget(10**9, max_jobs=1)

    def boom():
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        bud.get("k", boom)
    assert "k" not in bud.cache and bud.limiter.running == 0
    assert bud.get("k", lambda: 5, nbytes=1) == 5


def test_nested_computation_runs_inline_without_a_second_slot():
    bud = Budget(10**9, max_jobs=1)
    outer = bud.get("outer", lambda: bud.get("inner", lambda: 2, nbytes=1) + 1, nbytes=1)
    assert outer == 3 and "inner" in bud.cache


def test_settings_come_from_the_environment(monkeypatch, caplog):
    monkeypatch.delenv(OLD_CACHE_MB_ENV, raising=False)
    monkeypatch.setenv(MEMORY_MB_ENV, "7")
    monkeypatch.setenv(JOBS_ENV, "3")
    b = Budget.from_settings(Settings.from_env())
    assert b.cache.capacity == 7 * MB and b.limiter.max_jobs == 3
    monkeypatch.setenv(JOBS_ENV, "zero")
    b = Budget.from_settings(Settings.from_env())
    assert b.limiter.max_jobs == DEFAULT_MAX_JOBS
    assert JOBS_ENV in caplog.text and "integer" in caplog.text


def test_the_old_cache_setting_is_read_when_the_new_one_is_not_set(monkeypatch):
    monkeypatch.delenv(MEMORY_MB_ENV, raising=False)
    monkeypatch.setenv(OLD_CACHE_MB_ENV, "9")
    assert Settings.from_env().memory_bytes == 9 * MB
    monkeypatch.setenv(MEMORY_MB_ENV, "11")                      # the new name wins
    assert Settings.from_env().memory_bytes == 11 * MB


def test_a_computation_waits_until_those_in_flight_leave_room_in_the_budget():
    bud = Budget(1000, max_jobs=2)
    bud.cache.put("old", "value", 500)
    gate = threading.Event()
    started: list[str] = []
    statuses: list[Status] = []

    def job(k):
        def run():
            started.append(k)
            assert bud.cache.total + bud.cache.reserved <= bud.cache.capacity
            gate.wait(10) if k == "a" else None
            return k
        return run

    ta = threading.Thread(target=lambda: bud.get("a", job("a"), nbytes=1, reserve=600))
    ta.start()
    wait_for(lambda: started == ["a"])
    assert "old" not in bud.cache                       # evicted to make room for a's 600 bytes
    tb = threading.Thread(target=lambda: bud.get("b", job("b"), nbytes=1, reserve=600, on_status=statuses.append))
    tb.start()
    wait_for(lambda: bud.limiter.running == 2 and len(statuses) >= 2)
    assert started == ["a"]                                      # b has a slot but no room: it waits, and says so
    assert all(s.state == "queued" for s in statuses)
    gate.set()
    ta.join(10)
    tb.join(10)
    assert started == ["a", "b"] and bud.cache.reserved == 0


# ----------------------------------------------------------------------------------------------------------------------
# one budget: uploads and payloads in transit draw from it too

def test_a_computation_waits_while_an_upload_holds_the_bytes_it_needs():
    bud = Budget(1000, max_jobs=2)
    statuses: list[Status] = []
    started = threading.Event()
    upload_done = threading.Event()

    def upload():
        with bud.reserved(700):                            # an upload being checked
            upload_done.wait(10)

    tu = threading.Thread(target=upload)
    tu.start()
    wait_for(lambda: bud.cache.reserved == 700)
    tj = threading.Thread(target=lambda: bud.get("job", lambda: started.set() or "v", nbytes=1, reserve=600,
                                                 on_status=statuses.append))
    tj.start()
    wait_for(lambda: len(statuses) >= 2)
    assert not started.is_set() and all(s.state == "queued" for s in statuses)   # 700 + 600 > 1000: it waits
    upload_done.set()
    tu.join(10)
    tj.join(10)
    assert started.is_set() and bud.cache.reserved == 0 and "job" in bud.cache


def test_a_payload_in_transit_blocks_work_until_it_is_released():
    bud = Budget(1000, max_jobs=1)
    bud.cache.put("payload", b"x" * 10, 300)
    bud.cache.hold("session-1", 500, ttl=60)               # Streamlit's copies of it, on their way to the browser
    assert bud.cache.held_elsewhere() == 500 and bud.cache.room() == 500
    assert bud.cache.keys() == ["payload"]                 # 300 + 500 fit
    bud.cache.hold("session-2", 300, ttl=60)               # another session's: the cache makes way
    assert bud.cache.keys() == [] and bud.cache.room() == 200
    started = threading.Event()
    statuses: list[Status] = []
    t = threading.Thread(target=lambda: bud.get("job", lambda: started.set(), nbytes=1, reserve=400,
                                                on_status=statuses.append))
    bud.cache.reserve(100)                                 # something else in flight: the job must fit beside it
    t.start()
    wait_for(lambda: bud.limiter.running == 1 and len(statuses) >= 2)
    assert not started.is_set() and all(s.state == "queued" for s in statuses)   # 100 + 800 held + 400 > 1000
    bud.cache.unhold("session-1")                          # sent: the hold goes
    wait_for(started.is_set)
    bud.cache.release(100)
    t.join(10)
    assert bud.cache.held_elsewhere() == 300


def test_a_hold_expires_after_its_ttl_and_a_new_one_replaces_the_old():
    cache = ByteLRU(1000, on_evict=None)
    cache.hold("s", 300, ttl=60)
    cache.hold("s", 100, ttl=60)                           # the session's next payload replaces its last
    assert cache.held_elsewhere() == 100
    cache.hold("s", 100, ttl=0.05)
    time.sleep(0.1)
    assert cache.expire() and cache.held_elsewhere() == 0


def test_a_payload_that_does_not_fit_is_sent_in_smaller_chunks():
    from bptt import stepview
    from bptt.app.stepper import BUILD_WORK, TRANSIT_COPIES, payload_limit

    T, per_step = 64, 2 * MB                               # 128 MB of steps: over stepview.BUDGET already
    roomy = Budget(4000 * MB, max_jobs=2)
    tight = Budget(4000 * MB, max_jobs=2)
    tight.cache.reserve(3900 * MB)                         # computations in flight leave 100 MB
    n_roomy = stepview.chunk_steps(T, per_step, payload_limit(roomy.cache.room()))
    n_tight = stepview.chunk_steps(T, per_step, payload_limit(tight.cache.room()))
    assert n_roomy == stepview.chunk_steps(T, per_step)   # plenty of room: the payload budget as before
    assert 1 <= n_tight < n_roomy
    # building a chunk, caching it and Streamlit's copies while it is sent fit in the room that was left
    assert (BUILD_WORK + 1 + TRANSIT_COPIES) * n_tight * per_step <= tight.cache.room()


# ----------------------------------------------------------------------------------------------------------------------
# importing has no side effects

IMPORT_CHECK = """
import threading
import bptt, bptt.cli, bptt.analysis, bptt.stepview, bptt.memory as memory
assert threading.active_count() == 1, [t.name for t in threading.enumerate()]
assert not memory.malloc_tuned()
memory.setup()                                             # the app's entry point: now both
assert memory.malloc_tuned() or memory.release.libc() is None
assert any(t.name == "bptt-memory-janitor" for t in threading.enumerate())
print("ok")
"""


def test_importing_bptt_starts_no_thread_and_does_not_tune_malloc():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", IMPORT_CHECK], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

