"""Gradient flow: how dL/dh_t shrinks or grows back through time, and why (Jacobians, W_hh's spectrum, saturation),
for every cell: the vanilla RNN, the LSTM (whose cell state c_t carries the gradient through the forget gates) and the
GRU, side by side on the same problem.

Pure NumPy, computed from a Problem and the engine's Trace. Time is 0-based here, as everywhere in the package.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .cells import CELLS
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


def gradient_norms(trace: Trace, name: str = "dh_total") -> GradNorms:
    """The norms of dh_total (= dL/dh_t, what reaches h_t from its output and from step t+1), or of another (T, B, H)
    gradient of the trace, e.g. the LSTM's dc_total (= dL/dc_t)."""
    g = getattr(trace, name)                                             # (T, B, H)
    with np.errstate(all="ignore"):
        per_batch = np.linalg.norm(g, axis=2)                            # (T, B)
        per_t = np.linalg.norm(g.reshape(g.shape[0], -1), axis=1)        # (T,)
    return GradNorms(per_t, per_batch)


def cell_state_norms(trace: Trace) -> GradNorms | None:
    """‖dL/dc_t‖ (dc_total) for a cell with a cell state (the LSTM), else None."""
    return gradient_norms(trace, "dc_total") if "c" in trace.cell.states else None


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
    norms: np.ndarray              # (S, T)
    c_norms: np.ndarray | None = None   # (S, T) ‖dL/dc_t‖, for a cell with a cell state (the LSTM)


def sweep_scales(config: RNNConfig, scales: tuple[float, ...] = SWEEP_SCALES) -> tuple[float, ...]:
    """The scales clipped to hh_scale's bounds, with the config's own scale added; sorted, without repeats."""
    f = FIELDS["hh_scale"]
    clipped = {float(min(max(s, f.lo), f.hi)) for s in (*scales, config.hh_scale)}
    return tuple(sorted(clipped))


def hh_sweep(config: RNNConfig, scales: tuple[float, ...] = SWEEP_SCALES) -> HHSweep:
    """Draw the problem and run the engine (only) once per scale; every other field is the config's."""
    use = sweep_scales(config, scales)
    rows, c_rows = [], []
    for s in use:
        trace = run_engine(draw_problem(config.replace(hh_scale=s, truncate=0, bug="none")))
        rows.append(gradient_norms(trace).per_t)
        c = cell_state_norms(trace)
        if c is not None:
            c_rows.append(c.per_t)
    return HHSweep(use, np.stack(rows), np.stack(c_rows) if c_rows else None)


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
# the three cells on the same problem

TRUNCATIONS = (1, 2, 5, 10, 25)   # K of the truncation gap of every cell (those below T, and the config's own K)


def same_problem(config: RNNConfig, cell: str) -> RNNConfig:
    """The config with another cell: the same sizes, seed, upstream and hh_scale, full BPTT and no bug; the vanilla
    RNN keeps the config's nonlinearity (the gated cells have their own)."""
    return config.replace(cell=cell, nonlinearity=config.nonlinearity if cell == "rnn" else "tanh", bug="none",
                          truncate=0)


def keep_ratio(trace: Trace, name: str = "dh_total") -> float:
    """‖g_1‖ / ‖g_T‖ of a (T, B, H) gradient (over the batch): how much of what reaches step T is left at step 1."""
    n = gradient_norms(trace, name).per_t
    with np.errstate(all="ignore"):
        return float(n[0] / n[-1]) if n[-1] > 0 else float("nan")


def gate_product(trace: Trace, gate: str, b: int = 0) -> np.ndarray:
    """(T,) for the distance d = 1..T: the product of a gate along the path from step T-1 back to T-1-d, mean over
    the H units of batch element b: ∏_{k=T-d}^{T-1} f_k for the LSTM's forget gate (∂c_{T-1}/∂c_{T-1-d} along the cell
    path alone is diag of it; d = T reaches c0), likewise z for the GRU's direct path h_{t-1} → h_t."""
    g = getattr(trace, gate)[:, b]                                       # (T, H)
    return np.cumprod(g[::-1], axis=0).mean(axis=1)                      # row d-1: steps T-d .. T-1


def gradient_gap(truncated: dict[str, np.ndarray], full: dict[str, np.ndarray]) -> float:
    """‖g_truncated − g_full‖ / ‖g_full‖ over all four weight gradients together."""
    num = np.sqrt(sum(float(np.sum((truncated[k] - full[k]) ** 2)) for k in GRADIENTS))
    den = np.sqrt(sum(float(np.sum(full[k] ** 2)) for k in GRADIENTS))
    return num / den if den > 0 else (0.0 if num == 0 else float("inf"))


@dataclass(frozen=True)
class CellComparison:
    """The vanilla RNN, the LSTM and the GRU on the same problem (same sizes, seed, upstream; full BPTT, no bug).

    keep: with the gradient at the last step only (upstream "last") and the config's hh_scale, the share of what
    arrives at step T that is left at step 1: "rnn" and "gru" ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖, "lstm" ‖∂L/∂c_1‖ / ‖∂L/∂c_T‖
    (the cell path), "lstm_h" the LSTM's ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖."""
    config: RNNConfig
    b: int                                  # the batch element of the gate products and the RNN's Jacobian
    scales: tuple[float, ...]
    h_norms: dict[str, np.ndarray]          # cell -> (S, T) ‖∂L/∂h_t‖ under each hh_scale
    c_norms: np.ndarray                     # (S, T) the LSTM's ‖∂L/∂c_t‖
    keep: dict[str, float]
    forget_product: np.ndarray              # (T,) mean over units of ∏ f along the LSTM's cell path, d = 1..T
    update_product: np.ndarray              # (T,) mean over units of ∏ z along the GRU's direct path, d = 1..T
    rnn_jacobian: np.ndarray                # (T,) the vanilla RNN's ‖∂h_T/∂h_{T-d}‖₂, d = 1..T
    truncations: tuple[int, ...]            # K below T (and the config's own)
    gap: dict[str, np.ndarray]              # cell -> (len(truncations),) the truncation gap of all four gradients
    mean_forget: float                      # the LSTM's forget gate f_t, mean over t, batch and units

    def sentence(self) -> str:
        """The numbers behind "the LSTM keeps the gradient", in one sentence (t 1-based)."""
        T, k = self.config.seq_len, self.keep
        pct = lambda v: f"{100 * v:.3g}%" if np.isfinite(v) else str(v)  # noqa: E731
        with np.errstate(all="ignore"):
            times = k["lstm"] / k["rnn"]
        times_s = f"{times:,.0f}" if np.isfinite(times) and times >= 10 else f"{times:.2g}"
        than = f" ({times_s}× the RNN's share)" if np.isfinite(times) and times > 0 else ""
        return (f"With the gradient arriving at t = {T} only, at t = 1 the LSTM's cell state still gets "
                f"{pct(k['lstm'])} of the gradient that reaches c_{T}{than}; the vanilla RNN's h_1 gets "
                f"{pct(k['rnn'])} of what reaches h_{T}, the GRU's {pct(k['gru'])} and the LSTM's own h_1 "
                f"{pct(k['lstm_h'])}.")


def compare_cells(config: RNNConfig, b: int = 0, scales: tuple[float, ...] = SWEEP_SCALES) -> CellComparison:
    """Run every cell on the config's problem: under the hh_scale sweep, with the gradient at the last step only, and
    truncated at each K of TRUNCATIONS below T."""
    if not 0 <= b < config.batch_size:
        raise ValueError(f"batch element b must be an integer in 0..{config.batch_size - 1}, got {b}")
    use = sweep_scales(config, scales)
    Ks = tuple(sorted({K for K in (*TRUNCATIONS, config.truncate) if 0 < K < config.seq_len}))
    h_norms, keep, gap, here = {}, {}, {}, {}
    c_norms = None
    for name in CELLS:
        cfg = same_problem(config, name)
        rows, c_rows = [], []
        for s in use:
            problem = draw_problem(cfg.replace(hh_scale=s))
            trace = run_engine(problem)
            rows.append(gradient_norms(trace).per_t)
            c = cell_state_norms(trace)
            if c is not None:
                c_rows.append(c.per_t)
            if np.isclose(s, config.hh_scale):
                here[name] = (problem, trace)
        h_norms[name] = np.stack(rows)
        if c_rows:
            c_norms = np.stack(c_rows)
        problem, trace = here[name]
        last = trace if config.upstream == "last" else run_engine(draw_problem(problem.config.replace(upstream="last")))
        keep[name] = keep_ratio(last, "dc_total" if name == "lstm" else "dh_total")
        if name == "lstm":
            keep["lstm_h"] = keep_ratio(last)
        full = trace.gradients
        gap[name] = np.array([gradient_gap(run_engine(dataclasses.replace(
            problem, config=problem.config.replace(truncate=K))).gradients, full) for K in Ks])
    rnn_problem, rnn_trace = here["rnn"]
    return CellComparison(config, b, use, h_norms, c_norms, keep, gate_product(here["lstm"][1], "f", b),
                          gate_product(here["gru"][1], "z", b), jacobian_norms(rnn_problem, rnn_trace, b).norms, Ks,
                          gap, float(here["lstm"][1].f.mean()))


# ----------------------------------------------------------------------------------------------------------------------
# everything at once

@dataclass(frozen=True)
class FlowReport:
    """Every gradient-flow number for one config. The Jacobian product, W_hh's spectrum and saturation are the
    vanilla RNN's (None for the gated cells, whose W_hh stacks gate blocks); `cells` compares all three cells."""
    config: RNNConfig
    grad_norms: GradNorms
    cell_norms: GradNorms | None          # ‖∂L/∂c_t‖, the LSTM's
    jacobian: JacobianNorms | None
    spectrum: Spectrum | None
    saturation: Saturation | None
    sweep: HHSweep | None
    gap: TruncationGap | None
    cells: CellComparison | None = None


def flow_report(problem: Problem, trace: Trace, b: int = 0, sweep: bool = True) -> FlowReport:
    """The gradient-flow numbers of an engine run (e.g. an Analysis's problem and engine); sweep=False leaves out the
    work on other problems (the hh_scale sweep and the comparison of the cells)."""
    cfg = problem.config
    rnn = cfg.cell == "rnn"
    cells = compare_cells(cfg, b) if sweep else None
    swept = None if cells is None else HHSweep(cells.scales, cells.h_norms[cfg.cell],   # the same runs as hh_sweep's
                                               cells.c_norms if cell_state_norms(trace) is not None else None)
    return FlowReport(
        config=cfg,
        grad_norms=gradient_norms(trace),
        cell_norms=cell_state_norms(trace),
        jacobian=jacobian_norms(problem, trace, b) if rnn else None,
        spectrum=spectrum(problem.W_hh) if rnn else None,
        saturation=saturation(cfg, trace) if rnn else None,
        sweep=swept,
        gap=truncation_gap(problem, trace),
        cells=cells,
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
    rows = lambda a: None if a is None else [nums(row) for row in a]  # noqa: E731
    norms = lambda g: None if g is None else {"t": list(range(len(g.per_t))), "norm": nums(g.per_t),  # noqa: E731
                                              "per_batch": rows(g.per_batch)}
    c = r.cells
    return {
        "config": r.config.to_dict(),
        "grad_norms": norms(r.grad_norms),
        "cell_grad_norms": norms(r.cell_norms),
        "jacobian": None if r.jacobian is None else {
            "t": r.jacobian.t, "b": r.jacobian.b, "distance": r.jacobian.distance.tolist(),
            "norm": nums(r.jacobian.norms)},
        "spectral_radius": None if r.spectrum is None else _num(r.spectrum.spectral_radius),
        "singular_values": None if r.spectrum is None else nums(r.spectrum.singular_values),
        "saturation": None if r.saturation is None else {"rule": r.saturation.rule,
                                                         "fraction": nums(r.saturation.fraction)},
        "hh_sweep": None if r.sweep is None else {"scales": list(r.sweep.scales), "norm": rows(r.sweep.norms),
                                                  "cell_norm": rows(r.sweep.c_norms)},
        "truncation_gap": None if r.gap is None else {k: _num(v) for k, v in r.gap.rel_err.items()},
        "cells": None if c is None else {
            "scales": list(c.scales), "h_norm": {k: rows(v) for k, v in c.h_norms.items()},
            "lstm_c_norm": rows(c.c_norms), "keep": {k: _num(v) for k, v in c.keep.items()}, "b": c.b,
            "distance": list(range(1, len(c.forget_product) + 1)), "lstm_forget_product": nums(c.forget_product),
            "gru_update_product": nums(c.update_product), "rnn_jacobian": nums(c.rnn_jacobian),
            "truncate": list(c.truncations), "truncation_gap": {k: nums(v) for k, v in c.gap.items()}},
    }


def report_text(r: FlowReport) -> str:
    """The report as a few plain tables; t is 1-based here."""
    T = len(r.grad_norms.per_t)
    cfg = r.config
    out = ["BPTT Explorer flow: " + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items()),
           "time is counted from 1 here (t = 1..T); --json uses 0-based t", "",
           "‖dL/dh_t‖ (dh_total, over the batch)" + (" and ‖dL/dc_t‖ (dc_total)" if r.cell_norms is not None else "")
           + (f" and saturated units ({r.saturation.rule})" if r.saturation is not None else "") + ":",
           f"{'t':>5}{'‖dL/dh_t‖':>14}" + (f"{'‖dL/dc_t‖':>14}" if r.cell_norms is not None else "")
           + (f"{'saturated':>12}" if r.saturation is not None else "")]
    out += [f"{t + 1:>5}{r.grad_norms.per_t[t]:>14.3e}"
            + (f"{r.cell_norms.per_t[t]:>14.3e}" if r.cell_norms is not None else "")
            + (f"{r.saturation.fraction[t]:>12.0%}" if r.saturation is not None else "") for t in range(T)]
    if r.jacobian is not None:
        out += ["", f"‖∂h_T/∂h_s‖₂ against the distance T − s (T = {T}, batch element b = {r.jacobian.b}; "
                    f"s = 0 is h0):", f"{'T − s':>7}{'norm':>14}"]
        out += [f"{d:>7}{n:>14.3e}" for d, n in zip(r.jacobian.distance, r.jacobian.norms)]
    if r.spectrum is not None:
        sv = r.spectrum.singular_values
        shown = " ".join(f"{v:.4g}" for v in sv[:16]) + (f" … ({len(sv)} in all)" if len(sv) > 16 else "")
        out += ["", f"W_hh: spectral radius {r.spectrum.spectral_radius:.4g}, spectral norm {sv[0]:.4g}",
                f"singular values: {shown}"]
    if r.sweep is not None:
        out += ["", "hh_scale sweep, ‖dL/dh_t‖ at t = 1 and t = T (full BPTT, no bug):"]
        out += [f"  hh_scale {s:<6g} {row[0]:>12.3e} {row[-1]:>12.3e}" for s, row in zip(r.sweep.scales, r.sweep.norms)]
        if r.sweep.c_norms is not None:
            out += ["‖dL/dc_t‖ at t = 1 and t = T:"]
            out += [f"  hh_scale {s:<6g} {row[0]:>12.3e} {row[-1]:>12.3e}"
                    for s, row in zip(r.sweep.scales, r.sweep.c_norms)]
    if r.gap is not None:
        out += ["", f"truncation gap (truncate = {r.gap.truncate}): ‖g_truncated − g_full‖ / ‖g_full‖"]
        out += [f"  {k:<7}{v:.3e}" for k, v in r.gap.rel_err.items()]
    c = r.cells
    if c is not None:
        out += ["", "the three cells on this problem (same sizes and seed; full BPTT, no bug):", c.sentence(), "",
                f"along the paths back from step T (batch element b = {c.b}, mean over units):",
                f"{'T − s':>7}{'LSTM ∏ f':>14}{'GRU ∏ z':>14}{'RNN ‖∂h_T/∂h_s‖₂':>20}"]
        out += [f"{d + 1:>7}{fp:>14.3e}{zp:>14.3e}{j:>20.3e}"
                for d, (fp, zp, j) in enumerate(zip(c.forget_product, c.update_product, c.rnn_jacobian))]
        if c.truncations:
            out += ["", "each cell truncated every K steps: ‖g_K − g_full‖ / ‖g_full‖ over all four weight gradients:",
                    f"{'K':>5}" + "".join(f"{CELLS[k].title:>14}" for k in c.gap)]
            out += [f"{K:>5}" + "".join(f"{c.gap[k][i]:>14.3e}" for k in c.gap) for i, K in enumerate(c.truncations)]
    return "\n".join(out)
