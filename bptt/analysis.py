"""One config in, every number out: the engine, the hand-written operator, both references and their comparison."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from .autograd_op import OpResult, run_op
from .compare import comparison_table, first_divergence, per_step_rows, whole_rows
from .config import RNNConfig
from .engine import Trace, run_engine
from .problem import Problem, draw_problem
from .reference import TorchRNNResult, torch_rnn_reference, unrolled_reference


@dataclass(frozen=True)
class Analysis:
    """Everything the app, the CLI and the exports show for one config. Read-only."""
    config: RNNConfig
    problem: Problem
    engine: Trace                 # the NumPy engine (makes config.bug on purpose)
    unrolled: Trace               # reference (b): the unrolled autograd graph
    torch_rnn: TorchRNNResult     # reference (a): torch.nn.RNN
    op: OpResult                  # the hand-written torch.autograd.Function
    table: pd.DataFrame           # compare.COLUMNS, one row per (quantity, t, implementation, reference)

    @cached_property
    def first_divergence(self) -> dict | None:
        """{"quantity", "t"} (t 0-based) of the first per-step disagreement of the engine, or None."""
        return first_divergence(self.table)

    @property
    def all_passed(self) -> bool:
        return bool(self.table["passed"].all())

    @property
    def worst_rel_err(self) -> float:
        return float(self.table["max_rel_err"].max())

    @property
    def any_nonfinite(self) -> bool:
        return bool(self.table["nonfinite"].sum() > 0)

    def step_rows(self, t: int) -> pd.DataFrame:
        """The comparison rows of timestep t (0-based), engine against the unrolled reference."""
        tab = self.table
        return tab[(tab["t"] == t) & (tab["implementation"] == "numpy engine")].reset_index(drop=True)


def analyze(config: RNNConfig) -> Analysis:
    """Draw the problem and run the engine, the operator and both references on it."""
    p = draw_problem(config)
    engine = run_engine(p)
    unrolled = unrolled_reference(p)
    torch_rnn = torch_rnn_reference(p)
    op = run_op(p)
    # the engine's backward replayed on the reference's forward values: the rounding floor (compare.FLOOR_FACTOR);
    # relu's f' is exact, so only tanh needs it
    replay = run_engine(p, (unrolled.a, unrolled.h)) if config.nonlinearity == "tanh" else None
    table = comparison_table([
        *per_step_rows(engine, unrolled, replay=replay),
        *whole_rows("numpy engine", engine, "torch.nn.RNN", torch_rnn, replay=replay),
        *whole_rows("torch operator", op, "torch.nn.RNN", torch_rnn),
        *whole_rows("unrolled autograd", unrolled, "torch.nn.RNN", torch_rnn),
    ])
    return Analysis(config, p, engine, unrolled, torch_rnn, op, table)
