"""The cells: what each recurrent cell is, in one module per cell (rnn.py, lstm.py, gru.py); base.py is what they
share. `CELLS` is THE list; every layer below the app asks a cell instead of naming its quantities."""
from __future__ import annotations

from .base import GRADIENTS, WEIGHTS, Cell, Quantity, Step, carry_cut
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN

CELLS: dict[str, Cell] = {c.name: c for c in (RNN, LSTM, GRU)}
BUGS: dict[str, tuple[str, ...]] = {c.name: tuple(c.zoo) for c in CELLS.values()}   # per cell, "none" first
ALL_BUGS: tuple[str, ...] = ("none", *(b for c in CELLS.values() for b in c.zoo if b != "none"))


def cell_of(name: str) -> Cell:
    """The cell a config's `cell` names; KeyError lists the cells."""
    try:
        return CELLS[name]
    except KeyError:
        raise KeyError(f"unknown cell {name!r}; the cells are: {', '.join(CELLS)}") from None


__all__ = ["ALL_BUGS", "BUGS", "CELLS", "GRADIENTS", "WEIGHTS", "Cell", "Quantity", "Step", "carry_cut", "cell_of"]
