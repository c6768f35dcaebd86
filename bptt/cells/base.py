"""What every cell declares, and the little that all cells share: truncation's cut, the axes of each kind of
matrix, and the weight-shaped quantities derived on demand from a step's small (B, ·) arrays.

A cell module (rnn.py, lstm.py, gru.py) is its derivation in code: a `Cell` declaration (parameters with their gate
blocks, states, per-step quantities with shapes and labels), its plain forward and BPTT (one loop iteration per
timestep), its hooks where hand-written BPTT goes wrong and the bugs that override them, and its unrolled autograd
reference. Nothing here imports the rest of the package.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

WEIGHTS = ("W_ih", "W_hh", "b_ih", "b_hh")            # every cell's parameters, in PyTorch's layout
GRADIENTS = ("dW_ih", "dW_hh", "db_ih", "db_hh")       # their gradients

# the index names of each kind of matrix, (rows, columns): b batch, i input, j hidden unit, k hidden unit of h_{t-1}
AXES = {"BH": ("batch b", "hidden unit j"), "BI": ("batch b", "input i"), "BG": ("batch b", "gate row j"),
        "HI": ("hidden unit j", "input i"), "HH": ("hidden unit j", "hidden unit k"), "1H": ("", "hidden unit j"),
        "GI": ("gate row j", "input i"), "GH": ("gate row j", "hidden unit k"), "1G": ("", "gate row j")}
# the export's index names of a matrix kind (CSV columns)
INDEX = {"BH": ("b", "j"), "BI": ("b", "i"), "BG": ("b", "j"), "HI": ("j", "i"), "HH": ("j", "k"), "1H": ("j",),
         "GI": ("j", "i"), "GH": ("j", "k"), "1G": ("j",)}


def carry_cut(t: int, truncate: int) -> bool:
    """Whether truncated BPTT cuts the carry from step t to step t-1 (the state is detached before step t)."""
    return truncate > 0 and t > 0 and t % truncate == 0


@dataclass(frozen=True)
class Quantity:
    """One per-step quantity of a cell: its export name, its matrix kind (AXES key) and its on-screen label."""
    name: str
    kind: str              # AXES key of one step's matrix: "BH" (B, H), "BG" (B, G·H) gate blocks, "BI" (B, I)
    label: str             # what the page calls it ("d_tanh", "∂L/∂c_t" ...)
    doc: str = ""          # one sentence: what it is

    @property
    def gated(self) -> bool:
        """Whether the last axis is the cell's gate blocks (G blocks of H)."""
        return self.kind in ("BG", "GI", "GH", "1G")


class Step:
    """The hooks every cell's backward shares: how a step's weight contribution is added to the running sum."""
    name = "none"                               # the --bug value
    note = ""                                   # one sentence for the app's banner
    equation = ""                               # LaTeX of what a bug computes instead
    diverges: tuple | None = None               # (quantity, t[, gate]) of a bug's first wrong number; t = -1 is T-1
    script: tuple[str, ...] = ()                # the results a bug's reproduction script reports as wrong

    @staticmethod
    def accumulate(total: np.ndarray, contribution: np.ndarray) -> np.ndarray:
        """A weight gradient after one more step: the running total plus this step's contribution (+=)."""
        return total + contribution


@dataclass(frozen=True)
class Cell:
    """What one recurrent cell is; every layer below the app asks this instead of naming a cell's quantities."""
    name: str                                  # "rnn" | "lstm" | "gru": the config's `cell`
    title: str                                 # "vanilla RNN", "LSTM", "GRU"
    torch_name: str                            # "torch.nn.RNN" ...
    gates: tuple[str, ...]                     # the gate blocks stacked along W_ih's and W_hh's rows (() for rnn)
    states: tuple[str, ...]                    # ("h",) or ("h", "c"): what step t hands to step t+1
    forward: tuple[Quantity, ...]              # per-step forward quantities, in the order a step computes them
    backward: tuple[Quantity, ...]             # per-step backward quantities, in the order a step computes them
    zoo: dict[str, type[Step]]                 # "none" (the correct Step) and its bugs, by --bug name
    torch_module: Callable                     # (I, H, nonlinearity) -> a float64 torch module (torch imported late)
    run_forward: Callable                      # (problem) -> {forward quantity: (T, B, ·)}
    run_backward: Callable                     # (problem, forward dict, step) -> {backward quantity: (T, B, ·)}
    contributions: Callable                    # (problem, trace values, t, step) -> {dW_ih, dW_hh, db_ih, db_hh}
    unrolled: Callable                         # (problem) -> {every forward and backward quantity} from autograd

    @property
    def G(self) -> int:
        """Gate blocks stacked in W_ih's rows (1 for the vanilla RNN)."""
        return max(1, len(self.gates))

    @property
    def quantities(self) -> dict[str, Quantity]:
        return {q.name: q for q in (*self.forward, *self.backward)}

    @property
    def initial(self) -> tuple[str, ...]:
        """The initial states' gradients a backward pass returns: dh0 (and dc0)."""
        return tuple(f"d{s}0" for s in self.states)

    @property
    def carries(self) -> tuple[str, ...]:
        """The per-step quantities a step sends back to t-1: dh_prev (and dc_prev)."""
        return tuple(f"d{s}_prev" for s in self.states)

    def shape(self, kind: str, T: int, B: int, I: int, H: int) -> tuple[int, ...]:
        """The (T, ...) shape of a per-step quantity of this matrix kind."""
        G = self.G * H
        return (T, *{"BH": (B, H), "BI": (B, I), "BG": (B, G)}[kind])

    def weight_kind(self, w: str) -> str:
        """The matrix kind of a weight gradient: "GI" for dW_ih, "GH" dW_hh, "1G" biases (H rows per gate block)."""
        if not self.gates:
            return {"dW_ih": "HI", "dW_hh": "HH"}.get(w, "1H")
        return {"dW_ih": "GI", "dW_hh": "GH"}.get(w, "1G")

    def gate_slice(self, gate: str, H: int) -> slice:
        """The rows (or last-axis entries) of one gate block."""
        k = self.gates.index(gate)
        return slice(k * H, (k + 1) * H)

    def step_of(self, bug: str) -> type[Step]:
        """The Step a bug name selects ("none": the correct one); KeyError lists this cell's bugs."""
        try:
            return self.zoo[bug]
        except KeyError:
            raise KeyError(f"unknown {self.name} bug {bug!r}; the {self.name} bugs are: "
                           f"{', '.join(b for b in self.zoo if b != 'none')}") from None


# ----------------------------------------------------------------------------------------------------------------------
# weight-shaped quantities, on demand, in the engine's own order

def iter_sums(cell: Cell, problem, values, step: type[Step], lo: int = 0, start: tuple | None = None):
    """(t, {w: the running sum of steps t..T-1}) for t = T-1 down to lo, added with the step's accumulate hook.

    start (t0, sums): the running sums at t0, as this made them before; the sums go on from t0 - 1 (bit for bit what
    they would be from T-1: the same additions in the same order)."""
    T = values["h"].shape[0]
    total: dict[str, np.ndarray] = {}
    if start is not None:
        T, total = start
    for t in range(T - 1, lo - 1, -1):
        c = cell.contributions(problem, values, t, step)
        total = {w: step.accumulate(total[w] if total else np.zeros_like(c[w]), c[w]) for w in GRADIENTS}
        yield t, total


def running_sums(cell: Cell, problem, values, step: type[Step], lo: int = 0, hi: int | None = None,
                 start: tuple | None = None) -> dict[str, np.ndarray]:
    """{w: (hi - lo, ...) the running sums of steps t..T-1 for t = lo..hi-1} (hi: T by default): exactly the engine's
    sums, in its order (from t = T-1 down, through the step's accumulate hook; or on from start, see iter_sums)."""
    T = values["h"].shape[0]
    hi = T if hi is None else hi
    out: dict[str, np.ndarray] = {}
    for t, total in iter_sums(cell, problem, values, step, lo, start):
        if t >= hi:
            continue
        for w, v in total.items():
            if w not in out:
                out[w] = np.empty((hi - lo, *v.shape))
            out[w][t - lo] = v
    return out


def gradients(cell: Cell, problem, values, step: type[Step]) -> dict[str, np.ndarray]:
    """The full weight gradients: the running sums at t = 0, bit for bit (every step's contribution added from
    t = T-1 down, as the derivation adds them; one product of all T·B rows would be ~15% faster, but would differ from
    the running sums in the last bit)."""
    total: dict[str, np.ndarray] = {}
    for _, total in iter_sums(cell, problem, values, step, 0):  # noqa: B007  (the last is the sum down to t = 0)
        pass
    return total
