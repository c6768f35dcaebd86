"""How many bytes a value holds, and how many the process holds (RSS)."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd


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


def rss() -> int:
    """The process's resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
