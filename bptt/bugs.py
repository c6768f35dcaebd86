"""The bug zoo of every cell, by name. Each bug is defined once, in its cell's module (bptt/cells/rnn.py, lstm.py,
gru.py), as a subclass of that cell's correct step overriding one hook; this module only looks them up.

Bug names are unique across cells; "none" is each cell's correct step.
"""
from __future__ import annotations

from .cells import ALL_BUGS, BUGS, CELLS
from .cells.base import Step

NAMES: tuple[str, ...] = ALL_BUGS      # "none" first, then every cell's bugs: config.BUGS
ZOO: dict[str, type[Step]] = {name: step for c in CELLS.values() for name, step in c.zoo.items() if name != "none"}


def cell_of_bug(name: str) -> str | None:
    """The cell whose bug this is (None for "none"); KeyError names the known bugs."""
    if name == "none":
        return None
    for cell, names in BUGS.items():
        if name in names:
            return cell
    raise KeyError(f"unknown bug {name!r}; known: {', '.join(NAMES)}")


def step_of(name: str, cell: str = "rnn") -> type[Step]:
    """The step a bug name selects in this cell ("none": the cell's correct step); KeyError names the cell's bugs."""
    return CELLS[cell].step_of(name)


def first_divergence(name: str, T: int, cell: str = "rnn") -> dict | None:
    """{"quantity", "t"[, "gate"]} (0-based t) where the bug's first wrong number is expected in a T-step comparison;
    None for no bug, or when the sequence is too short to have that step (e.g. forget-carry at T = 1: no carry)."""
    d = step_of(name, cell).diverges
    if d is None or not -T <= d[1] < T:
        return None
    out = {"quantity": d[0], "t": d[1] % T}
    if len(d) > 2:
        out["gate"] = d[2]
    return out
