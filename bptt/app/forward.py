"""The Forward pass page: the step viewer (t = 1 … T in the browser), each h_t beside torch.nn.RNN's."""
from __future__ import annotations

from . import stepper


def step_view() -> None:
    """Every forward step, stepped in the browser."""
    stepper.viewer("forward")
