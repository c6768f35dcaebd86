"""The shapes of student code the checker accepts: how each is recognised, called and converted. NumPy only (the
child process imports this before the student's code, under a memory limit)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------------------------------
# the shapes

# unit id -> (shape letter, what it is, in words)
UNITS: dict[str, tuple[str, str]] = {
    "torch-step": ("a", "step functions rnn_step_forward / rnn_step_backward, torch.nn.RNN layout"),
    "torch-sequence": ("b", "whole-sequence functions rnn_forward / rnn_backward, torch.nn.RNN layout"),
    "cs231n-step": ("c", "step functions rnn_step_forward / rnn_step_backward, CS231n layout"),
    "cs231n-sequence": ("c", "whole-sequence functions rnn_forward / rnn_backward, CS231n layout"),
    "class": ("d", "the worked exercise's class: cell(x_t, h_prev), cell.backward(dh_t) once per step"),
    "coursera-step": ("e", "step functions rnn_cell_forward / rnn_cell_backward, Coursera layout"),
    "coursera-sequence": ("e", "whole-sequence functions rnn_forward / rnn_backward, Coursera layout"),
}
# how each pair of functions is recognised: (kind, forward, backward, the layouts it may have). A layout is told from
# the forward's parameter names (LAYOUT_PARAMS), else from their number; the first layout listed wins a tie.
FUNCTION_SHAPES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("step", "rnn_step_forward", "rnn_step_backward", ("torch", "cs231n")),
    ("step", "rnn_cell_forward", "rnn_cell_backward", ("coursera",)),
    ("sequence", "rnn_forward", "rnn_backward", ("torch", "cs231n", "coursera")),
)
# layout -> (the forward's parameters as the course writes them (step, sequence), names that give the layout away)
LAYOUT_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "torch": (("x_t", "h_prev", "W_ih", "W_hh", "b_ih", "b_hh"), ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh"),
              ("W_ih", "weight_ih", "b_ih")),
    "cs231n": (("x", "prev_h", "Wx", "Wh", "b"), ("x", "h0", "Wx", "Wh", "b"), ("Wx", "Wh")),
    "coursera": (("xt", "a_prev", "parameters"), ("x", "a0", "parameters"), ("parameters", "a_prev", "a0")),
}
# kept for the callers that name the torch layout's functions
STEP_FUNCS = ("rnn_step_forward", "rnn_step_backward")
SEQ_FUNCS = ("rnn_forward", "rnn_backward")
CLASS_LISTS = ("dx_list", "dw_ih_stack", "dw_hh_stack", "db_ih_stack", "db_hh_stack")
CARRY_ATTRS = ("carry", "dh_prev", "dh0", "dh_next", "dprev_h")   # where a class may keep what it sends to t-1

# what each call returns, by the names the shapes use (Coursera's backward returns a dict with these keys)
RETURNS = {
    ("torch", "step_backward"): ("dx_t", "dh_prev", "dW_ih", "dW_hh", "db_ih", "db_hh"),
    ("torch", "backward"): ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"),
    ("cs231n", "step_backward"): ("dx", "dprev_h", "dWx", "dWh", "db"),
    ("cs231n", "backward"): ("dx", "dh0", "dWx", "dWh", "db"),
    ("coursera", "step_forward"): ("a_next", "yt_pred", "cache"),
    ("coursera", "forward"): ("a", "y_pred", "caches"),
    ("coursera", "step_backward"): ("dxt", "da_prev", "dWax", "dWaa", "dba"),
    ("coursera", "backward"): ("dx", "da0", "dWax", "dWaa", "dba"),
}
COURSERA_NY = 2    # rows of Wya and by: Coursera's cell also makes a prediction, which plays no part in the gradients


@dataclass(frozen=True)
class Expect:
    """The shape an output must have: its letters, and what it is like."""
    dims: tuple[str, ...]   # letters, e.g. ("H", "I")
    like: str               # "torch.nn.RNN.weight_ih_l0"

    def shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(sizes[d] for d in self.dims)


# student name -> expectation, per layout (the CS231n names use its letters: N batch, D input)
EXPECT: dict[str, dict[str, Expect]] = {
    "torch": {
        "h_t": Expect(("B", "H"), "h_prev"), "h": Expect(("T", "B", "H"), "torch.nn.RNN's output, time-major"),
        "dx_t": Expect(("B", "I"), "x_t"), "dh_prev": Expect(("B", "H"), "h_prev"),
        "dx": Expect(("T", "B", "I"), "x, time-major"), "dh0": Expect(("B", "H"), "h0"),
        "dW_ih": Expect(("H", "I"), "torch.nn.RNN.weight_ih_l0"),
        "dW_hh": Expect(("H", "H"), "torch.nn.RNN.weight_hh_l0"),
        "db_ih": Expect(("H",), "torch.nn.RNN.bias_ih_l0"), "db_hh": Expect(("H",), "torch.nn.RNN.bias_hh_l0"),
    },
    "cs231n": {
        "next_h": Expect(("N", "H"), "prev_h"), "h": Expect(("N", "T", "H"), "CS231n's h, batch-major"),
        "dx_step": Expect(("N", "D"), "x"), "dprev_h": Expect(("N", "H"), "prev_h"),
        "dx": Expect(("N", "T", "D"), "x, batch-major"), "dh0": Expect(("N", "H"), "h0"),
        "dWx": Expect(("D", "H"), "Wx"), "dWh": Expect(("H", "H"), "Wh"), "db": Expect(("H",), "b"),
    },
    "coursera": {
        "a_next": Expect(("n_a", "m"), "a_prev"), "a": Expect(("n_a", "m", "T_x"), "Coursera's a, column-major"),
        "dxt": Expect(("n_x", "m"), "xt"), "da_prev": Expect(("n_a", "m"), "a_prev"),
        "dx": Expect(("n_x", "m", "T_x"), "x, column-major"), "da0": Expect(("n_a", "m"), "a0"),
        "dWax": Expect(("n_a", "n_x"), "parameters['Wax']"), "dWaa": Expect(("n_a", "n_a"), "parameters['Waa']"),
        "dba": Expect(("n_a", "1"), "parameters['ba']"),
    },
}
# the CS231n and Coursera outputs as the export names them (dWx is compared as dW_ih = dWxᵀ; a single bias gradient
# db or dba with both of torch's bias gradients, which are equal for the RNN)
CS231N_AS = {"next_h": "h", "dprev_h": "dh_prev", "dWx": "dW_ih", "dWh": "dW_hh", "db": "db_ih"}
COURSERA_AS = {"a_next": "h", "dxt": "dx", "da_prev": "dh_prev", "dWax": "dW_ih", "dWaa": "dW_hh", "dba": "db_ih"}

# how each layout writes a weight or bias gradient: the hints quote the student's own names and axes
# (layout -> torch name -> (the student's name, the right formula, the transposed one))
FORMULAS: dict[str, dict[str, tuple[str, str, str]]] = {
    "torch": {"dW_ih": ("dW_ih", "d_pre.T @ x_t", "x_t.T @ d_pre"), "dW_hh": ("dW_hh", "d_pre.T @ h_prev",
                                                                              "h_prev.T @ d_pre"),
              "db_ih": ("db_ih", "d_pre.sum(axis=0)", ""), "db_hh": ("db_hh", "d_pre.sum(axis=0)", "")},
    "cs231n": {"dW_ih": ("dWx", "x.T @ dtanh", "dtanh.T @ x"), "dW_hh": ("dWh", "prev_h.T @ dtanh", "dtanh.T @ prev_h"),
               "db_ih": ("db", "dtanh.sum(axis=0)", ""), "db_hh": ("db", "dtanh.sum(axis=0)", "")},
    "coursera": {"dW_ih": ("dWax", "np.dot(dtanh, xt.T)", "np.dot(xt, dtanh.T)"),
                 "dW_hh": ("dWaa", "np.dot(dtanh, a_prev.T)", "np.dot(a_prev, dtanh.T)"),
                 "db_ih": ("dba", "np.sum(dtanh, axis=1, keepdims=True)", ""),
                 "db_hh": ("dba", "np.sum(dtanh, axis=1, keepdims=True)", "")},
}
BATCH_AXIS = {"torch": "axis 0", "cs231n": "axis 0", "coursera": "axis 1 (m)"}


def sizes_of(T: int, B: int, I: int, H: int) -> dict[str, int]:
    """The size of each letter, in every layout's letters."""
    return {"T": T, "B": B, "N": B, "I": I, "D": I, "H": H, "T_x": T, "m": B, "n_x": I, "n_a": H, "1": 1,
            "4H": 4 * H, "3H": 3 * H, "n_a+n_x": H + I}


class ShapeProblem(Exception):
    """An output with the wrong shape, dtype or type; the message says what was expected."""


def to_array(value: Any, name: str, expect: Expect, sizes: dict[str, int]) -> np.ndarray:
    """The output as a float64 array of the expected shape, or ShapeProblem naming the output and the expectation."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):        # a torch tensor
        value = value.detach().cpu().numpy()
    if value is None:
        raise ShapeProblem(f"{name} is None; expected an array of shape {_expected(expect, sizes)}")
    try:
        arr = np.asarray(value)
    except Exception as err:  # noqa: BLE001  (anything array-like may raise anything)
        raise ShapeProblem(f"{name} is not an array ({type(value).__name__}: {err})") from None
    want = expect.shape(sizes)
    if arr.shape != want:
        hint = " (it looks transposed)" if arr.shape == want[::-1] and len(want) == 2 and want[0] != want[1] else ""
        raise ShapeProblem(f"{name} has shape {tuple(arr.shape)}; expected {_expected(expect, sizes)}{hint}")
    if arr.dtype != np.float64:
        if arr.dtype.kind in "fiub":
            raise ShapeProblem(f"{name} has dtype {arr.dtype}; expected float64 (the inputs are float64; "
                               f"{arr.dtype} {'rounds at ~1e-7' if arr.dtype == np.float32 else 'loses the values'}, "
                               f"far above the tolerance)")
        raise ShapeProblem(f"{name} has dtype {arr.dtype}; expected float64")
    return arr


def _expected(expect: Expect, sizes: dict[str, int]) -> str:
    shape = expect.shape(sizes)
    return f"{shape} = ({', '.join(expect.dims)}), like {expect.like}"


# ----------------------------------------------------------------------------------------------------------------------
# recognising a module

@dataclass(frozen=True)
class Recognised:
    """What was found in the student's module: the units to check, and notes on what was not usable."""
    units: tuple[str, ...]
    notes: tuple[str, ...]


def _params(fn: Any) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _layout(fn: Any, kind: str, layouts: tuple[str, ...], table: dict | None = None) -> str | None:
    """Which of the layouts the forward's parameters say (by a telling name, else by their number), or None. table:
    layout -> (step parameters, sequence parameters, telling names); LAYOUT_PARAMS by default."""
    table = LAYOUT_PARAMS if table is None else table
    names = _params(fn)
    for layout in layouts:
        if any(n in names for n in table[layout][2]):
            return layout
    for layout in layouts:
        if len(names) == len(table[layout][0 if kind == "step" else 1]):
            return layout
    return None


def find_class(mod: Any) -> type | None:
    """The worked exercise's class in the module: takes four weights, has backward and a call (or forward)."""
    found = []
    for obj in vars(mod).values():
        if not inspect.isclass(obj) or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if not callable(getattr(obj, "backward", None)):
            continue
        if "__call__" not in dir(obj) and not callable(getattr(obj, "forward", None)):
            continue
        init = [p for p in _params(obj.__init__)[1:]]
        if len(init) >= 4:
            exact = init[:4] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
            found.append((not exact, obj))
    found.sort(key=lambda e: e[0])
    return found[0][1] if found else None


def recognise(mod: Any, table: list | None = None) -> Recognised:
    """The units of the module that the checker can run (the vanilla RNN's FUNCTION_SHAPES, then the class; or the
    table's: (kind, forward, backward, layouts, layout -> parameters, unit id prefix), gated.recognise), and why others
    were not recognised."""
    units, notes = [], []
    g = vars(mod)
    rnn = table is None
    if rnn:
        table = [(kind, fwd, bwd, layouts, LAYOUT_PARAMS, "") for kind, fwd, bwd, layouts in FUNCTION_SHAPES]
    for kind, fwd, bwd, layouts, params, prefix in table:
        have = [callable(g.get(n)) for n in (fwd, bwd)]
        if all(have):
            layout = _layout(g[fwd], kind, layouts, params)
            if layout is None:
                wanted = " or ".join(f"({', '.join(params[lay][0 if kind == 'step' else 1])}) for the "
                                     f"{LAYOUT_NAMES[lay]} layout" for lay in layouts)
                notes.append(f"{fwd} takes ({', '.join(_params(g[fwd]))}); expected {wanted}")
            elif f"{prefix}{layout}-{kind}" not in units:
                units.append(f"{prefix}{layout}-{kind}")
        elif any(have):
            present, missing = (fwd, bwd) if have[0] else (bwd, fwd)
            notes.append(f"found {present} but no {missing}: both are needed")
    if rnn and find_class(mod) is not None:
        units.append("class")
    return Recognised(tuple(units), tuple(notes))


LAYOUT_NAMES = {"torch": "torch.nn.RNN", "cs231n": "CS231n", "coursera": "Coursera"}


def layout_of(unit: str) -> str:
    """The layout of a unit id ("coursera-step", "lstm-coursera-step" -> "coursera"; the class uses the torch
    layout)."""
    parts = unit.split("-")
    head = parts[1] if parts[0] in CELL_PREFIXES and len(parts) > 2 else parts[0]
    return head if head in LAYOUT_PARAMS else "torch"


CELL_PREFIXES = ("lstm", "gru")     # unit ids of the gated cells start with their cell: "lstm-torch-step"


def cell_of_unit(unit: str) -> str:
    """The cell a unit id belongs to ("rnn" for the vanilla RNN's unprefixed ids and for "arrays")."""
    head = unit.split("-")[0]
    return head if head in CELL_PREFIXES else "rnn"

