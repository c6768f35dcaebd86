"""Exports of one analysis: the trace as NPZ or tidy CSV, and a self-contained reproduction script."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import Analysis, Lean
from .config import RNNConfig
from .engine import FORWARD_QUANTITIES, STEP_QUANTITIES

# ----------------------------------------------------------------------------------------------------------------------
# NPZ

def _array(trace, q: str) -> np.ndarray:
    """Field q of a trace; a lean one decodes it afresh (exact) rather than filling the shared cache with it."""
    return trace.get(q, cached=False) if isinstance(trace, Lean) else getattr(trace, q)


def trace_arrays(an: Analysis) -> dict[str, np.ndarray]:
    """Every exported array by its NPZ key; time-major, 0-based t (see README for the keys)."""
    p, e, u, r = an.problem, an.engine, an.unrolled, an.torch_rnn
    out: dict[str, np.ndarray] = {"config_json": np.array(an.config.to_json())}
    out.update(x=p.x, h0=p.h0, dh_out=p.dh_out, W_ih=p.W_ih, W_hh=p.W_hh, b_ih=p.b_ih, b_hh=p.b_hh)
    for q in (*FORWARD_QUANTITIES, *STEP_QUANTITIES, "dh0"):
        out[q] = _array(e, q)
    out.update(e.gradients)
    out.update(torch_h=_array(r, "h"), torch_dx=_array(r, "dx"), torch_dh0=_array(r, "dh0"),
               **{f"torch_{k}": v for k, v in r.gradients.items()})
    for q in (*FORWARD_QUANTITIES, *STEP_QUANTITIES, "dh0"):
        out[f"ref_{q}"] = _array(u, q)
    return out


def npz_bytes(an: Analysis) -> bytes:
    """The trace as an .npz file (loads with allow_pickle=False)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **trace_arrays(an))
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------------------------
# CSV

# the index names of each exported quantity's axes (after t): b batch, i input, j hidden unit, k hidden unit of h_{t-1}
CSV_AXES: dict[str, tuple[str, ...]] = {
    **{q: ("t", "b", "j") for q in ("a", "h", "dh_next", "dh_total", "d_pre", "dh_prev")},
    "dx": ("t", "b", "i"), "dh0": ("b", "j"),
    "dW_ih_acc": ("t", "j", "i"), "dW_hh_acc": ("t", "j", "k"), "db_ih_acc": ("t", "j"), "db_hh_acc": ("t", "j"),
    "dW_ih": ("j", "i"), "dW_hh": ("j", "k"), "db_ih": ("j",), "db_hh": ("j",),
}
CSV_COLUMNS = ["quantity", "t", "b", "i", "j", "k", "numpy", "torch", "reference"]


def trace_frame(an: Analysis) -> pd.DataFrame:
    """Tidy long table: one row per number, with the engine's value and its autograd reference's."""
    e, u, r = an.engine, an.unrolled, an.torch_rnn
    pairs = {q: (e, q, u, q, "unrolled autograd") for q in (*FORWARD_QUANTITIES, *STEP_QUANTITIES)}
    pairs["dh0"] = (e, "dh0", r, "dh0", "torch.nn.RNN")
    gradients = {k: (v, r.gradients[k], "torch.nn.RNN") for k, v in e.gradients.items()}
    frames = []
    for q in (*pairs, *gradients):                       # one quantity's arrays alive at a time
        if q in pairs:
            src, qs, ref_src, qr, ref_name = pairs[q]
            mine, ref = _array(src, qs), _array(ref_src, qr)
        else:
            mine, ref, ref_name = gradients[q]
        axes = CSV_AXES[q]
        idx = np.indices(mine.shape).reshape(len(axes), -1)
        f = pd.DataFrame({"quantity": np.full(idx.shape[1], q)})
        for ax in ("t", "b", "i", "j", "k"):
            f[ax] = pd.array(idx[axes.index(ax)] if ax in axes else [pd.NA] * len(f), dtype="Int64")
        f["numpy"] = mine.reshape(-1)
        f["torch"] = ref.reshape(-1)
        f["reference"] = ref_name
        frames.append(f)
    return pd.concat(frames, ignore_index=True)[CSV_COLUMNS]


def csv_bytes(an: Analysis) -> bytes:
    """The tidy trace as CSV text (full float64 precision)."""
    return trace_frame(an).to_csv(index=False, float_format="%.17g").encode()


# ----------------------------------------------------------------------------------------------------------------------
# reproduction script

def write_export(an: Analysis, path: str | Path) -> Path:
    """Write the trace to path; .npz or .csv by the extension (ValueError otherwise, OSError if unwritable)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data = npz_bytes(an)
    elif suffix == ".csv":
        data = csv_bytes(an)
    else:
        raise ValueError(f"the output must end in .npz or .csv, got {str(path)!r}")
    path.write_bytes(data)
    return path


_BUG_LINES = {
    "forget-carry": ("dh_total = dh[t] + carry", "dh_total = dh[t]  # BUG (on purpose): the carry from t+1 is dropped"),
    "no-activation-derivative": ("d_pre = dh_total * fprime(t)",
                                 "d_pre = dh_total  # BUG (on purpose): the factor f'(a_t) is left out"),
    "derivative-of-pre-activation": ("d_pre = dh_total * fprime(t)",
                                     "d_pre = dh_total * (1 - a[t] ** 2) if NONLINEARITY == 'tanh' else dh_total * "
                                     "fprime(t)  # BUG (on purpose): 1 - a_t² instead of 1 - h_t²"),
    "dWhh-uses-h_t": ("dW_hh += d_pre.T @ hprev[t]", "dW_hh += d_pre.T @ h[t]  # BUG (on purpose): h_t, not h_{t-1}"),
    "carry-transposed": ("sent = d_pre @ W_hh", "sent = d_pre @ W_hh.T  # BUG (on purpose): W_hh transposed"),
}

_SCRIPT = '''\
"""BPTT for a vanilla RNN by hand in NumPy, checked against PyTorch autograd.

Generated by BPTT Explorer for this configuration:
    {config_json}
Run: python this_file.py   (needs numpy and torch){bug_note}
"""
import numpy as np
import torch

INPUT_SIZE, HIDDEN_SIZE, SEQ_LEN, BATCH_SIZE = {I}, {H}, {T}, {B}
SEED, NONLINEARITY, UPSTREAM, HH_SCALE, TRUNCATE = {seed}, {nonlinearity!r}, {upstream!r}, {hh_scale!r}, {truncate}

# -- the draws, in the worked example's order -------------------------------------------------------------------------
np.random.seed(SEED)
torch.manual_seed(SEED)
rnn = torch.nn.RNN(INPUT_SIZE, HIDDEN_SIZE, nonlinearity=NONLINEARITY).double()
with torch.no_grad():
    rnn.weight_hh_l0 *= HH_SCALE
W_ih, W_hh, b_ih, b_hh = (p.detach().numpy().copy() for p in
                          (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0))
x = np.random.random((SEQ_LEN, BATCH_SIZE, INPUT_SIZE))
h0 = np.random.random((1, BATCH_SIZE, HIDDEN_SIZE))
dh = np.random.random((SEQ_LEN, BATCH_SIZE, HIDDEN_SIZE))  # dL/dh_t arriving from each output
if UPSTREAM == "last":
    dh[:-1] = 0.0

# -- PyTorch: autograd through torch.nn.RNN (h = h.detach() every TRUNCATE steps if TRUNCATE > 0) --------------------
xt = torch.tensor(x, requires_grad=True)
h0t = torch.tensor(h0, requires_grad=True)
K = TRUNCATE if TRUNCATE > 0 else SEQ_LEN
outs, hT = [], h0t
for s in range(0, SEQ_LEN, K):
    out, hT = rnn(xt[s:s + K], hT if s == 0 else hT.detach())
    outs.append(out)
out = torch.cat(outs)
out.backward(torch.tensor(dh))

# -- NumPy: forward, keeping every h_t ---------------------------------------------------------------------------------
f = np.tanh if NONLINEARITY == "tanh" else (lambda v: np.maximum(v, 0.0))
a = np.zeros((SEQ_LEN, BATCH_SIZE, HIDDEN_SIZE))
h = np.zeros((SEQ_LEN, BATCH_SIZE, HIDDEN_SIZE))
hprev = np.zeros_like(h)  # hprev[t] = h_(t-1)
for t in range(SEQ_LEN):
    hprev[t] = h0[0] if t == 0 else h[t - 1]
    a[t] = x[t] @ W_ih.T + b_ih + hprev[t] @ W_hh.T + b_hh
    h[t] = f(a[t])


def fprime(t):
    return (1 - h[t]) * (1 + h[t]) if NONLINEARITY == "tanh" else (a[t] > 0).astype(float)  # 1 - h², accurately


# -- NumPy: backward through time, t = T-1 ... 0 --------------------------------------------------------------------------
dx = np.zeros_like(x)
dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
db_ih, db_hh = np.zeros_like(b_ih), np.zeros_like(b_hh)
carry = np.zeros((BATCH_SIZE, HIDDEN_SIZE))  # the gradient carried into h_t from step t+1
for t in reversed(range(SEQ_LEN)):
    dh_total = dh[t] + carry
    d_pre = dh_total * fprime(t)
    sent = d_pre @ W_hh
    dx[t] = d_pre @ W_ih
    dW_ih += d_pre.T @ x[t]
    dW_hh += d_pre.T @ hprev[t]
    db_ih += d_pre.sum(axis=0)
    db_hh += d_pre.sum(axis=0)
    dh0 = sent
    carry = np.zeros_like(sent) if (TRUNCATE > 0 and t % TRUNCATE == 0) else sent

# -- side by side ---------------------------------------------------------------------------------------------------------
np.set_printoptions(precision=6, suppress=True)
pairs = [("h", h, out), ("dx", dx, xt.grad), ("dh0", dh0, h0t.grad[0]),
         ("dW_ih", dW_ih, rnn.weight_ih_l0.grad), ("dW_hh", dW_hh, rnn.weight_hh_l0.grad),
         ("db_ih", db_ih, rnn.bias_ih_l0.grad), ("db_hh", db_hh, rnn.bias_hh_l0.grad)]
for name, mine, ref in pairs:
    ref = ref.detach().numpy()
    if mine.size <= 60:
        print(f"{{name}} (numpy)\\n{{mine}}\\n{{name}} (torch)\\n{{ref}}")
    err = np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-300)
    print(f"{{name}}: max relative error {{err:.3e}}")
'''


def repro_script(config: RNNConfig) -> str:
    """A standalone NumPy + PyTorch script that recomputes this config's numbers (with its bug, if any, marked)."""
    c = config
    bug_note = ""
    text = _SCRIPT
    if c.bug != "none":
        old, new = _BUG_LINES[c.bug]
        text = text.replace(old, new, 1)
        bug_note = (f"\n\nThis copy makes the mistake {c.bug!r} on purpose (marked BUG below), so NumPy and PyTorch "
                    f"disagree.")
    return text.format(config_json=json.dumps(c.to_dict(), sort_keys=True), bug_note=bug_note,
                       I=c.input_size, H=c.hidden_size, T=c.seq_len, B=c.batch_size, seed=c.seed,
                       nonlinearity=c.nonlinearity, upstream=c.upstream, hh_scale=c.hh_scale, truncate=c.truncate)
