"""Finite-difference spot check: one weight's gradient estimated by perturbing it and rerunning the forward pass."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .cells import WEIGHTS
from .engine import Totals, Trace, hidden_states, run_engine
from .problem import Problem
from .reference import torch_rnn_reference

FD_EPS = 1e-6


@dataclass(frozen=True)
class FDCheck:
    """dL/dW[index] three ways. L = sum(dh_out ⊙ h), so the estimate is the TRUE gradient of L, whatever the config's
    truncate or bug; the engine's and torch.nn.RNN's values follow the config (truncated BPTT is not the true gradient,
    and a bug makes the engine wrong). `torch_full` is torch.nn.RNN without truncation: the exact true gradient."""
    weight: str                 # "W_ih", "W_hh", "b_ih" or "b_hh"
    index: tuple[int, ...]      # (j, i) / (j, k) for a matrix, (j,) for a bias
    eps: float
    estimate: float             # central difference (L(w + eps) - L(w - eps)) / (2 eps)
    engine: float               # the NumPy engine's full gradient at index (with the config's truncate and bug)
    torch_rnn: float            # torch.nn.RNN's gradient at index (with the config's truncate)
    torch_full: float           # torch.nn.RNN's gradient at index with truncate = 0
    exact: bool                 # whether the engine is meant to give the true gradient (truncate = 0, no bug)

    def rel_err(self, value: float) -> float:
        """|value - estimate| / max(|estimate|, tiny)."""
        return abs(value - self.estimate) / max(abs(self.estimate), 1e-300)


def check_index(problem: Problem, weight: str, index: tuple[int, ...] | int) -> tuple[int, ...]:
    """The index as a tuple inside the weight's shape, or ValueError naming what is allowed."""
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {', '.join(WEIGHTS)}, got {weight!r}")
    shape = problem.weights[weight].shape
    idx = (index,) if isinstance(index, (int, np.integer)) else tuple(index)
    if len(idx) != len(shape) or not all(isinstance(i, (int, np.integer)) and 0 <= i < n for i, n in zip(idx, shape)):
        allowed = " × ".join(f"0..{n - 1}" for n in shape)
        raise ValueError(f"index into {weight} must be in {allowed}, got {index!r}")
    return tuple(int(i) for i in idx)


def _perturbed_h(problem: Problem, weight: str, idx: tuple[int, ...], delta: float) -> np.ndarray:
    w = problem.weights[weight].copy()
    w[idx] += delta
    return hidden_states(dataclasses.replace(problem, **{weight: w}))      # (T, B, H)


def fd_estimate(problem: Problem, weight: str, index: tuple[int, ...] | int, eps: float = FD_EPS) -> float:
    """Central difference of L = sum(dh_out ⊙ h), float64; h is differenced before the sum (less round-off)."""
    idx = check_index(problem, weight, index)
    with np.errstate(all="ignore"):
        dh = _perturbed_h(problem, weight, idx, eps) - _perturbed_h(problem, weight, idx, -eps)
        return float((problem.dh_out * dh).sum() / (2 * eps))


def fd_check(problem: Problem, weight: str, index: tuple[int, ...] | int, eps: float = FD_EPS,
             engine: Trace | None = None, torch_rnn: Totals | None = None) -> FDCheck:
    """The estimate beside the engine's and torch.nn.RNN's gradient; pass engine/torch_rnn to reuse computed runs."""
    cfg = problem.config
    idx = check_index(problem, weight, index)
    engine = engine if engine is not None else run_engine(problem)
    torch_rnn = torch_rnn if torch_rnn is not None else torch_rnn_reference(problem)
    if cfg.truncate == 0:
        torch_full = torch_rnn
    else:
        torch_full = torch_rnn_reference(dataclasses.replace(problem, config=cfg.replace(truncate=0)))
    g = "d" + weight
    return FDCheck(weight, idx, eps, fd_estimate(problem, weight, idx, eps), float(engine.gradients[g][idx]),
                   float(torch_rnn.gradients[g][idx]), float(torch_full.gradients[g][idx]),
                   cfg.truncate == 0 and cfg.bug == "none")
