"""The LSTM's and the GRU's student shapes: how each is recognised, called and converted to the torch.nn.LSTM /
torch.nn.GRU layout. NumPy only (the child process imports this before the student's code).

Shapes (the README's check section documents each signature and return order):
  torch layout   lstm_step_forward(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh) -> (h_t, c_t, cache)
                 lstm_step_backward(dh_t, dc_t, cache) -> (dx_t, dh_prev, dc_prev, dW_ih, dW_hh, db_ih, db_hh)
                 lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh) -> (h, cache) or (h, c, cache)
                 lstm_backward(dh, cache) -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh)
                 gru_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh) -> (h_t, cache)
                 gru_step_backward(dh_t, cache) -> (dx_t, dh_prev, dW_ih, dW_hh, db_ih, db_hh)
                 gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh) -> (h, cache); gru_backward(dh, cache) -> (dx, dh0, dW_ih,
                 dW_hh, db_ih, db_hh)
  CS231n         lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> (next_h, next_c, cache), gates i | f | o | g
                 lstm_step_backward(dnext_h, dnext_c, cache) -> (dx, dprev_h, dprev_c, dWx, dWh, db)
                 lstm_forward(x, h0, Wx, Wh, b) -> (h, cache) (c0 = 0); lstm_backward(dh, cache) -> (dx, dh0, dWx, dWh,
                 db)
  Coursera       lstm_cell_forward(xt, a_prev, c_prev, parameters) -> (a_next, c_next, yt_pred, cache)
                 lstm_cell_backward(da_next, dc_next, cache) -> {dxt, da_prev, dc_prev, dWf, dbf, dWi, dbi, dWc, dbc,
                 dWo, dbo}; lstm_forward(x, a0, parameters) -> (a, y, c, caches) (c0 = 0); lstm_backward(da, caches)
                 -> {dx, da0, dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo}
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import shapes
from .shapes import Expect, Recognised

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
TORCH = {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU"}

# unit id -> (shape letter, what it is, in words)
UNITS: dict[str, tuple[str, str]] = {
    "lstm-torch-step": ("a", "step functions lstm_step_forward / lstm_step_backward, torch.nn.LSTM layout"),
    "lstm-torch-sequence": ("b", "whole-sequence functions lstm_forward / lstm_backward, torch.nn.LSTM layout"),
    "lstm-cs231n-step": ("c", "step functions lstm_step_forward / lstm_step_backward, CS231n layout (gates i, f, o, "
                              "g)"),
    "lstm-cs231n-sequence": ("c", "whole-sequence functions lstm_forward / lstm_backward, CS231n layout (gates i, f, "
                                  "o, g; c0 = 0)"),
    "lstm-coursera-step": ("e", "step functions lstm_cell_forward / lstm_cell_backward, Coursera layout"),
    "lstm-coursera-sequence": ("e", "whole-sequence functions lstm_forward / lstm_backward, Coursera layout (c0 = 0)"),
    "gru-torch-step": ("a", "step functions gru_step_forward / gru_step_backward, torch.nn.GRU layout"),
    "gru-torch-sequence": ("b", "whole-sequence functions gru_forward / gru_backward, torch.nn.GRU layout"),
}
# (cell, kind, forward, backward, the layouts it may have; the first listed wins a tie)
FUNCTION_SHAPES: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("lstm", "step", "lstm_step_forward", "lstm_step_backward", ("torch", "cs231n")),
    ("lstm", "step", "lstm_cell_forward", "lstm_cell_backward", ("coursera",)),
    ("lstm", "sequence", "lstm_forward", "lstm_backward", ("torch", "cs231n", "coursera")),
    ("gru", "step", "gru_step_forward", "gru_step_backward", ("torch",)),
    ("gru", "sequence", "gru_forward", "gru_backward", ("torch",)),
)
# (cell, layout) -> (the forward's parameters (step, sequence), names that give the layout away). The torch layout and
# CS231n share the name lstm_step_forward: told apart by h_prev / W_ih against prev_h / Wx, else by the count (7 or 6).
LAYOUT_PARAMS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    ("lstm", "torch"): (("x_t", "h_prev", "c_prev", "W_ih", "W_hh", "b_ih", "b_hh"),
                        ("x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"),
                        ("W_ih", "weight_ih", "b_ih", "h_prev", "c0")),
    ("lstm", "cs231n"): (("x", "prev_h", "prev_c", "Wx", "Wh", "b"), ("x", "h0", "Wx", "Wh", "b"),
                         ("Wx", "Wh", "prev_h", "prev_c")),
    ("lstm", "coursera"): (("xt", "a_prev", "c_prev", "parameters"), ("x", "a0", "parameters"),
                           ("parameters", "a_prev", "a0")),
    ("gru", "torch"): (("x_t", "h_prev", "W_ih", "W_hh", "b_ih", "b_hh"), ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh"),
                       ("W_ih", "weight_ih", "b_ih", "h_prev")),
}
COURSERA_KEYS = ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")     # Coursera's gate names: c is torch's g
COURSERA_GATE = {"f": "f", "i": "i", "c": "g", "o": "o"}
COURSERA_NY = 2
RETURNS = {
    ("lstm", "torch", "step_backward"): ("dx_t", "dh_prev", "dc_prev", "dW_ih", "dW_hh", "db_ih", "db_hh"),
    ("lstm", "torch", "backward"): ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh"),
    ("lstm", "cs231n", "step_backward"): ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"),
    ("lstm", "cs231n", "backward"): ("dx", "dh0", "dWx", "dWh", "db"),
    ("lstm", "coursera", "step_backward"): ("dxt", "da_prev", "dc_prev", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc",
                                            "dWo", "dbo"),
    ("lstm", "coursera", "backward"): ("dx", "da0", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo"),
    ("gru", "torch", "step_backward"): ("dx_t", "dh_prev", "dW_ih", "dW_hh", "db_ih", "db_hh"),
    ("gru", "torch", "backward"): ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"),
}


def recognise(mod: Any, cell: str) -> Recognised:
    """The units of the module for this cell (the vanilla RNN's: shapes.recognise), and why others were not."""
    if cell == "rnn":
        return shapes.recognise(mod)
    return shapes.recognise(mod, [(kind, fwd, bwd, layouts, {lay: LAYOUT_PARAMS[c, lay] for lay in layouts}, f"{c}-")
                                  for c, kind, fwd, bwd, layouts in FUNCTION_SHAPES if c == cell])


def unit_words(unit: str) -> tuple[str, str]:
    """(shape letter, what it is, in words) of any cell's unit id."""
    return UNITS[unit] if unit in UNITS else shapes.UNITS[unit]


def expectations(cell: str, layout: str) -> dict[str, Expect]:
    """Student name -> the shape it must have, in that layout's letters (G = 4H for the LSTM, 3H for the GRU)."""
    G = "4H" if cell == "lstm" else "3H"
    mod = TORCH[cell]
    if layout == "torch":
        return {"h_t": Expect(("B", "H"), "h_prev"), "c_t": Expect(("B", "H"), "c_prev"),
                "h": Expect(("T", "B", "H"), f"{mod}'s output, time-major"), "c": Expect(("T", "B", "H"), "h"),
                "dx_t": Expect(("B", "I"), "x_t"), "dh_prev": Expect(("B", "H"), "h_prev"),
                "dc_prev": Expect(("B", "H"), "c_prev"), "dx": Expect(("T", "B", "I"), "x, time-major"),
                "dh0": Expect(("B", "H"), "h0"), "dc0": Expect(("B", "H"), "c0"),
                "dW_ih": Expect((G, "I"), f"{mod}.weight_ih_l0"), "dW_hh": Expect((G, "H"), f"{mod}.weight_hh_l0"),
                "db_ih": Expect((G,), f"{mod}.bias_ih_l0"), "db_hh": Expect((G,), f"{mod}.bias_hh_l0")}
    if layout == "cs231n":
        return {"next_h": Expect(("N", "H"), "prev_h"), "next_c": Expect(("N", "H"), "prev_c"),
                "h": Expect(("N", "T", "H"), "CS231n's h, batch-major"), "dx_step": Expect(("N", "D"), "x"),
                "dprev_h": Expect(("N", "H"), "prev_h"), "dprev_c": Expect(("N", "H"), "prev_c"),
                "dx": Expect(("N", "T", "D"), "x, batch-major"), "dh0": Expect(("N", "H"), "h0"),
                "dWx": Expect(("D", G), "Wx"), "dWh": Expect(("H", G), "Wh"), "db": Expect((G,), "b")}
    gate = {k: Expect(("n_a", "n_a+n_x"), f"parameters['{k}']") for k in COURSERA_KEYS if k[0] == "W"}
    gate.update({k: Expect(("n_a", "1"), f"parameters['{k}']") for k in COURSERA_KEYS if k[0] == "b"})
    return {"a_next": Expect(("n_a", "m"), "a_prev"), "c_next": Expect(("n_a", "m"), "c_prev"),
            "a": Expect(("n_a", "m", "T_x"), "Coursera's a, column-major"), "c": Expect(("n_a", "m", "T_x"), "a"),
            "dxt": Expect(("n_x", "m"), "xt"), "da_prev": Expect(("n_a", "m"), "a_prev"),
            "dc_prev": Expect(("n_a", "m"), "c_prev"), "dx": Expect(("n_x", "m", "T_x"), "x, column-major"),
            "da0": Expect(("n_a", "m"), "a0"), **{"d" + k: v for k, v in gate.items()}}


def cs231n_order(a: np.ndarray, H: int) -> np.ndarray:
    """Rows (first axis) from PyTorch's gate order i, f, g, o to CS231n's i, f, o, g, or back (the swap is its own
    inverse)."""
    return np.concatenate([a[:2 * H], a[3 * H:], a[2 * H:3 * H]])


def coursera_parameters(W: dict) -> dict:
    """Coursera's parameters: per gate W (n_a, n_a + n_x) acting on [a_prev; xt] = [W_hh block | W_ih block] and
    b (n_a, 1) = b_ih + b_hh block; c is torch's g. Wy (n_y, n_a), by: a prediction that plays no part."""
    H = W["W_hh"].shape[1]
    out = {}
    for name, g in COURSERA_GATE.items():
        k = GATES["lstm"].index(g)
        rows = slice(k * H, (k + 1) * H)
        out["W" + name] = np.hstack([W["W_hh"][rows], W["W_ih"][rows]])
        out["b" + name] = (W["b_ih"][rows] + W["b_hh"][rows])[:, None]
    rng = np.random.default_rng(0)
    out["Wy"], out["by"] = rng.standard_normal((COURSERA_NY, H)), rng.standard_normal((COURSERA_NY, 1))
    return out


def from_coursera(grads: dict[str, np.ndarray | None], H: int) -> dict[str, np.ndarray | None]:
    """Coursera's dWf, dbf, ... as torch's dW_ih, dW_hh, db_ih = db_hh (gate blocks i, f, g, o); None where a gate's
    gradient is missing."""
    order = [n for g in GATES["lstm"] for n, gg in COURSERA_GATE.items() if gg == g]     # i, f, c, o
    Ws, bs = [grads.get("dW" + n) for n in order], [grads.get("db" + n) for n in order]
    out: dict[str, np.ndarray | None] = {"dW_ih": None, "dW_hh": None, "db_ih": None, "db_hh": None}
    if all(w is not None for w in Ws):
        out["dW_hh"] = np.concatenate([w[:, :H] for w in Ws])
        out["dW_ih"] = np.concatenate([w[:, H:] for w in Ws])
    if all(b is not None for b in bs):
        out["db_ih"] = np.concatenate([b[:, 0] for b in bs])
        out["db_hh"] = out["db_ih"].copy()
    return out


def layout_args(cell: str, layout: str, W: dict) -> tuple:
    """The weights as the layout's forward takes them."""
    if layout == "torch":
        return tuple(W[k].copy() for k in ("W_ih", "W_hh", "b_ih", "b_hh"))
    if layout == "cs231n":
        H = W["W_hh"].shape[1]
        return (cs231n_order(W["W_ih"], H).T.copy(), cs231n_order(W["W_hh"], H).T.copy(),
                cs231n_order(W["b_ih"] + W["b_hh"], H))
    return (coursera_parameters(W),)


def to_torch(cell: str, layout: str, names: tuple[str, ...], vals: list[Any], H: int) -> dict[str, Any]:
    """A backward's weight gradients (already checked arrays, or None) as torch's dW_ih, dW_hh, db_ih, db_hh."""
    got = dict(zip(names, vals))
    if layout == "torch":
        return {k: got.get(k) for k in ("dW_ih", "dW_hh", "db_ih", "db_hh")}
    if layout == "cs231n":
        dWx, dWh, db = got["dWx"], got["dWh"], got["db"]
        db = None if db is None else cs231n_order(db, H)
        return {"dW_ih": None if dWx is None else cs231n_order(dWx.T, H),
                "dW_hh": None if dWh is None else cs231n_order(dWh.T, H), "db_ih": db,
                "db_hh": None if db is None else db.copy()}
    return from_coursera(got, H)
