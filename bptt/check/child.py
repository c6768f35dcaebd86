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
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import shapes

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

    def __init__(self, unit: str, job: str, sizes: dict[str, int], layout: str):
        self.unit, self.job, self.sizes, self.layout = unit, job, sizes, layout
        self.arrays: dict[str, Any] = {}
        self.problems: list[dict] = []
        self.notes: list[str] = []

    def problem(self, quantity: str, t: int | None, message: str) -> None:
        self.problems.append({"unit": self.unit, "job": self.job, "quantity": quantity, "t": t, "message": message})

    def convert(self, value: Any, name: str, quantity: str, t: int | None, at: str = "",
                expect_as: str | None = None) -> Any:
        """The output as a checked float64 array, or None after recording the problem."""
        try:
            return shapes.to_array(value, name + at, shapes.EXPECT[self.layout][expect_as or name], self.sizes)
        except shapes.ShapeProblem as err:
            self.problem(quantity, t, str(err))
            return None

    def put(self, quantity: str, t: int | None, value: Any) -> None:
        if value is not None:
            key = f"{self.unit}|{self.job}|{quantity}" + ("" if t is None else f"|{t}")
            self.arrays[key] = value


def _unpack(out: Any, n: int, fn: str, names: tuple[str, ...], rec: Recorder, t: int | None) -> tuple:
    """The call's tuple of n outputs; a wrong count is a problem that stops the unit."""
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = f"{len(out)} values" if isinstance(out, (tuple, list)) else f"a {type(out).__name__}"
        rec.problem(fn, t, f"{fn} returned {got}; expected {n}: ({', '.join(names)})")
        raise Stop
    return tuple(out)


def run_torch_step(mod: Any, job: dict, rec: Recorder) -> None:
    """(a): step forward on its own h, then backward from t = T-1 with dh_t = dh_out[t] + the student's carry."""
    x, h0, dh_out, W = job["x"], job["h0"], job["dh_out"], job["W"]
    T = x.shape[0]
    cs = rec.layout == "cs231n"
    Wargs = (W["W_ih"].T.copy(), W["W_hh"].T.copy(), W["b_ih"] + W["b_hh"]) if cs else \
        (W["W_ih"], W["W_hh"], W["b_ih"], W["b_hh"])
    fwd_names = ("next_h", "cache") if cs else ("h_t", "cache")
    h, caches = h0.copy(), []
    for t in range(T):
        out = call(mod.rnn_step_forward, f"rnn_step_forward at t = {t}", x[t].copy(), h.copy(),
                   *(w.copy() for w in Wargs))
        h_t, cache = _unpack(out, 2, "rnn_step_forward", fwd_names, rec, t)
        h = rec.convert(h_t, fwd_names[0], "h", t, f" at t = {t}")
        if h is None:
            raise Stop
        rec.put("h", t, h)
        caches.append(cache)
    names = shapes.RETURNS[(rec.layout, "step_backward")]
    carry = None
    acc: dict[str, Any] = {}
    dxs = []
    for t in range(T - 1, -1, -1):
        dh_t = dh_out[t] + (0.0 if carry is None else carry)
        out = call(mod.rnn_step_backward, f"rnn_step_backward at t = {t}", dh_t, caches[t])
        vals = _unpack(out, len(names), "rnn_step_backward", names, rec, t)
        at = f" at t = {t}"
        if cs:
            dx_t = rec.convert(vals[0], "dx", "dx", t, at, "dx_step")
            carry = rec.convert(vals[1], "dprev_h", "dh_prev", t, at)
            dWx, dWh, db = (rec.convert(v, n, shapes.CS231N_AS[n] + "_acc", t, at) for n, v in zip(names[2:], vals[2:]))
            grads = {"dW_ih": None if dWx is None else dWx.T, "dW_hh": None if dWh is None else dWh.T,
                     "db_ih": db, "db_hh": db}
        else:
            dx_t = rec.convert(vals[0], "dx_t", "dx", t, at)
            carry = rec.convert(vals[1], "dh_prev", "dh_prev", t, at)
            grads = {n: rec.convert(v, n, n + "_acc", t, at) for n, v in zip(names[2:], vals[2:])}
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
                total = sum(stack[1:], stack[0]) if stack else None
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


RUNNERS = {"torch-step": run_torch_step, "cs231n-step": run_torch_step, "torch-sequence": run_sequence,
           "cs231n-sequence": run_sequence, "class": run_class}


# ----------------------------------------------------------------------------------------------------------------------
# main


def import_student(path: str) -> Any:
    """Import the student's file as the module `student` (its folder on sys.path, for its own imports)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location("student", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["student"] = mod
    spec.loader.exec_module(mod)
    return mod


def run(path: str, spec: dict, arrays: Any) -> tuple[dict, dict]:
    """Recognise and run every unit on every job; (result JSON, output arrays)."""
    result: dict = {"units": [], "notes": [], "problems": [], "error": None}
    out: dict = {}
    try:
        mod = call(import_student, "importing your file", path)
    except StudentRaised as err:
        result["error"] = _error(err, path)
        return result, out
    rec_units = shapes.recognise(mod)
    result["units"], result["notes"] = list(rec_units.units), list(rec_units.notes)
    sizes_ = spec["sizes"]
    for unit in rec_units.units:
        layout = "cs231n" if unit.startswith("cs231n") else "torch"
        for job in spec["jobs"]:
            if job["probe"] and not unit.endswith("sequence"):
                continue
            j = job["id"]
            data = {k: arrays[f"{j}|{k}"] for k in ("x", "h0", "dh_out")}
            data["W"] = {k: arrays[f"{j}|{k}"] for k in ("W_ih", "W_hh", "b_ih", "b_hh")}
            rec = Recorder(unit, j, shapes.sizes_of(*sizes_[j]), layout)
            try:
                RUNNERS[unit](mod, data, rec)
            except Stop:
                pass
            except StudentRaised as err:
                result["error"] = _error(err, path, unit, j)
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
