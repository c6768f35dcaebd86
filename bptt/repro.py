"""The reproduction script's body: draw the problem, run BPTT by hand in NumPy and the cell's torch module's
autograd (torch.nn.RNN, LSTM or GRU), compare.

export.repro_script(config) writes a standalone script out of real code: a header of constants (CONFIG, REL_TOL,
FLOOR_FACTOR, WHOLE), the source of the steps (cells.base.Step, the cell's correct step and the config's bug, which
overrides one of its hooks), then the source of every function in body(cell), in order (the cell's plain form, then
this module's functions), then `sys.exit(main(CONFIG, STEP))`. So every name a function here uses is one the script
defines: numpy as np, torch, SimpleNamespace, REL_TOL, FLOOR_FACTOR, WHOLE, the steps, and the functions of the body.
tests/unit/test_repro.py runs the script for every cell and every bug.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from .cells import gru, lstm, rnn
from .cells.base import Step, carry_cut
from .cells.rnn import bptt, rnn_forward
from .compare import FLOOR_FACTOR, REL_TOL

WHOLE = ("h", "dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")   # what the script compares, in this order (+ dc0)


def whole(cell: str) -> tuple[str, ...]:
    """The results a cell's script compares: the LSTM's dc0 too."""
    return (*WHOLE[:3], "dc0", *WHOLE[3:]) if cell == "lstm" else WHOLE


def torch_module(config: dict):
    """The config's cell as a float64 torch module: torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU."""
    I, H = config["input_size"], config["hidden_size"]
    if config["cell"] == "lstm":
        return torch.nn.LSTM(I, H).double()
    if config["cell"] == "gru":
        return torch.nn.GRU(I, H).double()
    return torch.nn.RNN(I, H, nonlinearity=config["nonlinearity"]).double()


def draw(config: dict) -> dict:
    """x, h0 (c0 for the LSTM), dh_out and the four weights, drawn in the worked example's order (numpy's seed,
    torch's seed, the torch module's initial weights, then x, h0, c0, dh_out from numpy); W_hh scaled by hh_scale."""
    T, B, I, H = config["seq_len"], config["batch_size"], config["input_size"], config["hidden_size"]
    np.random.seed(config["seed"])
    torch.manual_seed(config["seed"])
    module = torch_module(config)
    W_ih, W_hh, b_ih, b_hh = (w.detach().numpy().copy() for w in
                              (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0))
    x = np.random.random((T, B, I))                  # (T, B, I)
    h0 = np.random.random((1, B, H))[0]              # (B, H)
    c0 = np.random.random((1, B, H))[0] if config["cell"] == "lstm" else None   # (B, H) the LSTM's cell state
    dh_out = np.random.random((T, B, H))             # (T, B, H) dL/dh_t arriving from each output
    if config["upstream"] == "last":
        dh_out[:-1] = 0.0                            # only the last output has a loss
    return {"x": x, "h0": h0, "c0": c0, "dh_out": dh_out, "W_ih": W_ih, "W_hh": W_hh * config["hh_scale"],
            "b_ih": b_ih, "b_hh": b_hh}


def torch_reference(p: dict, config: dict) -> dict:
    """The torch module (float64) with these weights on (x, h0[, c0]), backward with dh_out; the state is detached
    every `truncate` steps when truncate > 0. The outputs h and the gradients, as numpy arrays keyed like whole()."""
    T = config["seq_len"]
    module = torch_module(config)
    with torch.no_grad():
        for w, name in ((module.weight_ih_l0, "W_ih"), (module.weight_hh_l0, "W_hh"), (module.bias_ih_l0, "b_ih"),
                        (module.bias_hh_l0, "b_hh")):
            w.copy_(torch.from_numpy(p[name]))
    x = torch.tensor(p["x"], requires_grad=True)               # (T, B, I)
    init = [torch.tensor(p[s][None], requires_grad=True) for s in ("h0", "c0") if p[s] is not None]   # (1, B, H)
    K = config["truncate"] if config["truncate"] > 0 else T
    outs, state = [], tuple(init)
    for s in range(0, T, K):
        state = state if s == 0 else tuple(v.detach() for v in state)   # truncated BPTT: detach between windows
        out, state = module(x[s:s + K], state if len(state) == 2 else state[0])
        state = state if isinstance(state, tuple) else (state,)
        outs.append(out)
    out = torch.cat(outs)                                      # (T, B, H)
    out.backward(torch.from_numpy(p["dh_out"]))
    grad = {"dW_ih": module.weight_ih_l0.grad, "dW_hh": module.weight_hh_l0.grad, "db_ih": module.bias_ih_l0.grad,
            "db_hh": module.bias_hh_l0.grad}
    result = {"h": out.detach().numpy(), "dx": x.grad.numpy(), "dh0": init[0].grad[0].numpy(),
              **{k: v.numpy() for k, v in grad.items()}}
    if len(init) == 2:
        result["dc0"] = init[1].grad[0].numpy()
    return result


def numpy_rnn(p: dict, config: dict, step: type[Step], replay: dict | None = None) -> dict:
    """The NumPy side: rnn_forward, then bptt (with the step's hooks), keyed like WHOLE. replay: the reference's
    results, whose h_t then replaces the forward pass's in the backward (the rounding floor's replay)."""
    with np.errstate(all="ignore"):
        a, h_own = rnn_forward(p["x"], p["h0"], p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"], config["nonlinearity"])
        h = h_own if replay is None else replay["h"]
        g = bptt(p["x"], p["h0"], p["dh_out"], p["W_ih"], p["W_hh"], a, h, config["nonlinearity"],
                 config["truncate"], step)
    return {"h": h_own, "dx": g["dx"], "dh0": g["dh_prev"][0], "dW_ih": g["dW_ih_acc"][0],
            "dW_hh": g["dW_hh_acc"][0], "db_ih": g["db_ih_acc"][0], "db_hh": g["db_hh_acc"][0]}


def numpy_gated(p: dict, config: dict, step: type[Step], replay: dict | None = None) -> dict:
    """The NumPy side of the LSTM or the GRU: its forward (run_forward), its BPTT (run_backward, with the step's
    hooks) and the weight gradients as the sum of every step's contribution, keyed like whole(). replay: if given,
    the backward runs on forward values computed by torch's own functions (the rounding floor's replay)."""
    q = SimpleNamespace(**p, config=SimpleNamespace(**config))
    with np.errstate(all="ignore"):
        # run_forward, run_backward and contributions are the cell's (bptt/cells/lstm.py or gru.py): the script
        # defines them before this function
        fwd = run_forward(q)  # noqa: F821
        run = fwd if replay is None else torch_forward(q)
        g = {**run, **run_backward(q, run, step)}  # noqa: F821
        total = {}
        for t in range(config["seq_len"] - 1, -1, -1):               # dW += this step's contribution, t = T-1 ... 0
            c = contributions(q, g, t, step)  # noqa: F821
            total = {w: step.accumulate(total[w] if total else np.zeros_like(c[w]), c[w]) for w in c}
    out = {"h": fwd["h"], "dx": g["dx"], "dh0": g["dh_prev"][0], **total}
    if "dc_prev" in g:
        out["dc0"] = g["dc_prev"][0]
    return out


def torch_forward(q) -> dict:
    """The forward values of the LSTM or the GRU computed by torch's own sigmoid and tanh (float64), as numpy."""
    H = q.W_hh.shape[1]
    W_ih, W_hh, b_ih, b_hh, x = (torch.from_numpy(a) for a in (q.W_ih, q.W_hh, q.b_ih, q.b_hh, q.x))
    h, c = torch.from_numpy(q.h0), (torch.from_numpy(q.c0) if q.c0 is not None else None)
    out = {}
    for t in range(x.shape[0]):
        if c is not None:                                            # the LSTM
            z = x[t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh
            i, f, o = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H:2 * H]), torch.sigmoid(z[:, 3 * H:])
            g = torch.tanh(z[:, 2 * H:3 * H])
            c = f * c + i * g
            h = o * torch.tanh(c)
            values = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}
        else:                                                        # the GRU
            gi, gh = x[t] @ W_ih.T + b_ih, h @ W_hh.T + b_hh
            r, z = torch.sigmoid(gi[:, :H] + gh[:, :H]), torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            h = (1 - z) * n + z * h
            values = {"r": r, "z": z, "n": n, "hn": gh[:, 2 * H:], "h": h}
        for k, v in values.items():
            out.setdefault(k, []).append(v.numpy())
    return {k: np.stack(v) for k, v in out.items()}


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


def main(config: dict, step: type[Step], numpy_bptt, show_at_most: int = 60) -> int:
    """Draw, run both sides, print them side by side (arrays of at most show_at_most numbers) and one row per
    result; the last line starts with PASS or FAIL. Returns the exit code: 0 when NumPy agrees with PyTorch, else 1."""
    module = {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU"}.get(config["cell"], "torch.nn.RNN")
    results = whole(config["cell"])
    print(f"BPTT by hand in NumPy against {module} autograd, float64: "
          + ", ".join(f"{k}={v}" for k, v in config.items()))
    if step.diverges is not None:
        print(f"This copy makes the mistake {step.name!r} on purpose: {step.note}")
    p = draw(config)
    ref = torch_reference(p, config)
    mine = numpy_bptt(p, config, step)
    # The floor: NumPy's and PyTorch's tanh may differ in the last bit of h_t, which saturated steps (f' ~ 1e-8)
    # magnify. The same backward run on PyTorch's h_t shows how much that moves each result; FLOOR_FACTOR times
    # that is allowed on top of the tolerance. A mistake in the backward is in both runs, so the floor never hides it.
    replay = numpy_bptt(p, config, step, ref) if config["nonlinearity"] == "tanh" else mine
    failed = []
    worst = 0.0
    rows = [f"{'result':<8}{'max abs err':>13}{'max rel err':>13}{'floor':>11}  verdict"]
    for q in results:
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
        print(f"FAIL: {', '.join(failed)} differ from {module} (worst relative error {worst:.2e}, "
              f"tolerance {REL_TOL:g})")
        return 1
    print(f"PASS: NumPy agrees with {module} on {', '.join(results)} (worst relative error {worst:.2e}, "
          f"tolerance {REL_TOL:g})")
    return 0


def body(cell: str) -> tuple:
    """The script's functions, in the order the script defines them (and the names the gated side calls them by)."""
    common = (whole, torch_module, draw, torch_reference)
    tail = (agreement, side_by_side, main)
    if cell == "rnn":
        return (carry_cut, rnn_forward, bptt, *common, numpy_rnn, *tail)
    mod = {"lstm": lstm, "gru": gru}[cell]
    plain = (lstm.sigmoid, mod.lstm_forward, mod.lstm_bptt) if cell == "lstm" else (
        lstm.sigmoid, gru.gru_forward, gru.gru_bptt)
    return (carry_cut, *plain, mod.run_forward, mod.run_backward, mod.contributions, *common, torch_forward,
            numpy_gated, *tail)


NUMPY_SIDE = {"rnn": "numpy_rnn", "lstm": "numpy_gated", "gru": "numpy_gated"}   # what main is given
STEPS = {"rnn": rnn.RNNStep, "lstm": lstm.LSTMStep, "gru": gru.GRUStep}
