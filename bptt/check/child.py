"""The child process that runs a student's code: `python -m bptt.check.child DIR MEMORY_MB`.

It sets its own memory limit first, imports the student's file, recognises its shapes (shapes.py), runs each on the
jobs in DIR/in.npz + DIR/spec.json and writes DIR/out.npz + DIR/result.json (arrays in the torch.nn.RNN layout,
time-major; never a pickle). It imports NumPy only: no torch, no pandas, nothing of the app.
"""
from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import gated, shapes

# ----------------------------------------------------------------------------------------------------------------------
# the student's errors


class StudentRaised(Exception):
    """The student's code raised (or hit the memory limit) during one call."""

    def __init__(self, where: str, exc: BaseException):
        super().__init__(where)
        self.where, self.exc = where, exc


class Stop(Exception):
    """An output the next call needs has the wrong shape: this unit cannot go on with this job."""


def trimmed_traceback(exc: BaseException, path: str) -> str:
    """The exception with only the frames of the student's file (their own code), as Python prints it."""
    real = os.path.realpath(path)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.realpath(f.filename) == real]
    lines = ["Traceback (your file's frames only):\n"] + traceback.format_list(frames) if frames else []
    return "".join(lines + traceback.format_exception_only(type(exc), exc)).rstrip()


def call(fn: Callable, where: str, *args: Any) -> Any:
    """fn(*args); any exception of the student's code becomes StudentRaised(where)."""
    try:
        return fn(*args)
    except BaseException as exc:  # noqa: BLE001  (SystemExit, MemoryError, anything the student raises)
        raise StudentRaised(where, exc) from None


# ----------------------------------------------------------------------------------------------------------------------
# running one unit on one job


class Recorder:
    """Collects one unit-job's outputs (per step and whole) and the problems found in them."""

    def __init__(self, unit: str, job: str, sizes: dict[str, int], layout: str,
                 expect: dict[str, shapes.Expect] | None = None):
        self.unit, self.job, self.sizes, self.layout = unit, job, sizes, layout
        self.expect = shapes.EXPECT[layout] if expect is None else expect   # student name -> its shape
        self.arrays: dict[str, Any] = {}
        self.problems: list[dict] = []
        self.notes: list[str] = []

    def problem(self, quantity: str, t: int | None, message: str) -> None:
        self.problems.append({"unit": self.unit, "job": self.job, "quantity": quantity, "t": t, "message": message})

    def convert(self, value: Any, name: str, quantity: str, t: int | None, at: str = "",
                expect_as: str | None = None) -> Any:
        """The output as a checked float64 array, or None after recording the problem."""
        try:
            return shapes.to_array(value, name + at, self.expect[expect_as or name], self.sizes)
        except shapes.ShapeProblem as err:
            self.problem(quantity, t, str(err))
            self.put(quantity + RAW, t, _raw(value))
            return None

    def put(self, quantity: str, t: int | None, value: Any) -> None:
        """Keep a copy: the student's code may hand back its own buffer and change it in a later call."""
        if value is not None:
            key = f"{self.unit}|{self.job}|{quantity}" + ("" if t is None else f"|{t}")
            self.arrays[key] = np.array(value, copy=True)


RAW = "~raw"     # suffix of a quantity whose output had the wrong shape: its values as given, for the hints


def _raw(value: Any) -> np.ndarray | None:
    """A wrong-shaped output as a float64 array, when it is numbers at all."""
    try:
        arr = np.asarray(_plain(value))
    except Exception:  # noqa: BLE001
        return None
    return arr.astype(np.float64) if arr.dtype.kind in "fiu" and arr.size else None


def _unpack(out: Any, n: int, fn: str, names: tuple[str, ...], rec: Recorder, t: int | None) -> tuple:
    """The call's tuple of n outputs; a wrong count is a problem that stops the unit."""
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = f"{len(out)} values" if isinstance(out, (tuple, list)) else f"a {type(out).__name__}"
        rec.problem(fn, t, f"{fn} returned {got}; expected {n}: ({', '.join(names)})")
        raise Stop
    return tuple(out)


def run_sequence(mod: Any, job: dict, rec: Recorder) -> None:
    """(b) or (c): rnn_forward on the whole sequence, then rnn_backward with the upstream gradient of every h_t."""
    x, h0, dh_out, W = job["x"], job["h0"], job["dh_out"], job["W"]
    T = x.shape[0]
    cs = rec.layout == "cs231n"
    if cs:
        args = (x.transpose(1, 0, 2).copy(), h0.copy(), W["W_ih"].T.copy(), W["W_hh"].T.copy(), W["b_ih"] + W["b_hh"])
    else:
        args = (x.copy(), h0.copy(), *(W[k].copy() for k in ("W_ih", "W_hh", "b_ih", "b_hh")))
    out = call(mod.rnn_forward, "rnn_forward", *args)
    h, cache = _unpack(out, 2, "rnn_forward", ("h", "cache"), rec, None)
    h = rec.convert(h, "h", "h", None)
    if h is None:
        raise Stop
    if cs:
        h = h.transpose(1, 0, 2)
    for t in range(T):
        rec.put("h", t, np.ascontiguousarray(h[t]))
    dh = dh_out.transpose(1, 0, 2).copy() if cs else dh_out.copy()
    names = shapes.RETURNS[(rec.layout, "backward")]
    vals = _unpack(call(mod.rnn_backward, "rnn_backward", dh, cache), len(names), "rnn_backward", names, rec, None)
    dx = rec.convert(vals[0], "dx", "dx", None)
    if dx is not None:
        dx = dx.transpose(1, 0, 2) if cs else dx
        rec.put("dx", None, np.ascontiguousarray(dx))
        for t in range(T):
            rec.put("dx", t, np.ascontiguousarray(dx[t]))
    rec.put("dh0", None, rec.convert(vals[1], "dh0", "dh0", None))
    if cs:
        dWx, dWh, db = (rec.convert(v, n, shapes.CS231N_AS[n], None) for n, v in zip(names[2:], vals[2:]))
        rec.put("dW_ih", None, None if dWx is None else np.ascontiguousarray(dWx.T))
        rec.put("dW_hh", None, None if dWh is None else np.ascontiguousarray(dWh.T))
        rec.put("db_ih", None, db)
        rec.put("db_hh", None, db)
    else:
        for n, v in zip(names[2:], vals[2:]):
            rec.put(n, None, rec.convert(v, n, n, None))


def _plain(value: Any) -> Any:
    """A torch tensor as NumPy (for its shape); anything else as it is."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") and hasattr(value, "numpy") else value


def _list(cell: Any, name: str, rec: Recorder, t: int | None) -> list | None:
    value = getattr(cell, name, None)
    if not isinstance(value, (list, tuple)):
        rec.problem(name, t, f"the class has no list {name} after backward" + ("" if t is None else f" at t = {t}") +
                    f" (it has {type(value).__name__}); the exercise keeps dx_list and the four *_stack lists")
        return None
    return list(value)


def stack_total(stack: list, bias: bool, H: int) -> Any:
    """A class's stack summed as the worked exercise sums it: np.sum(stack, axis=0) for the weights; for a bias, entries
    of shape (H,) over axis 0 and entries of shape (B, H) (d_tanh itself) over axes (0, 1), the batch sum."""
    if not stack:
        return None
    entries = [_plain(e) for e in stack]
    if bias and all(np.ndim(e) == 2 and np.shape(e)[1] == H for e in entries):
        return np.sum(np.stack(entries), axis=(0, 1))
    return np.sum(np.stack(entries), axis=0) if all(np.shape(e) == np.shape(entries[0]) for e in entries) else \
        sum(entries[1:], entries[0])


def run_class(mod: Any, job: dict, rec: Recorder) -> None:
    """(d): cell(x_t, h_prev) for t = 0..T-1 on its own h, then cell.backward(dh_out[t]) for t = T-1..0, comparing
    after each call: dx_list[0] is dx_t (time order), each stack's sum is the gradient so far, the carry dh_prev[t]."""
    x, h0, dh_out, W = job["x"], job["h0"], job["dh_out"], job["W"]
    T = x.shape[0]
    Cls = shapes.find_class(mod)
    cell = call(Cls, f"{Cls.__name__}(weight_ih, weight_hh, bias_ih, bias_hh)",
                *(W[k].copy() for k in ("W_ih", "W_hh", "b_ih", "b_hh")))
    step = cell if callable(cell) and "__call__" in dir(type(cell)) else cell.forward
    h = h0.copy()
    for t in range(T):
        h = rec.convert(call(step, f"cell(x_t, h_prev) at t = {t}", x[t].copy(), h.copy()), "h_t", "h", t,
                        f" at t = {t}")
        if h is None:
            raise Stop
        rec.put("h", t, h)
    grads = {"dW_ih": "dw_ih_stack", "dW_hh": "dw_hh_stack", "db_ih": "db_ih_stack", "db_hh": "db_hh_stack"}
    carry_attr = None
    for t in range(T - 1, -1, -1):
        call(cell.backward, f"cell.backward(dh_t) at t = {t}", dh_out[t].copy())
        at = f" at t = {t}"
        dxl = _list(cell, "dx_list", rec, t)
        if dxl is None:
            raise Stop
        if len(dxl) != T - t:
            rec.problem("dx", t, f"after backward{at}, dx_list has {len(dxl)} entries; expected {T - t} "
                                 f"(one per backward call so far)")
        elif dxl:
            rec.put("dx", t, rec.convert(dxl[0], "dx_list[0]", "dx", t, at + " (dx_list is in time order, so its "
                                                                                "first entry is the newest)", "dx_t"))
        for g, name in grads.items():
            stack = _list(cell, name, rec, t)
            if stack is None:
                raise Stop
            try:
                total = stack_total(stack, bias=g.startswith("db"), H=rec.sizes["H"])
            except Exception as err:  # noqa: BLE001
                rec.problem(g + "_acc", t, f"the entries of {name} cannot be summed: {err}")
                continue
            rec.put(g + "_acc", t, rec.convert(total, f"sum({name})", g + "_acc", t, at, g))
        if carry_attr is None:
            carry_attr = next((a for a in shapes.CARRY_ATTRS if np.shape(_plain(getattr(cell, a, None))) ==
                               (rec.sizes["B"], rec.sizes["H"])), "")
        if carry_attr:
            rec.put("dh_prev", t, rec.convert(getattr(cell, carry_attr), f"cell.{carry_attr}", "dh_prev", t, at,
                                              "dh_prev"))
    dxl = _list(cell, "dx_list", rec, None)
    if dxl is not None and len(dxl) == T:
        conv = [rec.convert(v, f"dx_list[{i}]", "dx", None, "", "dx_t") for i, v in enumerate(dxl)]
        if all(c is not None for c in conv):
            rec.put("dx", None, np.stack(conv))
    for g in grads:
        key = f"{rec.unit}|{rec.job}|{g}_acc|0"
        if key in rec.arrays:
            rec.put(g, None, rec.arrays[key])
    if carry_attr:
        rec.put("dh0", None, rec.arrays.get(f"{rec.unit}|{rec.job}|dh_prev|0"))
    else:
        rec.notes.append(f"{Cls.__name__} keeps no (B, H) array in an attribute named {', '.join(shapes.CARRY_ATTRS)} "
                         f"after backward, so its carry and dh0 are not checked")


def _coursera_parameters(W: dict) -> dict:
    """Coursera's parameters dict: Wax = W_ih (n_a, n_x), Waa = W_hh, ba = b_ih + b_hh as (n_a, 1), and a prediction
    layer Wya (n_y, n_a), by (n_y, 1) that plays no part in the gradients (fixed numbers, drawn once)."""
    H = W["W_hh"].shape[0]
    rng = np.random.default_rng(0)
    return {"Wax": W["W_ih"].copy(), "Waa": W["W_hh"].copy(), "ba": (W["b_ih"] + W["b_hh"])[:, None].copy(),
            "Wya": rng.standard_normal((shapes.COURSERA_NY, H)), "by": rng.standard_normal((shapes.COURSERA_NY, 1))}


def _from_dict(out: Any, fn: str, names: tuple[str, ...], rec: Recorder, t: int | None) -> tuple:
    """Coursera's gradients dict as a tuple in `names` order; not a dict, or a key missing, stops the unit."""
    if not isinstance(out, dict):
        rec.problem(fn, t, f"{fn} returned a {type(out).__name__}; expected a dict with keys {', '.join(names)}")
        raise Stop
    missing = [n for n in names if n not in out]
    if missing:
        rec.problem(fn, t, f"{fn} returned a dict without {', '.join(missing)}; expected the keys {', '.join(names)}")
        raise Stop
    return tuple(out[n] for n in names)


def _coursera_grads(vals: tuple, names: tuple[str, ...], rec: Recorder, suffix: str, t: int | None,
                    at: str) -> dict:
    """dWax, dWaa, dba as torch's dW_ih, dW_hh, db_ih = db_hh (dba (n_a, 1); a flat (n_a,) is taken too)."""
    dWax, dWaa, dba = vals
    dba = _plain(dba)
    if np.ndim(dba) == 1 and np.shape(dba) == (rec.sizes["H"],):
        dba = np.asarray(dba)[:, None]
    out = {}
    for n, v in zip(names, (dWax, dWaa, dba)):
        arr = rec.convert(v, n, shapes.COURSERA_AS[n] + suffix, t, at)
        out[shapes.COURSERA_AS[n]] = None if arr is None else (arr[:, 0].copy() if n == "dba" else arr)
    out["db_hh"] = out["db_ih"]
    return out


def run_coursera_sequence(mod: Any, job: dict, rec: Recorder) -> None:
    """Coursera's rnn_forward(x, a0, parameters) -> (a, y_pred, caches) and rnn_backward(da, caches), column-major:
    x (n_x, m, T_x), a (n_a, m, T_x)."""
    x, h0, dh_out, W = job["x"], job["h0"], job["dh_out"], job["W"]
    T = x.shape[0]
    out = call(mod.rnn_forward, "rnn_forward", x.transpose(2, 1, 0).copy(), h0.T.copy(), _coursera_parameters(W))
    a, _, caches = _unpack(out, 3, "rnn_forward", shapes.RETURNS[("coursera", "forward")], rec, None)
    a = rec.convert(a, "a", "h", None)
    if a is None:
        raise Stop
    for t in range(T):
        rec.put("h", t, np.ascontiguousarray(a[:, :, t].T))
    names = shapes.RETURNS[("coursera", "backward")]
    vals = _from_dict(call(mod.rnn_backward, "rnn_backward", dh_out.transpose(2, 1, 0).copy(), caches),
                      "rnn_backward", names, rec, None)
    dx = rec.convert(vals[0], "dx", "dx", None)
    if dx is not None:
        dx = np.ascontiguousarray(dx.transpose(2, 1, 0))
        rec.put("dx", None, dx)
        for t in range(T):
            rec.put("dx", t, np.ascontiguousarray(dx[t]))
    da0 = rec.convert(vals[1], "da0", "dh0", None)
    rec.put("dh0", None, None if da0 is None else np.ascontiguousarray(da0.T))
    for k, g in _coursera_grads(vals[2:], names[2:], rec, "", None, "").items():
        rec.put(k, None, None if g is None else np.ascontiguousarray(g))


# one step forward and one step backward per layout, in the torch.nn.RNN layout on our side:
# forward(mod, x_t (B, I), h (B, H), W, rec, t) -> (h_t (B, H) or None, cache);
# backward(mod, dh_t (B, H), cache, rec, t) -> (dx_t (B, I), dh_prev (B, H), {torch gradient name: contribution})

def _torch_step_forward(mod: Any, x_t: Any, h: Any, W: dict, rec: Recorder, t: int) -> tuple:
    cs = rec.layout == "cs231n"
    Wargs = (W["W_ih"].T, W["W_hh"].T, W["b_ih"] + W["b_hh"]) if cs else (W["W_ih"], W["W_hh"], W["b_ih"], W["b_hh"])
    names = ("next_h", "cache") if cs else ("h_t", "cache")
    out = call(mod.rnn_step_forward, f"rnn_step_forward at t = {t}", x_t.copy(), h.copy(), *(w.copy() for w in Wargs))
    h_t, cache = _unpack(out, 2, "rnn_step_forward", names, rec, t)
    return rec.convert(h_t, names[0], "h", t, f" at t = {t}"), cache


def _torch_step_backward(mod: Any, dh_t: Any, cache: Any, rec: Recorder, t: int) -> tuple:
    names = shapes.RETURNS[(rec.layout, "step_backward")]
    out = call(mod.rnn_step_backward, f"rnn_step_backward at t = {t}", dh_t, cache)
    vals = _unpack(out, len(names), "rnn_step_backward", names, rec, t)
    at = f" at t = {t}"
    if rec.layout == "cs231n":
        dx_t = rec.convert(vals[0], "dx", "dx", t, at, "dx_step")
        carry = rec.convert(vals[1], "dprev_h", "dh_prev", t, at)
        dWx, dWh, db = (rec.convert(v, n, shapes.CS231N_AS[n] + "_acc", t, at) for n, v in zip(names[2:], vals[2:]))
        return dx_t, carry, {"dW_ih": None if dWx is None else dWx.T, "dW_hh": None if dWh is None else dWh.T,
                             "db_ih": db, "db_hh": db}
    dx_t = rec.convert(vals[0], "dx_t", "dx", t, at)
    carry = rec.convert(vals[1], "dh_prev", "dh_prev", t, at)
    return dx_t, carry, {n: rec.convert(v, n, n + "_acc", t, at) for n, v in zip(names[2:], vals[2:])}


def _coursera_step_forward(mod: Any, x_t: Any, h: Any, W: dict, rec: Recorder, t: int) -> tuple:
    out = call(mod.rnn_cell_forward, f"rnn_cell_forward at t = {t}", x_t.T.copy(), h.T.copy(),
               _coursera_parameters(W))
    a_next, _, cache = _unpack(out, 3, "rnn_cell_forward", shapes.RETURNS[("coursera", "step_forward")], rec, t)
    a = rec.convert(a_next, "a_next", "h", t, f" at t = {t}")
    return (None if a is None else a.T.copy()), cache


def _coursera_step_backward(mod: Any, dh_t: Any, cache: Any, rec: Recorder, t: int) -> tuple:
    """da_next is the total gradient reaching a_next (upstream + carry), as Coursera's rnn_backward passes it."""
    names = shapes.RETURNS[("coursera", "step_backward")]
    out = call(mod.rnn_cell_backward, f"rnn_cell_backward at t = {t}", dh_t.T.copy(), cache)
    vals = _from_dict(out, "rnn_cell_backward", names, rec, t)
    at = f" at t = {t}"
    dxt = rec.convert(vals[0], "dxt", "dx", t, at)
    da_prev = rec.convert(vals[1], "da_prev", "dh_prev", t, at)
    return (None if dxt is None else dxt.T.copy(), None if da_prev is None else da_prev.T.copy(),
            _coursera_grads(vals[2:], names[2:], rec, "_acc", t, at))


STEP_CALLS = {"torch": (_torch_step_forward, _torch_step_backward),
              "cs231n": (_torch_step_forward, _torch_step_backward),
              "coursera": (_coursera_step_forward, _coursera_step_backward)}


def run_step(mod: Any, job: dict, rec: Recorder) -> None:
    """Step functions of any layout (STEP_CALLS): step forward on its own h, then backward from t = T-1 with
    dh_t = dh_out[t] + the student's carry, keeping the running sums of the weight gradients."""
    x, h0, dh_out, W = job["x"], job["h0"], job["dh_out"], job["W"]
    forward, backward = STEP_CALLS[rec.layout]
    T = x.shape[0]
    h, caches = h0.copy(), []
    for t in range(T):
        h, cache = forward(mod, x[t], h, W, rec, t)
        if h is None:
            raise Stop
        rec.put("h", t, h)
        caches.append(cache)
    carry = None
    acc: dict[str, Any] = {}
    dxs = []
    for t in range(T - 1, -1, -1):
        dh_t = dh_out[t] + (0.0 if carry is None else carry)
        dx_t, carry, grads = backward(mod, dh_t, caches[t], rec, t)
        rec.put("dx", t, dx_t)
        rec.put("dh_prev", t, carry)
        for k, g in grads.items():
            if g is None or (k in acc and acc[k] is None):
                acc[k] = None
            else:
                acc[k] = g.copy() if k not in acc else acc[k] + g
            rec.put(k + "_acc", t, acc[k])
        dxs.append(dx_t)
        if carry is None:
            raise Stop
    if all(d is not None for d in dxs):
        rec.put("dx", None, np.stack(dxs[::-1]))
    rec.put("dh0", None, carry)
    for k, g in acc.items():
        rec.put(k, None, g)


RUNNERS = {"torch-step": run_step, "cs231n-step": run_step, "coursera-step": run_step,
           "torch-sequence": run_sequence, "cs231n-sequence": run_sequence, "coursera-sequence": run_coursera_sequence,
           "class": run_class}
# ----------------------------------------------------------------------------------------------------------------------
# the LSTM's and the GRU's shapes (gated.py), in the torch.nn.LSTM / torch.nn.GRU layout on our side

def _grad_row(name: str, layout: str) -> str:
    """The torch gradient a layout's gradient output is compared as (for problems about its shape)."""
    if layout == "torch":
        return name
    if layout == "cs231n":
        return {"dWx": "dW_ih", "dWh": "dW_hh"}.get(name, "db_ih")
    return "dW_ih" if name.startswith("dW") else "db_ih"


def _gated_step_forward(mod: Any, x_t: Any, h: Any, c: Any, W: dict, rec: Recorder, t: int) -> tuple:
    """One step forward in the unit's layout: (h_t (B, H) or None, c_t (B, H) or None (always None for the GRU),
    cache)."""
    cell, lay, at = shapes.cell_of_unit(rec.unit), rec.layout, f" at t = {t}"
    if lay == "coursera":
        out = call(mod.lstm_cell_forward, f"lstm_cell_forward{at}", x_t.T.copy(), h.T.copy(), c.T.copy(),
                   *gated.layout_args(cell, lay, W))
        a, cn, _, cache = _unpack(out, 4, "lstm_cell_forward", ("a_next", "c_next", "yt_pred", "cache"), rec, t)
        a, cn = rec.convert(a, "a_next", "h", t, at), rec.convert(cn, "c_next", "c", t, at)
        return (None if a is None else a.T.copy()), (None if cn is None else cn.T.copy()), cache
    fn = f"{cell}_step_forward"
    names = {"torch": ("h_t", "c_t"), "cs231n": ("next_h", "next_c")}[lay]
    state = (h.copy(), c.copy()) if cell == "lstm" else (h.copy(),)
    out = call(getattr(mod, fn), f"{fn}{at}", x_t.copy(), *state, *gated.layout_args(cell, lay, W))
    if cell == "lstm":
        h_t, c_t, cache = _unpack(out, 3, fn, (*names, "cache"), rec, t)
        return rec.convert(h_t, names[0], "h", t, at), rec.convert(c_t, names[1], "c", t, at), cache
    h_t, cache = _unpack(out, 2, fn, (names[0], "cache"), rec, t)
    return rec.convert(h_t, names[0], "h", t, at), None, cache


def _gated_step_backward(mod: Any, dh_t: Any, dc_t: Any, cache: Any, rec: Recorder, t: int) -> tuple:
    """One step backward: (dx_t (B, I), dh_prev (B, H), dc_prev (B, H) or None, {torch gradient: this step's
    contribution}). dh_t is the total gradient reaching h_t, dc_t the cell carry from t+1."""
    cell, lay, at = shapes.cell_of_unit(rec.unit), rec.layout, f" at t = {t}"
    names = gated.RETURNS[(cell, lay, "step_backward")]
    if lay == "coursera":
        out = call(mod.lstm_cell_backward, f"lstm_cell_backward{at}", dh_t.T.copy(), dc_t.T.copy(), cache)
        vals = _from_dict(out, "lstm_cell_backward", names, rec, t)
        dx, dh, dc = (rec.convert(v, n, q, t, at) for v, n, q in zip(vals, names, ("dx", "dh_prev", "dc_prev")))
        dx, dh, dc = (None if v is None else v.T.copy() for v in (dx, dh, dc))
    else:
        fn = f"{cell}_step_backward"
        args = (dh_t.copy(), dc_t.copy()) if cell == "lstm" else (dh_t.copy(),)
        vals = _unpack(call(getattr(mod, fn), f"{fn}{at}", *args, cache), len(names), fn, names, rec, t)
        dx = rec.convert(vals[0], names[0], "dx", t, at, "dx_step" if lay == "cs231n" else None)
        dh = rec.convert(vals[1], names[1], "dh_prev", t, at)
        dc = rec.convert(vals[2], names[2], "dc_prev", t, at) if cell == "lstm" else None
    k = 3 if cell == "lstm" else 2
    grads = [rec.convert(v, n, _grad_row(n, lay) + "_acc", t, at) for n, v in zip(names[k:], vals[k:])]
    return dx, dh, dc, gated.to_torch(cell, lay, names[k:], grads, rec.sizes["H"])


def run_gated_step(mod: Any, job: dict, rec: Recorder) -> None:
    """LSTM or GRU step functions of any layout: step forward on its own h (and c), then backward from t = T-1 with
    dh_t = dh_out[t] + the student's carry and (LSTM) dc_t = the student's cell carry; each step's weight
    contributions (`*_step`) and their running sums are kept."""
    x, h0, c0, dh_out, W = job["x"], job["h0"], job["c0"], job["dh_out"], job["W"]
    lstm = shapes.cell_of_unit(rec.unit) == "lstm"
    T, B, _ = x.shape
    H = h0.shape[1]
    h, c, caches = h0.copy(), (c0.copy() if lstm else None), []
    for t in range(T):
        h, c, cache = _gated_step_forward(mod, x[t], h, c, W, rec, t)
        if h is None or (lstm and c is None):
            raise Stop
        rec.put("h", t, h)
        rec.put("c", t, c)
        caches.append(cache)
    dh_carry, dc_carry = np.zeros((B, H)), np.zeros((B, H))
    acc: dict[str, Any] = {}
    dxs = []
    for t in range(T - 1, -1, -1):
        dx_t, dh_carry, dc_carry, grads = _gated_step_backward(mod, dh_out[t] + dh_carry, dc_carry, caches[t], rec, t)
        rec.put("dx", t, dx_t)
        rec.put("dh_prev", t, dh_carry)
        rec.put("dc_prev", t, dc_carry)
        for k, g in grads.items():
            rec.put(k + "_step", t, g)
            acc[k] = None if g is None or (k in acc and acc[k] is None) else (g.copy() if k not in acc else acc[k] + g)
            rec.put(k + "_acc", t, acc[k])
        dxs.append(dx_t)
        if dh_carry is None or (lstm and dc_carry is None):
            raise Stop
        if not lstm:
            dc_carry = np.zeros((B, H))
    if all(d is not None for d in dxs):
        rec.put("dx", None, np.stack(dxs[::-1]))
    rec.put("dh0", None, dh_carry)
    if lstm:
        rec.put("dc0", None, dc_carry)
    for k, g in acc.items():
        rec.put(k, None, g)


# each layout's whole-sequence arrays against time-major (T, B, ·): the axes that make them time-major
TIME_MAJOR = {"torch": (0, 1, 2), "cs231n": (1, 0, 2), "coursera": (2, 1, 0)}


def run_gated_sequence(mod: Any, job: dict, rec: Recorder) -> None:
    """LSTM or GRU whole-sequence functions: forward on the whole sequence (CS231n and Coursera: from c0 = 0, as those
    courses do), then backward with the upstream gradient of every h_t."""
    cell, lay = shapes.cell_of_unit(rec.unit), rec.layout
    x, h0, c0, dh_out, W = job["x"], job["h0"], job["c0"], job["dh_out"], job["W"]
    T = x.shape[0]
    axes = TIME_MAJOR[lay]
    fwd, bwd = f"{cell}_forward", f"{cell}_backward"
    h0_in = h0.T.copy() if lay == "coursera" else h0.copy()
    state = (h0_in, c0.copy()) if (lay == "torch" and cell == "lstm") else (h0_in,)
    out = call(getattr(mod, fwd), fwd, x.transpose(axes).copy(), *state, *gated.layout_args(cell, lay, W))
    c = None
    if lay == "coursera":
        h, _, c, cache = _unpack(out, 4, fwd, ("a", "y", "c", "caches"), rec, None)
        h = rec.convert(h, "a", "h", None)
        c = rec.convert(c, "c", "c", None)
    else:
        if cell == "lstm" and lay == "torch" and isinstance(out, (tuple, list)) and len(out) == 3:
            h, c, cache = out              # (h, c, cache); a middle that is not an array like h (e.g. (h_n, c_n)) is
            c = _plain(c)                  # passed over
            c = rec.convert(c, "c", "c", None) if isinstance(c, np.ndarray) and c.shape == np.shape(_plain(h)) else None
        else:
            h, cache = _unpack(out, 2, fwd, ("h", "cache"), rec, None)
        h = rec.convert(h, "h", "h", None)
    if h is None:
        raise Stop
    h = h.transpose(axes)
    c = None if c is None else c.transpose(axes)
    for t in range(T):
        rec.put("h", t, np.ascontiguousarray(h[t]))
        if c is not None:
            rec.put("c", t, np.ascontiguousarray(c[t]))
    names = gated.RETURNS[(cell, lay, "backward")]
    out = call(getattr(mod, bwd), bwd, dh_out.transpose(axes).copy(), cache)
    vals = _from_dict(out, bwd, names, rec, None) if lay == "coursera" else _unpack(out, len(names), bwd, names, rec,
                                                                                    None)
    dx = rec.convert(vals[0], "dx", "dx", None)
    if dx is not None:
        dx = np.ascontiguousarray(dx.transpose(axes))
        rec.put("dx", None, dx)
        for t in range(T):
            rec.put("dx", t, np.ascontiguousarray(dx[t]))
    dh0 = rec.convert(vals[1], names[1], "dh0", None)
    rec.put("dh0", None, None if dh0 is None else (dh0.T.copy() if lay == "coursera" else dh0))
    k = 2
    if lay == "torch" and cell == "lstm":
        rec.put("dc0", None, rec.convert(vals[2], "dc0", "dc0", None))
        k = 3
    grads = [rec.convert(v, n, _grad_row(n, lay), None) for n, v in zip(names[k:], vals[k:])]
    for key, g in gated.to_torch(cell, lay, names[k:], grads, rec.sizes["H"]).items():
        rec.put(key, None, g)


GATED_RUNNERS = {"step": run_gated_step, "sequence": run_gated_sequence}


REIMPORT_S = 0.1   # seconds: a file that imports again slower than this is not imported afresh for each probe
AGAIN = "again"    # suffix of a job's id for the second call on the same problem (state kept between calls?)


# ----------------------------------------------------------------------------------------------------------------------
# main


def import_student(path: str) -> Any:
    """Import the student's file as the module `student` (its folder on sys.path, for its own imports). Each call
    runs the file afresh, so module-level state starts new."""
    folder = os.path.dirname(os.path.abspath(path))
    if sys.path[0] != folder:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("student", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["student"] = mod
    spec.loader.exec_module(mod)
    return mod


def run(path: str, spec: dict, arrays: Any) -> tuple[dict, dict]:
    """Recognise and run every unit on every job; (result JSON, output arrays). Every job starts from a fresh import
    of the file (a probe only while importing it again is quick, under REIMPORT_S: a file that works at import time is
    not run a dozen times over); each config's own problem is then run a second time in the same module (for the
    class: with a second, fresh instance), job id + AGAIN, so that state kept between calls shows."""
    result: dict = {"units": [], "notes": [], "problems": [], "error": None}
    out: dict = {}
    t0 = time.perf_counter()
    try:
        mod = call(import_student, "importing your file", path)
    except StudentRaised as err:
        result["error"] = _error(err, path)
        return result, out
    import_s = time.perf_counter() - t0
    cell = spec.get("cell", "rnn")
    rec_units = gated.recognise(mod, cell)
    result["units"], result["notes"] = list(rec_units.units), list(rec_units.notes)
    sizes_ = spec["sizes"]
    fresh = True
    for unit in rec_units.units:
        layout = shapes.layout_of(unit)
        for job in spec["jobs"]:
            if job["probe"] and not unit.endswith("sequence"):
                continue
            j = job["id"]
            data = {k: arrays[f"{j}|{k}"] for k in ("x", "h0", "dh_out")}
            data["c0"] = arrays.get(f"{j}|c0")
            data["W"] = {k: arrays[f"{j}|{k}"] for k in ("W_ih", "W_hh", "b_ih", "b_hh")}
            calls = [(j, "")] if job["probe"] else [(j, ""), (j + AGAIN, " (second call on the same problem)")]
            for jid, which in calls:
                rec = Recorder(unit, jid, shapes.sizes_of(*sizes_[j]), layout,
                               None if cell == "rnn" else gated.expectations(cell, layout))
                try:
                    if not fresh and not which and (not job["probe"] or import_s < REIMPORT_S):
                        t0 = time.perf_counter()
                        mod = call(import_student, "importing your file", path)
                        import_s = time.perf_counter() - t0
                    fresh = False
                    (RUNNERS[unit] if cell == "rnn" else GATED_RUNNERS[unit.split("-")[-1]])(mod, data, rec)
                except Stop:
                    pass
                except StudentRaised as err:
                    err.where += which
                    result["error"] = _error(err, path, unit, jid)
                    return result, out
                out.update(rec.arrays)
                result["problems"] += rec.problems
                result["notes"] += [n for n in rec.notes if n not in result["notes"]]
    return result, out


def _error(err: StudentRaised, path: str, unit: str | None = None, job: str | None = None) -> dict:
    exc = err.exc
    kind = "memory" if isinstance(exc, MemoryError) else "exit" if isinstance(exc, SystemExit) else "exception"
    return {"kind": kind, "where": err.where, "unit": unit, "job": job, "type": type(exc).__name__,
                "traceback": trimmed_traceback(exc, path)}


def main(argv: list[str]) -> int:
    folder, memory_mb = Path(argv[0]), int(argv[1])
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    spec = json.loads((folder / "spec.json").read_text())
    with np.load(folder / "in.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    sys.stdout = sys.stderr                       # the student's prints go to stderr, never into our files
    result, out = run(spec["path"], spec, arrays)
    np.savez(folder / "out.npz", **out)
    (folder / "result.json").write_text(json.dumps(result))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
