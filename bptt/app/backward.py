"""The Backward pass page: the step viewer (BPTT, t = T … 1, in the browser), the bug note, the FD spot check."""
from __future__ import annotations

from ..analysis import Analysis
from ..engine import carry_cut
from . import flow_panels, stepper
from .state import current_step


def t_of(k: int, T: int) -> int:
    """The 0-based timestep of backward step k (1..T): step 1 is t = T-1."""
    return T - k


def cuts(analysis: Analysis) -> list[int]:
    """0-based t where truncated BPTT cuts the carry from step t to t-1."""
    cfg = analysis.config
    return [t for t in range(cfg.seq_len) if carry_cut(t, cfg.truncate)]


def step_view(analysis: Analysis) -> None:
    """Every backward step, stepped in the browser; then what a buggy engine computes instead, and the FD check."""
    stepper.viewer("backward")
    flow_panels.bug_equation_note(analysis)
    cell = stepper.clicked_cell()
    if cell is not None:
        flow_panels.select_cell(analysis, cell)
    flow_panels.fd_spot_check(analysis, t_of(current_step(), analysis.config.seq_len))
