"""The defaults reproduce the worked example: its check program, followed literally with torch autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bptt.config import RNNConfig
from bptt.engine import run_engine
from bptt.problem import draw_problem


@pytest.fixture(scope="module")
def exercise() -> dict[str, np.ndarray]:
    """/work/shared/seed-example.md steps 1-4, as the exercise's program did them; no numbers pasted."""
    np.random.seed(123)                                   # 1. numpy's global generator, then torch's
    torch.manual_seed(123)
    rnn = torch.nn.RNN(input_size=4, hidden_size=5)       # 2. built, then converted
    rnn = rnn.double()
    x = np.random.random((3, 3, 4))                       # 3. x (seq_len, batch, input)
    h0 = np.random.random((1, 3, 5))                      #    h0 (1, batch, hidden)
    dh = np.random.random((3, 3, 5))                      #    the upstream gradient of every h_t
    xt = torch.tensor(x, requires_grad=True)
    output, _ = rnn(xt, torch.tensor(h0))                 # 4. all h_t, then backward with dh
    output.backward(torch.tensor(dh))
    return {
        "x": x, "h0": h0[0], "dh_out": dh,
        "W_ih": rnn.weight_ih_l0.detach().numpy(), "W_hh": rnn.weight_hh_l0.detach().numpy(),
        "b_ih": rnn.bias_ih_l0.detach().numpy(), "b_hh": rnn.bias_hh_l0.detach().numpy(),
        "h": output.detach().numpy(), "dx": xt.grad.numpy(),
        "dW_ih": rnn.weight_ih_l0.grad.numpy(), "dW_hh": rnn.weight_hh_l0.grad.numpy(),
        "db_ih": rnn.bias_ih_l0.grad.numpy(), "db_hh": rnn.bias_hh_l0.grad.numpy(),
    }


@pytest.fixture(scope="module")
def ours():
    p = draw_problem(RNNConfig())
    return p, run_engine(p)


def test_the_problem_is_drawn_in_the_exercise_order(exercise, ours) -> None:
    p, _ = ours
    for name in ("x", "h0", "dh_out", "W_ih", "W_hh", "b_ih", "b_hh"):
        np.testing.assert_array_equal(getattr(p, name), exercise[name], err_msg=name)


@pytest.mark.parametrize("name", ["h", "dx", "dW_ih", "dW_hh", "db_ih", "db_hh"])
def test_defaults_reproduce_the_printed_digits(name: str, exercise, ours, close) -> None:
    _, trace = ours
    got = {"h": trace.h, "dx": trace.dx, **trace.gradients}[name]
    want = exercise[name]
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.round(got, 6), np.round(want, 6), err_msg=f"{name} to 6 decimals")
    close(got, want, f"{name} engine vs the exercise's torch autograd")
