"""The reproduction script's body: draw the problem, run BPTT by hand in NumPy and torch.nn.RNN's autograd, compare.

export.repro_script(config) writes a standalone script out of real code: a header of constants (CONFIG, REL_TOL,
FLOOR_FACTOR, WHOLE), the source of bugs.Step (and of the config's bug, which overrides one of its hooks), then the
source of every function in BODY, in order (the engine's plain form, then this module's functions), then
`sys.exit(main(CONFIG, STEP))`. So every name a function here uses is one the script defines: numpy as np, torch,
REL_TOL, FLOOR_FACTOR, WHOLE, Step, and the functions of BODY. tests/unit/test_repro.py runs the script for every bug.
"""
from __future__ import annotations

import numpy as np
import torch

from .bugs import Step
from .compare import FLOOR_FACTOR, REL_TOL
from .engine import bptt, carry_cut, rnn_forward

WHOLE = ("h", "dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")   # what the script compares, in this order


def draw(config: dict) -> dict:
    """x, h0, dh_out and the four weights, drawn in the worked example's order (numpy's seed, torch's seed,
    torch.nn.RNN's initial weights, then x, h0, dh_out from numpy); W_hh scaled by hh_scale."""
    T, B, I, H = config["seq_len"], config["batch_size"], config["input_size"], config["hidden_size"]
    np.random.seed(config["seed"])
    torch.manual_seed(config["seed"])
    rnn = torch.nn.RNN(I, H, nonlinearity=config["nonlinearity"]).double()
    W_ih, W_hh, b_ih, b_hh = (w.detach().numpy().copy() for w in
                              (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0))
    x = np.random.random((T, B, I))                  # (T, B, I)
    h0 = np.random.random((1, B, H))[0]              # (B, H)
    dh_out = np.random.random((T, B, H))             # (T, B, H) dL/dh_t arriving from each output
    if config["upstream"] == "last":
        dh_out[:-1] = 0.0                            # only the last output has a loss
    return {"x": x, "h0": h0, "dh_out": dh_out, "W_ih": W_ih, "W_hh": W_hh * config["hh_scale"], "b_ih": b_ih,
            "b_hh": b_hh}


def torch_reference(p: dict, config: dict) -> dict:
    """torch.nn.RNN (float64) with these weights on (x, h0), backward with dh_out; h = h.detach() every `truncate`
    steps when truncate > 0. The outputs h and the gradients, as numpy arrays keyed like WHOLE."""
    T = config["seq_len"]
    rnn = torch.nn.RNN(config["input_size"], config["hidden_size"], nonlinearity=config["nonlinearity"]).double()
    with torch.no_grad():
        for w, name in ((rnn.weight_ih_l0, "W_ih"), (rnn.weight_hh_l0, "W_hh"), (rnn.bias_ih_l0, "b_ih"),
                        (rnn.bias_hh_l0, "b_hh")):
            w.copy_(torch.from_numpy(p[name]))
    x = torch.tensor(p["x"], requires_grad=True)               # (T, B, I)
    h0 = torch.tensor(p["h0"][None], requires_grad=True)       # (1, B, H)
    K = config["truncate"] if config["truncate"] > 0 else T
    outs, h = [], h0
    for s in range(0, T, K):
        out, h = rnn(x[s:s + K], h if s == 0 else h.detach())  # truncated BPTT: detach between windows
        outs.append(out)
    out = torch.cat(outs)                                      # (T, B, H)
    out.backward(torch.from_numpy(p["dh_out"]))
    grad = {"dW_ih": rnn.weight_ih_l0.grad, "dW_hh": rnn.weight_hh_l0.grad, "db_ih": rnn.bias_ih_l0.grad,
            "db_hh": rnn.bias_hh_l0.grad}
    return {"h": out.detach().numpy(), "dx": x.grad.numpy(), "dh0": h0.grad[0].numpy(),
            **{k: v.numpy() for k, v in grad.items()}}


def numpy_bptt(p: dict, config: dict, step: type[Step], h: np.ndarray | None = None) -> dict:
    """The NumPy side: rnn_forward, then bptt (with the step's hooks), keyed like WHOLE. h, if given, replaces the
    forward pass's h_t in the backward (the rounding floor's replay)."""
    with np.errstate(all="ignore"):
        a, h_own = rnn_forward(p["x"], p["h0"], p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"], config["nonlinearity"])
        h = h_own if h is None else h
        g = bptt(p["x"], p["h0"], p["dh_out"], p["W_ih"], p["W_hh"], a, h, config["nonlinearity"],
                 config["truncate"], step)
    return {"h": h_own, "dx": g["dx"], "dh0": g["dh_prev"][0], "dW_ih": g["dW_ih_acc"][0],
            "dW_hh": g["dW_hh_acc"][0], "db_ih": g["db_ih_acc"][0], "db_hh": g["db_hh_acc"][0]}


def agreement(mine: np.ndarray, ref: np.ndarray, floor: float) -> tuple[float, float, bool]:
    """(max |mine - ref|, that / max |ref|, passed): passed when max |mine - ref| <= REL_TOL * max |ref| + floor;
    inf or nan pass only where both sides hold the same."""
    finite = np.isfinite(mine) & np.isfinite(ref)
    if not np.array_equal(mine[~finite], ref[~finite], equal_nan=True):
        return float("inf"), float("inf"), False
    diff = float(np.abs(mine[finite] - ref[finite]).max(initial=0.0))
    scale = float(np.abs(ref[finite]).max(initial=0.0))
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
    return diff, rel, diff <= REL_TOL * scale + floor


def side_by_side(name: str, mine: np.ndarray, ref: np.ndarray) -> str:
    """mine and ref to 6 decimals in two columns, NumPy | PyTorch, line by line (same shape, so the same lines)."""
    def fmt(v: np.ndarray) -> list[str]:
        return np.array2string(np.asarray(v), precision=6, suppress_small=True, floatmode="fixed",
                               max_line_width=10**6).splitlines()
    left, right = fmt(mine), fmt(ref)
    head = f"{name} (NumPy)"
    width = max(len(line) for line in [head, *left])
    lines = [f"{head:<{width}} | {name} (PyTorch)"]
    lines += [f"{a:<{width}} | {b}".rstrip() for a, b in zip(left, right)]
    return "\n".join(lines)


def main(config: dict, step: type[Step] = Step, show_at_most: int = 60) -> int:
    """Draw, run both sides, print them side by side (arrays of at most show_at_most numbers) and one row per
    result; the last line starts with PASS or FAIL. Returns the exit code: 0 when NumPy agrees with PyTorch, else 1."""
    print("BPTT by hand in NumPy against torch.nn.RNN autograd, float64: "
          + ", ".join(f"{k}={v}" for k, v in config.items()))
    if step is not Step:
        print(f"This copy makes the mistake {step.name!r} on purpose: {step.note}")
    p = draw(config)
    ref = torch_reference(p, config)
    mine = numpy_bptt(p, config, step)
    # The floor: NumPy's and PyTorch's tanh may differ in the last bit of h_t, which saturated steps (f' ~ 1e-8)
    # magnify. The same backward run on PyTorch's h_t shows how much that moves each result; FLOOR_FACTOR times
    # that is allowed on top of the tolerance. A mistake in the backward is in both runs, so the floor never hides it.
    replay = numpy_bptt(p, config, step, h=ref["h"]) if config["nonlinearity"] == "tanh" else mine
    failed = []
    worst = 0.0
    rows = [f"{'result':<8}{'max abs err':>13}{'max rel err':>13}{'floor':>11}  verdict"]
    for q in WHOLE:
        if mine[q].size <= show_at_most:
            print(side_by_side(q, mine[q], ref[q]) + "\n")
        with np.errstate(invalid="ignore"):
            moved = np.abs(mine[q] - replay[q])
        floor = 0.0 if q == "h" else FLOOR_FACTOR * float(moved[np.isfinite(moved)].max(initial=0.0))
        diff, rel, ok = agreement(mine[q], ref[q], floor)
        worst = max(worst, rel)
        if not ok:
            failed.append(q)
        rows.append(f"{q:<8}{diff:>13.2e}{rel:>13.2e}{floor:>11.1e}  {'ok' if ok else 'DIFFERS'}")
    print("\n".join(rows))
    if failed:
        print(f"FAIL: {', '.join(failed)} differ from torch.nn.RNN (worst relative error {worst:.2e}, "
              f"tolerance {REL_TOL:g})")
        return 1
    print(f"PASS: NumPy agrees with torch.nn.RNN on {', '.join(WHOLE)} (worst relative error {worst:.2e}, "
          f"tolerance {REL_TOL:g})")
    return 0


# the script's functions, in the order the script defines them
BODY = (carry_cut, rnn_forward, bptt, draw, torch_reference, numpy_bptt, agreement, side_by_side, main)
