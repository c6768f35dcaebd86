"""Every cell (rnn, lstm, gru) against autograd: the engine step by step against the unrolled reference, the
unrolled reference against the torch module, the derived weight contributions against autograd's own per-step
weight gradients, the hand-written torch.autograd.Function under gradcheck. (The bugs: test_bugs.py; the exports
and the CLI: test_cli_export.py; memory: test_analysis_memory.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt.analysis import analyze
from bptt.autograd_op import GRUFunction, LSTMFunction, apply_op, gradcheck_op, op_leaves, run_op
from bptt.cells import CELLS, GRADIENTS
from bptt.compare import FLOOR_FACTOR, REL_TOL
from bptt.config import UPSTREAMS, RNNConfig
from bptt.engine import run_engine, run_plain
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference, unrolled_reference

CELL_NAMES = ("rnn", "lstm", "gru")
GATED = ("lstm", "gru")


def floor_of(eng: np.ndarray, replay: np.ndarray | None) -> float:
    """The package's rounding floor (compare.FLOOR_FACTOR): how far the engine's backward moves when it runs on the
    reference's forward values."""
    if replay is None:
        return 0.0
    d = np.abs(eng - replay)
    d = d[np.isfinite(d)]
    return FLOOR_FACTOR * float(d.max()) if d.size else 0.0


# ----------------------------------------------------------------------------------------------------------------------
# 1. the engine against the unrolled reference, step by step, and the plain form against the engine

@st.composite
def configs(draw: st.DrawFn, cell: str) -> RNNConfig:
    """A bug-free config of this cell with small sizes, either upstream, any hh_scale, truncate in {0..3, T, T+1}."""
    T = draw(st.integers(1, 5))
    return RNNConfig(cell=cell, input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(1, 4)), seq_len=T,
                     batch_size=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**32 - 1)),
                     upstream=draw(st.sampled_from(UPSTREAMS)),
                     hh_scale=draw(st.one_of(st.sampled_from([0.05, 10.0]), st.floats(0.05, 10.0))),
                     truncate=draw(st.sampled_from([0, 1, 2, 3, T, T + 1])))


def check_engine_against_unrolled(cfg: RNNConfig, close) -> None:
    p = draw_problem(cfg)
    cell = p.cell
    eng, ref, module = run_engine(p), unrolled_reference(p), torch_rnn_reference(p)
    replay = run_engine(p, {q.name: ref.values[q.name] for q in cell.forward}) if cfg.nonlinearity == "tanh" else None
    E, R = eng.arrays(), ref.arrays()
    P = replay.arrays() if replay is not None else None
    forward = {q.name for q in cell.forward}
    per_step = [*(q.name for q in (*cell.forward, *cell.backward)), *(f"{w}_acc" for w in GRADIENTS),
                *(f"{w}_step" for w in GRADIENTS)]
    for q in per_step:
        assert E[q].shape == R[q].shape and E[q].shape[0] == cfg.seq_len, q
        for t in range(cfg.seq_len):
            floor = 0.0 if q in forward else floor_of(E[q][t], None if P is None else P[q][t])
            close(E[q][t], R[q][t], f"{cell.name} {q}[t={t}] engine vs unrolled", floor=floor, tol=REL_TOL)
    for s in cell.initial:                                     # dh0 (and dc0)
        close(E[s], R[s], f"{s} engine vs unrolled", floor=floor_of(E[s], None if P is None else P[s]))
        close(E[s], getattr(module, s), f"{s} engine vs {cell.torch_name}",
              floor=floor_of(E[s], None if P is None else P[s]))
    close(eng.h, module.h, f"h engine vs {cell.torch_name}")
    for w in GRADIENTS:
        fl = floor_of(eng.gradients[w], None if replay is None else replay.gradients[w])
        close(eng.gradients[w], module.gradients[w], f"{w} engine vs {cell.torch_name}", floor=fl)
    # the plain form is the engine for the gated cells; for the vanilla RNN test_engine compares the two forms
    plain = run_plain(p)
    for q, v in plain.values.items():
        if cfg.cell == "rnn":
            close(v, eng.values[q], f"{q} plain vs engine", tol=1e-13)
        else:
            np.testing.assert_array_equal(v, eng.values[q], err_msg=q)


@pytest.mark.parametrize("cell", CELL_NAMES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_engine_equals_the_unrolled_reference_step_by_step(cell: str, data: st.DataObject, close) -> None:
    # (the size-1 edge case and a saturated, truncated config of every cell: EDGES below, through analyze)
    check_engine_against_unrolled(data.draw(configs(cell), label="cfg"), close)


# the exercise's defaults, the size-1 edge case, a saturated and a truncated one: every row of the comparison passes
EDGES = [RNNConfig(), RNNConfig(input_size=1, hidden_size=1, seq_len=1, batch_size=1),
         RNNConfig(input_size=2, hidden_size=3, seq_len=6, batch_size=2, seed=4, hh_scale=10.0, truncate=4),
         RNNConfig(seq_len=5, upstream="last")]


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("cfg", EDGES, ids=["defaults", "size-1", "saturated-truncated", "upstream-last"])
def test_every_row_passes_at_the_defaults_and_the_edges(cell: str, cfg: RNNConfig) -> None:
    an = analyze(cfg.replace(cell=cell))
    assert an.all_passed, an.table[~an.table["passed"]].to_string()
    assert an.first_divergence is None and not an.any_nonfinite
    assert an.worst_rel_err < 1e-12                       # agreement is expected near 1e-15
    gated = an.table[an.table["gate"].notna()]
    assert set(gated["gate"]) == set(CELLS[cell].gates)   # one row per gate block of the gated quantities


def test_the_defaults_draw_like_the_exercise() -> None:
    # torch.nn.LSTM / GRU's own initial weights for the seed, then x, h0, (c0,) dh from numpy in that order
    for cell in CELL_NAMES:
        cfg = RNNConfig(cell=cell)
        p = draw_problem(cfg)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        module = CELLS[cell].torch_module(cfg.input_size, cfg.hidden_size, cfg.nonlinearity)
        np.testing.assert_array_equal(p.W_ih, module.weight_ih_l0.detach().numpy())
        np.testing.assert_array_equal(p.b_hh, module.bias_hh_l0.detach().numpy())
        T, B, I, H = cfg.seq_len, cfg.batch_size, cfg.input_size, cfg.hidden_size
        np.testing.assert_array_equal(p.x, np.random.random((T, B, I)))
        np.testing.assert_array_equal(p.h0, np.random.random((1, B, H))[0])
        if cell == "lstm":
            np.testing.assert_array_equal(p.c0, np.random.random((1, B, H))[0])
        else:
            assert p.c0 is None
        np.testing.assert_array_equal(p.dh_out, np.random.random((T, B, H)))
        G = CELLS[cell].G
        assert p.W_ih.shape == (G * H, I) and p.W_hh.shape == (G * H, H)


# ----------------------------------------------------------------------------------------------------------------------
# 2. the unrolled reference against torch.nn.LSTM / torch.nn.GRU, outputs and gradients (incl. dc0)

@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("truncate", [0, 1, 2, 3])
@pytest.mark.parametrize("hh_scale", [1.0, 10.0])
def test_the_unrolled_reference_is_the_torch_module(cell: str, truncate: int, hh_scale: float, close) -> None:
    cfg = RNNConfig(cell=cell, input_size=3, hidden_size=4, seq_len=6, batch_size=2, seed=21, truncate=truncate,
                    hh_scale=hh_scale)
    p = draw_problem(cfg)
    u, m = unrolled_reference(p), torch_rnn_reference(p)
    close(u.h, m.h, "h")
    close(u.dx, m.dx, "dx")
    close(u.dh0, m.dh0, "dh0")
    if cell == "lstm":
        assert u.dc0.shape == m.dc0.shape == (2, 4)
        close(u.dc0, m.dc0, "dc0")
    else:
        assert m.dc0 is None
    for w in GRADIENTS:
        close(u.gradients[w], m.gradients[w], w)
    # the unrolled graph's per-step gradients are what their names say: dh_total = dh_out + dh_next ...
    close(u.dh_total, p.dh_out + u.dh_next, "dh_total = dh_out + dh_next")
    if cell == "lstm":                               # dc_total = the carry f_{t+1} ⊙ dc_total_{t+1} + the path via h_t
        via_h = u.dh_total * u.o * (1.0 - np.tanh(u.c) ** 2)
        close(u.dc_total, u.dc_next + via_h, "dc_total = dc_next + dh_total ⊙ o ⊙ (1 - tanh² c)")
        close(u.dc_prev, u.dc_total * u.f, "dc_prev = dc_total ⊙ f")


# ----------------------------------------------------------------------------------------------------------------------
# 3. the derived weight contributions against autograd's own per-step weight gradients (a leaf copy of each weight
#    per step), written here from issue 14's equations

def _torch_step(cell: str, x_t, s: dict, W: dict) -> dict:
    if cell == "rnn":
        return {"h": torch.tanh(x_t @ W["W_ih"].T + W["b_ih"] + s["h"] @ W["W_hh"].T + W["b_hh"])}
    if cell == "lstm":
        z = x_t @ W["W_ih"].T + W["b_ih"] + s["h"] @ W["W_hh"].T + W["b_hh"]
        H = s["h"].shape[1]
        i, f = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H:2 * H])
        g, o = torch.tanh(z[:, 2 * H:3 * H]), torch.sigmoid(z[:, 3 * H:])
        c = f * s["c"] + i * g
        return {"h": o * torch.tanh(c), "c": c}
    H = s["h"].shape[1]
    gi, gh = x_t @ W["W_ih"].T + W["b_ih"], s["h"] @ W["W_hh"].T + W["b_hh"]
    r, z = torch.sigmoid(gi[:, :H] + gh[:, :H]), torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return {"h": (1 - z) * n + z * s["h"]}


def per_step_weight_gradients(p) -> dict[str, np.ndarray]:
    """{w: (T, ...)} the gradient of L with respect to step t's own copy of each weight, from autograd."""
    cfg = p.config
    T = cfg.seq_len
    copies = [{k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.weights.items()}
              for _ in range(T)]
    state = {"h": torch.from_numpy(p.h0)}
    if p.c0 is not None:
        state["c"] = torch.from_numpy(p.c0)
    hs = []
    for t in range(T):
        if t > 0 and cfg.truncate > 0 and t % cfg.truncate == 0:
            state = {k: v.detach() for k, v in state.items()}
        state = _torch_step(cfg.cell, torch.from_numpy(p.x[t]), state, copies[t])
        hs.append(state["h"])
    (torch.stack(hs) * torch.from_numpy(p.dh_out)).sum().backward()
    return {f"d{k}": np.stack([c[k].grad.numpy() for c in copies]) for k in p.weights}


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("cfg", [RNNConfig(input_size=2, hidden_size=3, seq_len=4, batch_size=2, seed=5),
                                 RNNConfig(input_size=3, hidden_size=2, seq_len=5, batch_size=3, seed=8, truncate=2,
                                           upstream="last")], ids=["full", "truncated-last"])
def test_derived_weight_contributions_are_autograds_per_step_gradients(cell: str, cfg: RNNConfig, close) -> None:
    p = draw_problem(cfg.replace(cell=cell))
    want = per_step_weight_gradients(p)
    eng = run_engine(p)
    steps, sums = eng.contributions(), eng.running_sums()
    T = cfg.seq_len
    for w in GRADIENTS:
        for t in range(T):
            close(steps[w][t], want[w][t], f"{cell} {w} step {t}")
            close(eng.contribution(w, t), want[w][t], f"{cell} contribution({w}, {t})")
            close(sums[w][t], want[w][t:].sum(0), f"{cell} {w}_acc[{t}]")
        close(eng.gradients[w], want[w].sum(0), f"{cell} {w}")
    part = eng.running_sums(1, 3)                               # a window of the running sums: the same numbers
    for w in GRADIENTS:
        np.testing.assert_array_equal(part[w], sums[w][1:3])
    if cell == "gru":                                           # db_hh ≠ db_ih in the n block
        H = cfg.hidden_size
        assert not np.allclose(eng.gradients["db_hh"][2 * H:], eng.gradients["db_ih"][2 * H:])


# ----------------------------------------------------------------------------------------------------------------------
# 4. the hand-written torch.autograd.Function of each gated cell

SMALL = RNNConfig(input_size=2, hidden_size=3, seq_len=4, batch_size=2, seed=3)


@pytest.mark.parametrize("cell,fn", [("lstm", LSTMFunction), ("gru", GRUFunction)])
@pytest.mark.parametrize("truncate", [0, 2])
def test_gradcheck_of_the_gated_functions(cell: str, fn, truncate: int) -> None:
    cfg = SMALL.replace(cell=cell, truncate=truncate)
    p = draw_problem(cfg)
    res = gradcheck_op(p)
    assert res.passed, res.message
    assert not res.fast_mode and res.n_inputs < 600
    if truncate:                                               # truncation: full BPTT in gradcheck, and says so
        assert "full BPTT" in res.message
    # the Function itself, directly, on the full-BPTT derivative
    leaves = op_leaves(p)
    assert len(leaves) == (7 if cell == "lstm" else 6)
    assert torch.autograd.gradcheck(lambda *ts: fn.apply(*ts, 0), leaves, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("truncate", [0, 1, 3])
def test_run_op_is_the_torch_module(cell: str, truncate: int, close) -> None:
    cfg = RNNConfig(cell=cell, input_size=3, hidden_size=4, seq_len=6, batch_size=2, seed=2, truncate=truncate)
    p = draw_problem(cfg)
    o, m = run_op(p), torch_rnn_reference(p)
    for q in ("h", "dx", "dh0", *(("dc0",) if cell == "lstm" else ())):
        close(getattr(o, q), getattr(m, q), f"{cell} op {q}")
    for w in GRADIENTS:
        close(o.gradients[w], m.gradients[w], f"{cell} op {w}")
    # the Function's forward is the module's forward
    h = apply_op(cfg, op_leaves(p))
    close(h.detach().numpy(), m.h, "apply_op h")


@pytest.mark.parametrize("cell,bug", [("rnn", "overwrite-instead-of-accumulate"), ("lstm", "none"),
                                      ("gru", "reset-before-matmul")])
def test_running_sums_go_on_from_a_chunk_edge_bit_for_bit(cell, bug):
    # the step viewer keeps the running sums at a chunk's first step and goes on from there for the next chunk
    e = run_engine(draw_problem(RNNConfig(cell=cell, bug=bug, seq_len=9, input_size=3, hidden_size=4, batch_size=2)))
    full = e.running_sums()
    edge = e.running_sums(5, 9)                                   # the chunk [5, 9): its sums at t = 5
    on = e.running_sums(2, 5, start=(5, {w: v[0] for w, v in edge.items()}))
    for w, v in full.items():
        np.testing.assert_array_equal(on[w], v[2:5], err_msg=w)
