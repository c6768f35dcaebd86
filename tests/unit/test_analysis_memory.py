"""The lean Analysis: every array and the comparison table exactly as the full traces give them, for every cell; at
the largest config at most 150 MB (rnn) or 300 MB (lstm, gru)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.analysis import analyze, pack, unpack
from bptt.autograd_op import run_op
from bptt.cells import BUGS as CELL_BUGS
from bptt.cells import GRADIENTS
from bptt.compare import comparison_table, per_step_rows, whole_rows
from bptt.config import RNNConfig
from bptt.engine import run_engine
from bptt.memory import nbytes_of
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference, unrolled_reference

MAX_ANALYSIS_BYTES = {"rnn": 150 * 1000 * 1000, "lstm": 300 * 1000 * 1000, "gru": 300 * 1000 * 1000}
TOTALS = ("h", "dx", "dh0", "dc0")          # what a torch module's or the operator's Totals hold besides gradients


def same_bits(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def full_run(cfg: RNNConfig):
    """The traces and the table as analyze() would make them if it kept everything."""
    p = draw_problem(cfg)
    e, u, r, o = run_engine(p), unrolled_reference(p), torch_rnn_reference(p), run_op(p)
    replay = None
    if cfg.nonlinearity == "tanh":
        replay = run_engine(p, {q.name: u.values[q.name] for q in p.cell.forward})
    name = p.cell.torch_name
    table = comparison_table([
        *per_step_rows(e, u, replay=replay),
        *whole_rows("numpy engine", e, name, r, replay=replay),
        *whole_rows("torch operator", o, name, r, cell=p.cell),
        *whole_rows("unrolled autograd", u, name, r),
    ])
    return p, e, u, r, o, table


CONFIGS = [
    RNNConfig(),
    RNNConfig(input_size=6, hidden_size=7, seq_len=9, batch_size=4, seed=3, nonlinearity="relu", truncate=4),
    RNNConfig(input_size=5, hidden_size=8, seq_len=12, batch_size=2, seed=11, upstream="last", hh_scale=3.0),
    RNNConfig(input_size=3, hidden_size=4, seq_len=6, batch_size=5, seed=2, hh_scale=10.0),   # saturated tanh
    *(RNNConfig(input_size=4, hidden_size=6, seq_len=7, batch_size=3, seed=5, truncate=3, bug=b)
      for b in CELL_BUGS["rnn"][1:]),
    *(RNNConfig(cell=cell, input_size=3, hidden_size=5, seq_len=6, batch_size=2, seed=9, truncate=k, hh_scale=s)
      for cell in ("lstm", "gru") for k, s in ((0, 1.0), (4, 10.0))),
    *(RNNConfig(cell=cell, input_size=4, hidden_size=6, seq_len=7, batch_size=3, seed=5, truncate=3, bug=b)
      for cell in ("lstm", "gru") for b in CELL_BUGS[cell][1:]),
]


@pytest.mark.parametrize("cfg", CONFIGS,
                         ids=lambda c: f"{c.cell}-{c.nonlinearity}-{c.bug}-K{c.truncate}-s{c.hh_scale:g}")
def test_lean_analysis_gives_back_every_array_and_the_same_table(cfg):
    p, e, u, r, o, table = full_run(cfg)
    an = analyze(cfg)
    for name, v in e.values.items():
        assert same_bits(an.engine.values[name], v), f"engine.{name}"
    for name, v in u.values.items():
        assert same_bits(getattr(an.unrolled, name), v), f"unrolled.{name}"
    for name in TOTALS:
        if getattr(r, name) is not None:
            assert same_bits(getattr(an.torch_rnn, name), getattr(r, name)), f"torch_rnn.{name}"
            assert same_bits(getattr(an.op, name), getattr(o, name)), f"op.{name}"
    assert (r.dc0 is not None) == (cfg.cell == "lstm")
    # the weight-shaped per-step quantities, derived on demand, are the same too (the unrolled one from its trace)
    for name in ("dW_ih_acc", "dW_hh_step", "db_hh_acc"):
        assert same_bits(getattr(an.engine, name), getattr(e, name)), f"engine.{name}"
        assert same_bits(getattr(an.unrolled, name), getattr(u, name)), f"unrolled.{name}"
    for k in GRADIENTS:
        assert same_bits(an.engine.gradients[k], e.gradients[k]) and same_bits(an.unrolled.gradients[k],
                                                                                u.gradients[k])
        assert same_bits(an.torch_rnn.gradients[k], r.gradients[k]) and same_bits(an.op.gradients[k],
                                                                                   o.gradients[k])
    pd.testing.assert_frame_equal(an.table, table, check_exact=True)
    assert not an.engine.h.flags.writeable              # cached arrays are shared: nobody may change them


@settings(max_examples=60, deadline=None)
@given(x=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=40),
       noise=st.integers(-(2**40), 2**40), scale=st.sampled_from([0, 1, 200, 40_000, 2**40]))
def test_pack_is_exact_whatever_the_base(x, noise, scale):
    x = np.array(x)
    rng = np.random.default_rng(abs(noise) % 1000)
    base = (x.view(np.int64) + rng.integers(-scale, scale + 1, x.size)).view(np.float64)
    for b in (base, x, None, np.zeros_like(x)):
        pk = pack(x, b)
        assert same_bits(unpack(pk, b), x)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_maximal_config_analysis_holds_at_most_its_budget(cell):
    cfg = RNNConfig(cell=cell, input_size=256, hidden_size=256, seq_len=64, batch_size=64)
    an = analyze(cfg)
    held = nbytes_of(an)
    limit = MAX_ANALYSIS_BYTES[cell]
    assert held <= limit, f"the maximal {cell} config's Analysis holds {held / 1e6:.0f} MB (> {limit / 1e6:.0f} MB)"
    # and what it holds is enough: the per-step arrays come back, with the shapes of a Trace
    T, B, H, I, G = cfg.seq_len, cfg.batch_size, cfg.hidden_size, cfg.input_size, an.cell.G
    assert an.unrolled.dx.shape == (T, B, I) and an.unrolled.h.shape == (T, B, H)
    step = an.engine.running_sums(T - 2)                 # derived on demand, only the steps asked for
    assert step["dW_hh"].shape == (2, G * H, H)
    assert np.isfinite(an.unrolled.running_sums(T - 1)["dW_ih"]).all()
