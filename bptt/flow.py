"""Gradient flow: how dL/dh_t shrinks or grows back through time, and why (Jacobians, W_hh's spectrum, saturation).

Pure NumPy, computed from a Problem and the engine's Trace. Time is 0-based here, as everywhere in the package.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .config import FIELDS, RNNConfig
from .engine import GRADIENTS, Trace, activation_derivative, run_engine
from .problem import Problem, draw_problem

# |f'(a)| below this counts as a saturated tanh unit; a relu unit is saturated ("dead") where f'(a) == 0
TANH_SATURATION = 0.05
SWEEP_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


# ----------------------------------------------------------------------------------------------------------------------
# norms of dL/dh_t

@dataclass(frozen=True)
class GradNorms:
    """‖dL/dh_t‖ for every t: over the whole batch (Frobenius over (B, H)) and per batch element (over H)."""
    per_t: np.ndarray      # (T,)
    per_batch: np.ndarray  # (T, B)


def gradient_norms(trace: Trace) -> GradNorms:
    """The norms of dh_total (= dL/dh_t, what reaches h_t from its output and from step t+1)."""
    with np.errstate(all="ignore"):
        per_batch = np.linalg.norm(trace.dh_total, axis=2)             # (T, B)
        per_t = np.linalg.norm(trace.dh_total.reshape(trace.dh_total.shape[0], -1), axis=1)  # (T,)
    return GradNorms(per_t, per_batch)


# ----------------------------------------------------------------------------------------------------------------------
# Jacobian products ∂h_t/∂h_s

@dataclass(frozen=True)
class JacobianNorms:
    """Spectral norms of ∂h_t/∂h_s = ∏_{k=s+1..t} diag(f'(a_k)) W_hh for t = T-1 and s = T-2 ... -1 (h0 is s = -1)."""
    t: int                 # the last step, T-1
    b: int                 # the batch element whose f'(a_k) is used
    distance: np.ndarray   # (T,) t - s = 1 ... T
    norms: np.ndarray      # (T,) ‖∂h_t/∂h_{t-d}‖₂; inf/nan once the product overflows


def jacobian_norms(problem: Problem, trace: Trace, b: int = 0) -> JacobianNorms:
    """Multiply the step Jacobians from the last step backwards, taking the norm of each product inside the loop."""
    cfg = problem.config
    T, B, H = trace.h.shape
    if not 0 <= b < B:
        raise ValueError(f"batch element b must be an integer in 0..{B - 1}, got {b}")
    fprime = activation_derivative(cfg, trace.a[:, b], trace.h[:, b])   # (T, H), the true f', whatever the bug
    W = problem.W_hh                                                    # (H, H)
    norms = np.empty(T)
    J = np.eye(H)                                                       # ∂h_t/∂h_t
    finite = True
    with np.errstate(all="ignore"):
        for d in range(1, T + 1):
            k = T - d                                                   # the step whose Jacobian joins the product
            if finite:
                J = (J * fprime[k][None, :]) @ W                        # J ← J · diag(f'(a_k)) · W_hh, (H, H)
                finite = bool(np.isfinite(J).all())
            if finite:
                norms[d - 1] = np.linalg.norm(J, 2)
            else:
                norms[d - 1] = np.nan if np.isnan(J).any() else np.inf
    return JacobianNorms(T - 1, b, np.arange(1, T + 1), norms)


# ----------------------------------------------------------------------------------------------------------------------
# the spectrum of W_hh

@dataclass(frozen=True)
class Spectrum:
    """Singular values (descending) and eigenvalues of W_hh; the spectral radius is the largest |eigenvalue|."""
    singular_values: np.ndarray   # (H,)
    eigenvalues: np.ndarray       # (H,) complex
    spectral_radius: float

    @property
    def spectral_norm(self) -> float:
        return float(self.singular_values[0])


def spectrum(W_hh: np.ndarray) -> Spectrum:
    """The singular values and eigenvalues of the recurrent weight matrix."""
    eig = np.linalg.eigvals(W_hh)
    return Spectrum(np.linalg.svd(W_hh, compute_uv=False), eig, float(np.abs(eig).max()))


# ----------------------------------------------------------------------------------------------------------------------
# saturation

@dataclass(frozen=True)
class Saturation:
    """f'(a_t) averaged over the batch, and the fraction of saturated units (over batch and units) per t."""
    fprime_mean: np.ndarray   # (T, H)
    fraction: np.ndarray      # (T,)
    rule: str                 # in words: when a unit counts as saturated


def saturation(config: RNNConfig, trace: Trace) -> Saturation:
    """How much each unit lets the gradient through: f'(a_t) = 1 - h_t² (tanh) or [a_t > 0] (relu)."""
    fprime = activation_derivative(config, trace.a, trace.h)            # (T, B, H)
    if config.nonlinearity == "tanh":
        saturated, rule = np.abs(fprime) < TANH_SATURATION, f"|f'(a)| < {TANH_SATURATION:g}"
    else:
        saturated, rule = fprime == 0, "f'(a) = 0 (a ≤ 0, a dead relu)"
    return Saturation(fprime.mean(axis=1), saturated.mean(axis=(1, 2)), rule)


# ----------------------------------------------------------------------------------------------------------------------
# a sweep over hh_scale

@dataclass(frozen=True)
class HHSweep:
    """‖dL/dh_t‖ per t for several hh_scale values; full BPTT with no bug, so it shows the true gradient."""
    scales: tuple[float, ...]
    norms: np.ndarray          # (S, T)


def sweep_scales(config: RNNConfig, scales: tuple[float, ...] = SWEEP_SCALES) -> tuple[float, ...]:
    """The scales clipped to hh_scale's bounds, with the config's own scale added; sorted, without repeats."""
    f = FIELDS["hh_scale"]
    clipped = {float(min(max(s, f.lo), f.hi)) for s in (*scales, config.hh_scale)}
    return tuple(sorted(clipped))


def hh_sweep(config: RNNConfig, scales: tuple[float, ...] = SWEEP_SCALES) -> HHSweep:
    """Draw the problem and run the engine (only) once per scale; every other field is the config's."""
    use = sweep_scales(config, scales)
    rows = []
    for s in use:
        trace = run_engine(draw_problem(config.replace(hh_scale=s, truncate=0, bug="none")))
        rows.append(gradient_norms(trace).per_t)
    return HHSweep(use, np.stack(rows))


# ----------------------------------------------------------------------------------------------------------------------
# truncation gap

@dataclass(frozen=True)
class TruncationGap:
    """How far the truncated gradient of each weight is from full BPTT's (same problem, same bug, truncate = 0)."""
    truncate: int
    full: dict[str, np.ndarray]       # dW_ih, dW_hh, db_ih, db_hh of full BPTT
    diff: dict[str, np.ndarray]       # truncated - full, same shapes
    rel_err: dict[str, float]         # ‖truncated - full‖ / ‖full‖ (Frobenius)


def truncation_gap(problem: Problem, trace: Trace) -> TruncationGap | None:
    """None for full BPTT; otherwise rerun the engine on the same problem with truncate = 0 and compare."""
    cfg = problem.config
    if cfg.truncate == 0:
        return None
    full_trace = run_engine(dataclasses.replace(problem, config=cfg.replace(truncate=0)))
    full, trunc = full_trace.gradients, trace.gradients
    diff, rel = {}, {}
    with np.errstate(all="ignore"):
        for k in GRADIENTS:
            diff[k] = trunc[k] - full[k]
            denom = np.linalg.norm(full[k])
            num = np.linalg.norm(diff[k])
            rel[k] = float(num / denom) if denom > 0 else (0.0 if num == 0 else float("inf"))
    return TruncationGap(cfg.truncate, full, diff, rel)


# ----------------------------------------------------------------------------------------------------------------------
# everything at once

@dataclass(frozen=True)
class FlowReport:
    """Every gradient-flow number for one config."""
    config: RNNConfig
    grad_norms: GradNorms
    jacobian: JacobianNorms
    spectrum: Spectrum
    saturation: Saturation
    sweep: HHSweep | None
    gap: TruncationGap | None


def flow_report(problem: Problem, trace: Trace, b: int = 0, sweep: bool = True) -> FlowReport:
    """The gradient-flow numbers of an engine run (e.g. an Analysis's problem and engine)."""
    cfg = problem.config
    return FlowReport(
        config=cfg,
        grad_norms=gradient_norms(trace),
        jacobian=jacobian_norms(problem, trace, b),
        spectrum=spectrum(problem.W_hh),
        saturation=saturation(cfg, trace),
        sweep=hh_sweep(cfg) if sweep else None,
        gap=truncation_gap(problem, trace),
    )


# ----------------------------------------------------------------------------------------------------------------------
# the report as JSON and text (python -m bptt flow prints these)

def _num(v: float) -> float | str:
    """A float for JSON; inf and nan as strings, as `verify --json` writes them."""
    v = float(v)
    return v if np.isfinite(v) else str(v)


def report_json(r: FlowReport) -> dict:
    """The report as JSON-ready data; every t is 0-based."""
    nums = lambda a: [_num(v) for v in np.asarray(a).ravel()]  # noqa: E731
    return {
        "config": r.config.to_dict(),
        "grad_norms": {"t": list(range(len(r.grad_norms.per_t))), "norm": nums(r.grad_norms.per_t),
                       "per_batch": [nums(row) for row in r.grad_norms.per_batch]},
        "jacobian": {"t": r.jacobian.t, "b": r.jacobian.b, "distance": r.jacobian.distance.tolist(),
                     "norm": nums(r.jacobian.norms)},
        "spectral_radius": _num(r.spectrum.spectral_radius),
        "singular_values": nums(r.spectrum.singular_values),
        "saturation": {"rule": r.saturation.rule, "fraction": nums(r.saturation.fraction)},
        "hh_sweep": None if r.sweep is None else {"scales": list(r.sweep.scales),
                                                  "norm": [nums(row) for row in r.sweep.norms]},
        "truncation_gap": None if r.gap is None else {k: _num(v) for k, v in r.gap.rel_err.items()},
    }


def report_text(r: FlowReport) -> str:
    """The report as a few plain tables; t is 1-based here."""
    T = len(r.grad_norms.per_t)
    cfg = r.config
    out = ["BPTT Explorer flow: " + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()),
           "time is counted from 1 here (t = 1..T); --json uses 0-based t", "",
           f"‖dL/dh_t‖ (dh_total, over the batch) and saturated units ({r.saturation.rule}):",
           f"{'t':>5}{'‖dL/dh_t‖':>14}{'saturated':>12}"]
    out += [f"{t + 1:>5}{r.grad_norms.per_t[t]:>14.3e}{r.saturation.fraction[t]:>12.0%}" for t in range(T)]
    out += ["", f"‖∂h_T/∂h_s‖₂ against the distance T − s (T = {T}, batch element b = {r.jacobian.b}; s = 0 is h0):",
            f"{'T − s':>7}{'norm':>14}"]
    out += [f"{d:>7}{n:>14.3e}" for d, n in zip(r.jacobian.distance, r.jacobian.norms)]
    sv = r.spectrum.singular_values
    shown = " ".join(f"{v:.4g}" for v in sv[:16]) + (f" … ({len(sv)} in all)" if len(sv) > 16 else "")
    out += ["", f"W_hh: spectral radius {r.spectrum.spectral_radius:.4g}, spectral norm {sv[0]:.4g}",
            f"singular values: {shown}"]
    if r.sweep is not None:
        out += ["", "hh_scale sweep, ‖dL/dh_t‖ at t = 1 and t = T (full BPTT, no bug):"]
        out += [f"  hh_scale {s:<6g} {row[0]:>12.3e} {row[-1]:>12.3e}" for s, row in zip(r.sweep.scales, r.sweep.norms)]
    if r.gap is not None:
        out += ["", f"truncation gap (truncate = {r.gap.truncate}): ‖g_truncated − g_full‖ / ‖g_full‖"]
        out += [f"  {k:<7}{v:.3e}" for k, v in r.gap.rel_err.items()]
    return "\n".join(out)
