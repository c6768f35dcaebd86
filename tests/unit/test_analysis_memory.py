"""The lean Analysis: every array and the comparison table exactly as the full traces give them, in at most 150 MB."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.analysis import RESULT_FIELDS, TRACE_FIELDS, analyze, pack, unpack
from bptt.autograd_op import run_op
from bptt.compare import comparison_table, per_step_rows, whole_rows
from bptt.config import BUGS, RNNConfig
from bptt.engine import run_engine
from bptt.memory import nbytes_of
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference, unrolled_reference

MAX_ANALYSIS_BYTES = 150 * 1000 * 1000


def same_bits(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def full_run(cfg: RNNConfig):
    """The traces and the table as analyze() made them before it was lean."""
    p = draw_problem(cfg)
    e, u, r, o = run_engine(p), unrolled_reference(p), torch_rnn_reference(p), run_op(p)
    replay = run_engine(p, (u.a, u.h)) if cfg.nonlinearity == "tanh" else None
    table = comparison_table([
        *per_step_rows(e, u, replay=replay),
        *whole_rows("numpy engine", e, "torch.nn.RNN", r, replay=replay),
        *whole_rows("torch operator", o, "torch.nn.RNN", r),
        *whole_rows("unrolled autograd", u, "torch.nn.RNN", r),
    ])
    return p, e, u, r, o, table


CONFIGS = [
    RNNConfig(),
    RNNConfig(input_size=6, hidden_size=7, seq_len=9, batch_size=4, seed=3, nonlinearity="relu", truncate=4),
    RNNConfig(input_size=5, hidden_size=8, seq_len=12, batch_size=2, seed=11, upstream="last", hh_scale=3.0),
    RNNConfig(input_size=3, hidden_size=4, seq_len=6, batch_size=5, seed=2, hh_scale=10.0),   # saturated tanh
    *(RNNConfig(input_size=4, hidden_size=6, seq_len=7, batch_size=3, seed=5, truncate=3, bug=b) for b in BUGS
      if b != "none"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.nonlinearity}-{c.bug}-K{c.truncate}-s{c.hh_scale:g}")
def test_lean_analysis_gives_back_every_array_and_the_same_table(cfg):
    p, e, u, r, o, table = full_run(cfg)
    an = analyze(cfg)
    for name in TRACE_FIELDS:
        assert same_bits(getattr(an.engine, name), getattr(e, name)), f"engine.{name}"
        assert same_bits(getattr(an.unrolled, name), getattr(u, name)), f"unrolled.{name}"
    for name in RESULT_FIELDS:
        assert same_bits(getattr(an.torch_rnn, name), getattr(r, name)), f"torch_rnn.{name}"
        assert same_bits(getattr(an.op, name), getattr(o, name)), f"op.{name}"
    for k, v in e.gradients.items():
        assert same_bits(an.engine.gradients[k], v) and same_bits(an.unrolled.gradients[k], u.gradients[k])
    for k, v in r.gradients.items():
        assert same_bits(an.torch_rnn.gradients[k], v) and same_bits(an.op.gradients[k], o.gradients[k])
    pd.testing.assert_frame_equal(an.table, table, check_exact=True)
    assert not an.engine.d_pre.flags.writeable          # cached arrays are shared: nobody may change them


@settings(max_examples=60, deadline=None)
@given(x=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=40),
       noise=st.integers(-(2**40), 2**40), scale=st.sampled_from([0, 1, 200, 40_000, 2**40]))
def test_pack_is_exact_whatever_the_base(x, noise, scale):
    x = np.array(x)
    rng = np.random.default_rng(abs(noise) % 1000)
    base = (x.view(np.int64) + rng.integers(-scale, scale + 1, x.size)).view(np.float64)
    for b in (base, x, None, np.zeros_like(x)):
        pk = pack(x, b)
        assert same_bits(unpack(pk, lambda b=b: b), x)


def test_maximal_config_analysis_holds_at_most_150_mb():
    cfg = RNNConfig(input_size=256, hidden_size=256, seq_len=64, batch_size=64)
    an = analyze(cfg)
    held = nbytes_of(an)
    assert held <= MAX_ANALYSIS_BYTES, f"the maximal config's Analysis holds {held / 1e6:.0f} MB (> 150 MB)"
    # and what it holds is enough: the per-step arrays come back, with the shapes of a Trace
    T, B, H, I = cfg.seq_len, cfg.batch_size, cfg.hidden_size, cfg.input_size
    assert an.engine.dW_hh_acc.shape == (T, H, H) and an.unrolled.dx.shape == (T, B, I)
    assert np.isfinite(an.unrolled.dW_ih_step[T - 1]).all()
