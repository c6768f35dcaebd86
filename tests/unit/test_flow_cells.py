"""Gradient flow for every cell (bptt.flow): the LSTM's ‖∂L/∂c_t‖, the three cells compared on one problem, the
share of the gradient left at t = 1, the gate products and the truncation gap, against PyTorch autograd."""
from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import run_cli

from bptt import flow
from bptt.config import RNNConfig
from bptt.engine import run_engine
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference, unrolled_reference

RTOL = 1e-10
CFG = RNNConfig(input_size=3, hidden_size=4, seq_len=6, batch_size=2, seed=5, hh_scale=1.5)


@pytest.fixture(scope="module")
def cc() -> flow.CellComparison:
    return flow.compare_cells(CFG, b=1)


def _ref(cfg: RNNConfig, cell: str, **changes):
    return unrolled_reference(draw_problem(flow.same_problem(cfg, cell).replace(**changes)))


def test_each_cells_norms_under_the_sweep_are_autograds(cc):
    assert cc.scales == flow.sweep_scales(CFG)
    for cell in ("rnn", "lstm", "gru"):
        for s, row in zip(cc.scales, cc.h_norms[cell]):
            ref = _ref(CFG, cell, hh_scale=s)
            np.testing.assert_allclose(row, np.linalg.norm(ref.dh_total.reshape(CFG.seq_len, -1), axis=1), rtol=RTOL)
            if cell == "lstm":
                c_row = cc.c_norms[cc.scales.index(s)]
                np.testing.assert_allclose(c_row, np.linalg.norm(ref.dc_total.reshape(CFG.seq_len, -1), axis=1),
                                           rtol=RTOL)


def test_the_share_left_at_t1_is_autograds_with_the_gradient_at_the_last_step_only(cc):
    for cell, key, name in (("rnn", "rnn", "dh_total"), ("gru", "gru", "dh_total"), ("lstm", "lstm", "dc_total"),
                            ("lstm", "lstm_h", "dh_total")):
        g = getattr(_ref(CFG, cell, upstream="last"), name)                 # (T, B, H)
        assert cc.keep[key] == pytest.approx(np.linalg.norm(g[0]) / np.linalg.norm(g[-1]), rel=1e-9), key
    s = cc.sentence()
    assert f"{100 * cc.keep['lstm']:.3g}%" in s and f"{100 * cc.keep['rnn']:.3g}%" in s
    assert f"t = {CFG.seq_len} only" in s


def test_gate_products_are_the_products_of_autograds_gates_and_the_rnn_jacobian_is_flows(cc):
    f = _ref(CFG, "lstm").f[:, 1]                                             # (T, H), batch element b = 1
    z = _ref(CFG, "gru").z[:, 1]
    T = CFG.seq_len
    for d in range(1, T + 1):
        assert cc.forget_product[d - 1] == pytest.approx(np.prod(f[T - d:], axis=0).mean(), rel=1e-12)
        assert cc.update_product[d - 1] == pytest.approx(np.prod(z[T - d:], axis=0).mean(), rel=1e-12)
    p = draw_problem(flow.same_problem(CFG, "rnn"))
    np.testing.assert_allclose(cc.rnn_jacobian, flow.jacobian_norms(p, run_engine(p), 1).norms, rtol=1e-12)


def test_the_cell_path_alone_is_the_forget_gate_product():
    """d c_{T-1} / d c_s along the cell path alone (h held fixed) is diag(∏ f): autograd on the cell recurrence."""
    import torch
    cfg = RNNConfig(cell="lstm", input_size=2, hidden_size=3, seq_len=4, batch_size=1, seed=2)
    ref = unrolled_reference(draw_problem(cfg))
    f = torch.tensor(ref.f[:, 0])
    ig = torch.tensor((ref.i * ref.g)[:, 0])
    J = torch.autograd.functional.jacobian(lambda c0: _roll(c0, f, ig), torch.zeros(3, dtype=torch.float64))
    np.testing.assert_allclose(np.diag(J.numpy()), np.prod(ref.f[:, 0], axis=0), rtol=1e-12)
    assert flow.gate_product(run_engine(draw_problem(cfg)), "f", 0)[-1] == pytest.approx(
        float(np.diag(J.numpy()).mean()), rel=1e-10)


def _roll(c, f, ig):
    for t in range(f.shape[0]):
        c = f[t] * c + ig[t]
    return c


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_truncation_gap_of_each_cell_is_the_torch_modules(cc, cell):
    assert cc.truncations == (1, 2, 5)                                        # K < T = 6
    full = torch_rnn_reference(draw_problem(flow.same_problem(CFG, cell))).gradients
    for K, gap in zip(cc.truncations, cc.gap[cell]):
        trunc = torch_rnn_reference(draw_problem(flow.same_problem(CFG, cell).replace(truncate=K))).gradients
        assert gap == pytest.approx(flow.gradient_gap(trunc, full), rel=1e-8)
        assert gap > 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_flow_report_of_a_gated_cell_leaves_the_rnn_only_parts_out(cell):
    cfg = RNNConfig(cell=cell, input_size=3, hidden_size=4, seq_len=5, batch_size=2, truncate=2)
    p = draw_problem(cfg)
    r = flow.flow_report(p, run_engine(p), sweep=False)
    assert r.jacobian is None and r.spectrum is None and r.saturation is None and r.cells is None
    ref = unrolled_reference(p)
    np.testing.assert_allclose(r.grad_norms.per_t, np.linalg.norm(ref.dh_total.reshape(5, -1), axis=1), rtol=RTOL)
    if cell == "lstm":
        np.testing.assert_allclose(r.cell_norms.per_t, np.linalg.norm(ref.dc_total.reshape(5, -1), axis=1),
                                   rtol=RTOL)
    else:
        assert r.cell_norms is None
    assert r.gap is not None and set(r.gap.rel_err) == {"dW_ih", "dW_hh", "db_ih", "db_hh"}


def test_cli_flow_for_the_lstm(capsys):
    argv = ["flow", "--cell", "lstm", "--input-size", "3", "--hidden-size", "4", "--seq-len", "5", "--batch-size",
            "2", "--json"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0 and err == ""
    data = json.loads(out)
    cfg = RNNConfig(cell="lstm", input_size=3, hidden_size=4, seq_len=5, batch_size=2)
    assert data["config"]["cell"] == "lstm" and data["jacobian"] is None and data["saturation"] is None
    ref = unrolled_reference(draw_problem(cfg))
    np.testing.assert_allclose(data["cell_grad_norms"]["norm"], np.linalg.norm(ref.dc_total.reshape(5, -1), axis=1),
                               rtol=RTOL)
    assert set(data["cells"]["h_norm"]) == {"rnn", "lstm", "gru"} and data["cells"]["truncate"] == [1, 2]
    code, out, _ = run_cli(capsys, *argv[:-1])
    assert code == 0 and "‖dL/dc_t‖" in out and "LSTM ∏ f" in out and "spectral radius" not in out
