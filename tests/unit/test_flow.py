"""Gradient-flow numbers (bptt.flow) against PyTorch autograd, on small configs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bptt import flow
from bptt.config import RNNConfig
from bptt.engine import run_engine
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference, unrolled_reference

RTOL = 1e-10
SMALL = [
    RNNConfig(input_size=3, hidden_size=4, seq_len=5, batch_size=2, seed=7, hh_scale=1.5),
    RNNConfig(input_size=2, hidden_size=5, seq_len=6, batch_size=3, seed=11, hh_scale=2.0, nonlinearity="relu"),
    RNNConfig(input_size=4, hidden_size=3, seq_len=4, batch_size=2, seed=3, hh_scale=0.5, upstream="last"),
]
IDS = ["tanh", "relu", "tanh-last"]


def _run(cfg: RNNConfig):
    p = draw_problem(cfg)
    return p, run_engine(p)


def _act(cfg: RNNConfig):
    return torch.tanh if cfg.nonlinearity == "tanh" else torch.relu


# ----------------------------------------------------------------------------------------------------------------------
# Jacobian products against torch.autograd.functional.jacobian

def _torch_jacobian_norm(p, s: int, b: int) -> float:
    """‖∂h_{T-1}/∂h_s‖₂ for batch element b by autograd (s = -1 is h0), running the RNN from h_s in torch."""
    cfg = p.config
    T = cfg.seq_len
    act = _act(cfg)
    W_ih, W_hh, b_ih, b_hh = (torch.tensor(w) for w in (p.W_ih, p.W_hh, p.b_ih, p.b_hh))
    x = torch.tensor(p.x[:, b])                                          # (T, I)
    h = torch.tensor(p.h0[b])
    for k in range(s + 1):                                               # h_s itself, by the forward pass in torch
        h = act(W_ih @ x[k] + b_ih + W_hh @ h + b_hh)

    def from_s(hs: torch.Tensor) -> torch.Tensor:
        for k in range(s + 1, T):
            hs = act(W_ih @ x[k] + b_ih + W_hh @ hs + b_hh)
        return hs

    J = torch.autograd.functional.jacobian(from_s, h)                    # (H, H)
    return float(torch.linalg.matrix_norm(J, ord=2))


@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
def test_jacobian_norms_match_autograd(cfg):
    p, tr = _run(cfg)
    for b in range(cfg.batch_size):
        jac = flow.jacobian_norms(p, tr, b)
        T = cfg.seq_len
        assert jac.t == T - 1 and jac.b == b
        np.testing.assert_array_equal(jac.distance, np.arange(1, T + 1))
        ref = np.array([_torch_jacobian_norm(p, T - 1 - d, b) for d in jac.distance])
        np.testing.assert_allclose(jac.norms, ref, rtol=RTOL, atol=1e-300)


def test_jacobian_uses_true_derivative_whatever_the_bug():
    cfg = SMALL[0].replace(bug="no-activation-derivative", truncate=2)
    p, tr = _run(cfg)
    p_clean = dataclasses.replace(p, config=SMALL[0])
    clean = flow.jacobian_norms(p_clean, run_engine(p_clean))
    np.testing.assert_allclose(flow.jacobian_norms(p, tr).norms, clean.norms, rtol=RTOL)


def test_jacobian_bad_batch_element_names_it():
    p, tr = _run(SMALL[0])
    with pytest.raises(ValueError, match=r"batch element b must be an integer in 0\.\.1"):
        flow.jacobian_norms(p, tr, 2)


def test_jacobian_overflow_is_reported_not_raised():
    p, tr = _run(SMALL[1])                                              # relu: no saturation to stop the growth
    huge = dataclasses.replace(p, W_hh=p.W_hh * 1e60)
    jac = flow.jacobian_norms(huge, run_engine(huge))
    assert not np.isfinite(jac.norms).all()
    assert not np.isfinite(jac.norms[-1])


# ----------------------------------------------------------------------------------------------------------------------
# norms of dL/dh_t against the unrolled autograd reference

@pytest.mark.parametrize("cfg", [*SMALL, SMALL[0].replace(truncate=2)], ids=[*IDS, "truncate2"])
def test_gradient_norms_match_unrolled_reference(cfg):
    p, tr = _run(cfg)
    ref = torch.tensor(unrolled_reference(p).dh_total)                  # (T, B, H)
    got = flow.gradient_norms(tr)
    np.testing.assert_allclose(got.per_t, torch.linalg.vector_norm(ref, dim=(1, 2)).numpy(), rtol=RTOL)
    np.testing.assert_allclose(got.per_batch, torch.linalg.vector_norm(ref, dim=2).numpy(), rtol=RTOL)


def test_vanishing_and_exploding_presets_show_the_trend():
    from bptt.config import preset
    van = flow.gradient_norms(_run(preset("Vanishing gradients"))[1]).per_t
    exp = flow.gradient_norms(_run(preset("Exploding gradients"))[1]).per_t
    assert van[0] < 1e-6 * van[-1]
    assert exp[0] > 1e3 * exp[-1]


# ----------------------------------------------------------------------------------------------------------------------
# W_hh's spectrum

@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
def test_spectrum_matches_torch_linalg(cfg):
    p = draw_problem(cfg)
    sp = flow.spectrum(p.W_hh)
    W = torch.tensor(p.W_hh)
    np.testing.assert_allclose(sp.singular_values, torch.linalg.svdvals(W).numpy(), rtol=RTOL)
    radius = float(torch.linalg.eigvals(W).abs().max())
    assert sp.spectral_radius == pytest.approx(radius, rel=RTOL)
    assert sp.spectral_norm == pytest.approx(float(torch.linalg.matrix_norm(W, ord=2)), rel=RTOL)
    assert sp.spectral_radius <= sp.spectral_norm * (1 + 1e-12)


# ----------------------------------------------------------------------------------------------------------------------
# saturation: f'(a_t) from autograd of f at the reference's a_t

@pytest.mark.parametrize("cfg", SMALL, ids=IDS)
def test_saturation_matches_autograd_derivative(cfg):
    p, tr = _run(cfg)
    a = torch.tensor(unrolled_reference(p).a, requires_grad=True)       # (T, B, H)
    (fprime,) = torch.autograd.grad(_act(cfg)(a).sum(), a)              # elementwise f'(a_t)
    sat = flow.saturation(cfg, tr)
    np.testing.assert_allclose(sat.fprime_mean, fprime.mean(dim=1).numpy(), rtol=1e-9, atol=1e-12)
    saturated = fprime.abs() < flow.TANH_SATURATION if cfg.nonlinearity == "tanh" else fprime == 0
    np.testing.assert_allclose(sat.fraction, saturated.double().mean(dim=(1, 2)).numpy(), rtol=RTOL)
    assert sat.fprime_mean.shape == (cfg.seq_len, cfg.hidden_size)


def test_saturation_is_high_when_tanh_is_driven_hard():
    cfg = RNNConfig(input_size=3, hidden_size=8, seq_len=6, batch_size=2, hh_scale=10.0)
    sat = flow.saturation(cfg, _run(cfg)[1])
    assert sat.fraction[-1] > sat.fraction[0] or sat.fraction[-1] > 0.3


# ----------------------------------------------------------------------------------------------------------------------
# the hh_scale sweep

def test_sweep_scales_are_clipped_and_include_the_config():
    cfg = SMALL[0].replace(hh_scale=0.7)
    assert flow.sweep_scales(cfg, (0.01, 1.0, 20.0)) == (0.05, 0.7, 1.0, 10.0)
    assert flow.sweep_scales(SMALL[0]) == (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)


def test_sweep_norms_match_unrolled_reference_per_scale():
    cfg = SMALL[0].replace(truncate=2, bug="forget-carry")              # the sweep shows the true gradient regardless
    sw = flow.hh_sweep(cfg, (0.5, 2.0))
    assert sw.norms.shape == (len(sw.scales), cfg.seq_len)
    for s, row in zip(sw.scales, sw.norms):
        ref = unrolled_reference(draw_problem(cfg.replace(hh_scale=s, truncate=0, bug="none"))).dh_total
        np.testing.assert_allclose(row, np.linalg.norm(ref.reshape(cfg.seq_len, -1), axis=1), rtol=RTOL)


# ----------------------------------------------------------------------------------------------------------------------
# the truncation gap against torch.nn.RNN with and without detaching

@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("cfg", SMALL[:2], ids=IDS[:2])
def test_truncation_gap_matches_torch_rnn(cfg, K):
    p, tr = _run(cfg.replace(truncate=K))
    gap = flow.truncation_gap(p, tr)
    assert gap is not None and gap.truncate == K
    trunc = torch_rnn_reference(p).gradients
    full = torch_rnn_reference(dataclasses.replace(p, config=p.config.replace(truncate=0))).gradients
    for k in trunc:
        ref_diff = trunc[k] - full[k]
        scale = np.abs(full[k]).max()
        np.testing.assert_allclose(gap.full[k], full[k], rtol=0, atol=RTOL * scale)
        np.testing.assert_allclose(gap.diff[k], ref_diff, rtol=0, atol=RTOL * scale)
        assert gap.rel_err[k] == pytest.approx(np.linalg.norm(ref_diff) / np.linalg.norm(full[k]), rel=1e-8, abs=1e-12)
    assert max(gap.rel_err.values()) > 1e-6                             # truncation costs something here


def test_truncation_gap_is_none_for_full_bptt_and_zero_when_K_covers_T():
    p, tr = _run(SMALL[0])
    assert flow.truncation_gap(p, tr) is None
    p, tr = _run(SMALL[0].replace(truncate=SMALL[0].seq_len))
    gap = flow.truncation_gap(p, tr)
    assert all(v == 0.0 for v in gap.rel_err.values())


def test_flow_report_bundles_everything():
    p, tr = _run(SMALL[0].replace(truncate=2))
    r = flow.flow_report(p, tr, b=1, sweep=False)
    assert r.jacobian.b == 1 and r.sweep is None and r.gap is not None
    assert r.grad_norms.per_t.shape == (SMALL[0].seq_len,)
